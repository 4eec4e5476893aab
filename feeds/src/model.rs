//! The normalized market-data model every adapter emits and the gateway stores.
//!
//! A [`Tick`] is what an adapter hands on: the fields one upstream message
//! carried, nothing more. A [`Quote`] is the full current state of a symbol,
//! built by merging ticks in order with [`Quote::apply`]. Both are plain data:
//! no clock, no I/O, so they can be property-tested and fuzzed directly.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::Serialize;

mod session;
mod venue_event;

pub use self::session::{SessionClock, SessionClockError, SessionDay, SessionStamper};
pub use self::venue_event::{TradingStatus, VenueEvent};

/// Longest symbol accepted anywhere (OCC option symbols are 21 bytes).
pub const MAX_SYMBOL_LEN: usize = 32;

/// A validated instrument name such as `AAPL`, `BRK.B` or `BTC-USD`.
///
/// Exists only through [`Symbol::parse`]: 1 to 32 bytes of ASCII letters,
/// digits and `. - _ / : ^`. Case is preserved and significant. Stored inline,
/// so a symbol never allocates and is `Copy`.
#[derive(Clone, Copy, Eq)]
pub struct Symbol {
    len: u8,
    bytes: [u8; MAX_SYMBOL_LEN],
}

/// Why a string is not a [`Symbol`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// The string was empty.
    #[error("symbol is empty")]
    Empty,
    /// Longer than [`MAX_SYMBOL_LEN`] bytes.
    #[error("symbol is longer than {MAX_SYMBOL_LEN} bytes")]
    TooLong,
    /// Contains a character outside `A-Z a-z 0-9 . - _ / : ^`.
    #[error("symbol contains a character other than letters, digits and . - _ / : ^")]
    BadCharacter,
}

impl Symbol {
    /// Validates `text` as a symbol.
    pub fn parse(text: &str) -> Result<Self, SymbolError> {
        let raw = text.as_bytes();
        if raw.is_empty() {
            return Err(SymbolError::Empty);
        }
        if raw.len() > MAX_SYMBOL_LEN {
            return Err(SymbolError::TooLong);
        }
        if !raw
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b".-_/:^".contains(&b))
        {
            return Err(SymbolError::BadCharacter);
        }
        let mut bytes = [0u8; MAX_SYMBOL_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(Self {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// The symbol text.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (checked in `parse`), so this cannot fail.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

impl PartialEq for Symbol {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Hash for Symbol {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for Symbol {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Symbol {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({})", self.as_str())
    }
}

impl Serialize for Symbol {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Whether a tick reports state (a quote) or an event (a trade).
///
/// Quotes may be conflated: only the latest matters. Trades are events; the
/// gateway still folds them into the quote's `last`/`last_size`/`volume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TickKind {
    /// Bid/ask (and possibly other state) changed.
    #[default]
    Quote,
    /// A trade printed: `last` is its price, `last_size` its size.
    Trade,
}

/// A set of quote fields a tick clears: the feed sent them as `null`, so
/// their value is no longer known (docs/feeds.md, "`null` and absent
/// fields"). Two bytes, so a [`Tick`] stays `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Cleared(u16);

impl Cleared {
    pub const BID: Self = Self(1);
    pub const ASK: Self = Self(1 << 1);
    pub const BID_SIZE: Self = Self(1 << 2);
    pub const ASK_SIZE: Self = Self(1 << 3);
    pub const LAST: Self = Self(1 << 4);
    pub const LAST_SIZE: Self = Self(1 << 5);
    pub const VOLUME: Self = Self(1 << 6);
    pub const OPEN: Self = Self(1 << 7);
    pub const HIGH: Self = Self(1 << 8);
    pub const LOW: Self = Self(1 << 9);
    pub const PREV_CLOSE: Self = Self(1 << 10);

    /// No field cleared.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The day fields, which roll over at a session boundary.
    pub const DAY: Self = Self(Self::VOLUME.0 | Self::OPEN.0 | Self::HIGH.0 | Self::LOW.0);

    /// This set less the fields of `other`.
    #[must_use]
    pub fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Every field of `other` is in this set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// This set plus the fields of `other`.
    #[must_use]
    pub fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// One normalized upstream message: the fields it carried, nothing more.
///
/// A field left `None` keeps its previous value in the [`Quote`]; a field in
/// `cleared` becomes unknown.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tick {
    pub symbol: Option<Symbol>,
    pub kind: TickKind,
    pub bid: Option<f64>,
    pub ask: Option<f64>,
    pub bid_size: Option<f64>,
    pub ask_size: Option<f64>,
    pub last: Option<f64>,
    pub last_size: Option<f64>,
    /// Cumulative day volume as reported upstream. When absent, trades add
    /// their size to the running volume.
    pub volume: Option<f64>,
    pub open: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
    pub prev_close: Option<f64>,
    /// Source event time, microseconds since the Unix epoch, when the feed
    /// supplies it.
    pub ts: Option<u64>,
    /// The symbol's `seq` as assigned by an upstream tickgate (the NATS
    /// publisher): the gateway adopts it instead of counting, so replicas fed
    /// from one stream agree on `seq`. A tick whose `seq` is not above the
    /// current one is stale and refused. Venue sequence numbers never go here.
    pub seq: Option<u64>,
    /// The venue's id of this trade, when it gives one (Alpaca `i`, the
    /// generic format's `trade_id`): a later correction or cancel names the
    /// trade by it (docs/feeds.md, "Halts, corrections and cancels").
    pub trade_id: Option<u64>,
    /// Fields the feed sent as `null`: the quote forgets them.
    pub cleared: Cleared,
    /// The trading session the tick belongs to, stamped by the feed runner
    /// from `ts` (or the receive time) and the feed's session boundary;
    /// `None` leaves the day fields as they are (docs/feeds.md, "Trading
    /// sessions").
    pub session: Option<SessionDay>,
}

/// Why a tick was refused before it reached the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TickError {
    /// No `symbol`.
    #[error("tick has no symbol")]
    MissingSymbol,
    /// A price that is NaN, infinite, negative or zero.
    #[error("tick has a price that is not a positive finite number")]
    BadPrice,
    /// A size or volume that is NaN, infinite or negative.
    #[error("tick has a size or volume that is not a finite non-negative number")]
    BadSize,
    /// A timestamp before 2000-01-01 or more than a day in the future of the
    /// receive time.
    #[error("tick timestamp is implausible")]
    BadTimestamp,
    /// Carries no field that changes a quote.
    #[error("tick carries no quote or trade field")]
    Empty,
}

impl TickError {
    /// Stable snake_case name, used as the `reason` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingSymbol => "missing_symbol",
            Self::BadPrice => "bad_price",
            Self::BadSize => "bad_size",
            Self::BadTimestamp => "bad_timestamp",
            Self::Empty => "empty",
        }
    }
}

/// 2000-01-01T00:00:00Z in microseconds.
const EARLIEST_TS_MICROS: u64 = 946_684_800_000_000;
const DAY_MICROS: u64 = 86_400_000_000;

impl Tick {
    /// Checks that every carried value is usable; `now_micros` bounds the
    /// timestamp so a feed in the wrong unit is caught.
    pub fn validate(&self, now_micros: u64) -> Result<Symbol, TickError> {
        let symbol = self.symbol.ok_or(TickError::MissingSymbol)?;
        let prices = [
            self.bid,
            self.ask,
            self.last,
            self.open,
            self.high,
            self.low,
            self.prev_close,
        ];
        if prices.iter().flatten().any(|p| !p.is_finite() || *p <= 0.0) {
            return Err(TickError::BadPrice);
        }
        let sizes = [self.bid_size, self.ask_size, self.last_size, self.volume];
        if sizes.iter().flatten().any(|s| !s.is_finite() || *s < 0.0) {
            return Err(TickError::BadSize);
        }
        if let Some(ts) = self.ts
            && (ts < EARLIEST_TS_MICROS || ts > now_micros.saturating_add(DAY_MICROS))
        {
            return Err(TickError::BadTimestamp);
        }
        if prices.iter().chain(sizes.iter()).all(Option::is_none) && self.cleared.is_empty() {
            return Err(TickError::Empty);
        }
        Ok(symbol)
    }
}

/// The full current state of one symbol, as clients receive it.
///
/// Serializes to the Quote object of the client protocol: unknown fields are
/// omitted, `seq` grows by exactly one per accepted tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quote {
    pub symbol: Symbol,
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bid: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ask: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bid_size: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ask_size: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_size: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_close: Option<f64>,
    /// `last - prev_close`, when both are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<f64>,
    /// `change / prev_close * 100`, when both are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_pct: Option<f64>,
    /// Source event time (µs since epoch), or gateway receive time when the
    /// feed gave none.
    pub ts: u64,
    /// The session `volume`, `open`, `high` and `low` belong to, once a
    /// session-stamped tick arrived. Not part of the wire format.
    #[serde(skip)]
    pub session: Option<SessionDay>,
}

impl Quote {
    /// An empty quote for `symbol`, before any tick (seq 0).
    pub fn new(symbol: Symbol) -> Self {
        Self {
            symbol,
            seq: 0,
            bid: None,
            ask: None,
            bid_size: None,
            ask_size: None,
            last: None,
            last_size: None,
            volume: None,
            open: None,
            high: None,
            low: None,
            prev_close: None,
            change: None,
            change_pct: None,
            ts: 0,
            session: None,
        }
    }

    /// Merges one validated tick, received at `received_micros`, and advances
    /// `seq`: by one, or to the tick's own `seq` when it carries one. Returns
    /// false (changing nothing) for a tick whose `seq` is not newer.
    pub fn apply(&mut self, tick: &Tick, received_micros: u64) -> bool {
        match tick.seq {
            Some(seq) if seq <= self.seq => return false,
            Some(seq) => self.seq = seq,
            None => self.seq += 1,
        }
        let previous_ts = self.ts;
        self.ts = tick.ts.unwrap_or(received_micros);
        let merge = |slot: &mut Option<f64>, value: Option<f64>| {
            if value.is_some() {
                *slot = value;
            }
        };
        // The day fields follow the newest session seen; a late tick from
        // an earlier session leaves them alone.
        let day_current = match (tick.session, self.session) {
            (Some(tick_day), Some(day)) if tick_day < day => false,
            (Some(tick_day), Some(day)) if tick_day > day => {
                self.roll_over(tick_day);
                true
            }
            // Day fields of unknown session (loaded from a stream at
            // start-up, or from unstamped ticks) are the last session's when
            // their time is before this session's start.
            (Some(tick_day), None) if previous_ts != 0 && previous_ts < tick_day.start_micros() => {
                self.roll_over(tick_day);
                true
            }
            (Some(tick_day), _) => {
                self.session = Some(tick_day);
                true
            }
            (None, _) => true,
        };
        merge(&mut self.bid, tick.bid);
        merge(&mut self.ask, tick.ask);
        merge(&mut self.bid_size, tick.bid_size);
        merge(&mut self.ask_size, tick.ask_size);
        merge(&mut self.prev_close, tick.prev_close);
        if day_current {
            merge(&mut self.open, tick.open);
            merge(&mut self.high, tick.high);
            merge(&mut self.low, tick.low);
        }
        if let Some(price) = tick.last {
            self.last = Some(price);
            self.last_size = tick.last_size.or(self.last_size);
            if tick.kind == TickKind::Trade && day_current {
                self.open.get_or_insert(price);
                self.high = Some(self.high.map_or(price, |h| h.max(price)));
                self.low = Some(self.low.map_or(price, |l| l.min(price)));
                if tick.volume.is_none() {
                    let size = tick.last_size.unwrap_or(0.0);
                    self.volume = Some(self.volume.unwrap_or(0.0) + size);
                }
            }
        } else {
            merge(&mut self.last_size, tick.last_size);
        }
        if day_current {
            merge(&mut self.volume, tick.volume);
        }
        let cleared = if day_current {
            tick.cleared
        } else {
            tick.cleared.without(Cleared::DAY)
        };
        if !cleared.is_empty() {
            self.clear(cleared);
        }
        match (self.last, self.prev_close) {
            (Some(last), Some(prev)) => {
                let change = last - prev;
                self.change = Some(round6(change));
                self.change_pct = Some(round6(change / prev * 100.0));
            }
            _ => {
                self.change = None;
                self.change_pct = None;
            }
        }
        true
    }
}

impl Quote {
    /// Starts session `day`: the last session's last price becomes
    /// `prev_close` (a feed that supplies its own overrides it), and
    /// `volume`, `open`, `high` and `low` start over (unknown until the
    /// session's first trade or a feed value).
    fn roll_over(&mut self, day: SessionDay) {
        self.session = Some(day);
        if self.last.is_some() {
            self.prev_close = self.last;
        }
        self.volume = None;
        self.open = None;
        self.high = None;
        self.low = None;
    }

    /// Forgets the `cleared` fields (the derived `change` follows).
    fn clear(&mut self, cleared: Cleared) {
        let slots = [
            (Cleared::BID, &mut self.bid),
            (Cleared::ASK, &mut self.ask),
            (Cleared::BID_SIZE, &mut self.bid_size),
            (Cleared::ASK_SIZE, &mut self.ask_size),
            (Cleared::LAST, &mut self.last),
            (Cleared::LAST_SIZE, &mut self.last_size),
            (Cleared::VOLUME, &mut self.volume),
            (Cleared::OPEN, &mut self.open),
            (Cleared::HIGH, &mut self.high),
            (Cleared::LOW, &mut self.low),
            (Cleared::PREV_CLOSE, &mut self.prev_close),
        ];
        for (field, slot) in slots {
            if cleared.contains(field) {
                *slot = None;
            }
        }
    }
}

/// Rounds derived values so they print compactly (`1.23`, not `1.2299999999`).
fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("valid symbol")
    }

    #[test]
    fn symbol_parse_accepts_common_shapes_and_rejects_the_rest() {
        for ok in [
            "AAPL", "BRK.B", "BTC-USD", "ES_F", "EUR/USD", "X:Y", "^SPX", "a",
        ] {
            assert_eq!(sym(ok).as_str(), ok);
        }
        assert_eq!(Symbol::parse(""), Err(SymbolError::Empty));
        assert_eq!(Symbol::parse(&"A".repeat(33)), Err(SymbolError::TooLong));
        assert!(Symbol::parse(&"A".repeat(32)).is_ok());
        for bad in ["A B", "A\"", "Ä", "A\n", "A*", "A>"] {
            assert_eq!(
                Symbol::parse(bad),
                Err(SymbolError::BadCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn quote_merges_only_carried_fields_and_counts_seq() {
        let mut q = Quote::new(sym("AAPL"));
        let quote_tick = Tick {
            symbol: Some(sym("AAPL")),
            bid: Some(10.0),
            ask: Some(10.1),
            prev_close: Some(9.0),
            ..Tick::default()
        };
        q.apply(&quote_tick, 1_700_000_000_000_000);
        assert_eq!(
            (q.seq, q.bid, q.ask, q.last),
            (1, Some(10.0), Some(10.1), None)
        );
        assert_eq!(
            q.ts, 1_700_000_000_000_000,
            "receive time stands in for a missing ts"
        );
        let trade = Tick {
            symbol: Some(sym("AAPL")),
            kind: TickKind::Trade,
            last: Some(10.05),
            last_size: Some(300.0),
            ts: Some(1_700_000_000_000_123),
            ..Tick::default()
        };
        q.apply(&trade, 1);
        q.apply(
            &Tick {
                last: Some(9.5),
                last_size: Some(100.0),
                ..trade
            },
            2,
        );
        assert_eq!(q.seq, 3);
        assert_eq!(q.bid, Some(10.0), "a trade leaves the bid alone");
        assert_eq!((q.last, q.volume), (Some(9.5), Some(400.0)));
        assert_eq!(
            (q.open, q.high, q.low),
            (Some(10.05), Some(10.05), Some(9.5))
        );
        assert_eq!(q.change, Some(0.5));
        assert_eq!(q.change_pct, Some(5.555556));
        assert_eq!(q.ts, 1_700_000_000_000_123);
    }

    #[test]
    fn a_cleared_field_is_forgotten_and_an_absent_one_kept() {
        let mut q = Quote::new(sym("AAPL"));
        let full = Tick {
            symbol: Some(sym("AAPL")),
            bid: Some(10.0),
            ask: Some(10.2),
            last: Some(10.1),
            prev_close: Some(9.0),
            ..Tick::default()
        };
        q.apply(&full, 1);
        let clear_bid_and_close = Tick {
            symbol: Some(sym("AAPL")),
            ask: Some(10.3),
            cleared: Cleared::BID.with(Cleared::PREV_CLOSE),
            ..Tick::default()
        };
        assert_eq!(clear_bid_and_close.validate(2), Ok(sym("AAPL")));
        assert!(q.apply(&clear_bid_and_close, 2));
        assert_eq!(
            (q.bid, q.ask, q.last, q.prev_close),
            (None, Some(10.3), Some(10.1), None),
            "bid and prev_close cleared, ask updated, last kept"
        );
        assert_eq!(
            (q.change, q.change_pct),
            (None, None),
            "derived from a cleared field"
        );
        let json = serde_json::to_string(&q).expect("serializes");
        assert!(
            !json.contains("\"bid\"") && !json.contains("prev_close"),
            "{json}"
        );
        let only_clears = Tick {
            symbol: Some(sym("AAPL")),
            cleared: Cleared::LAST,
            ..Tick::default()
        };
        assert_eq!(
            only_clears.validate(2),
            Ok(sym("AAPL")),
            "a clear is not empty"
        );
    }

    #[test]
    fn an_upstream_seq_is_adopted_and_an_older_one_refused() {
        let mut q = Quote::new(sym("AAPL"));
        let tick = Tick {
            symbol: Some(sym("AAPL")),
            bid: Some(1.0),
            seq: Some(41),
            ..Tick::default()
        };
        assert!(q.apply(&tick, 1));
        assert_eq!(q.seq, 41);
        assert!(
            !q.apply(
                &Tick {
                    bid: Some(2.0),
                    ..tick
                },
                2
            ),
            "same seq again is stale"
        );
        assert!(
            !q.apply(
                &Tick {
                    bid: Some(2.0),
                    seq: Some(7),
                    ..tick
                },
                2
            ),
            "older seq is stale"
        );
        assert_eq!(
            (q.seq, q.bid),
            (41, Some(1.0)),
            "a stale tick changes nothing"
        );
        assert!(q.apply(
            &Tick {
                bid: Some(3.0),
                seq: None,
                ..tick
            },
            3
        ));
        assert_eq!(q.seq, 42, "without an upstream seq the gateway counts");
    }

    #[test]
    fn validate_refuses_unusable_values() {
        let now = 1_800_000_000_000_000;
        let base = Tick {
            symbol: Some(sym("X")),
            bid: Some(1.0),
            ..Tick::default()
        };
        assert!(base.validate(now).is_ok());
        let cases = [
            (
                Tick {
                    symbol: None,
                    ..base
                },
                TickError::MissingSymbol,
            ),
            (
                Tick {
                    bid: Some(f64::NAN),
                    ..base
                },
                TickError::BadPrice,
            ),
            (
                Tick {
                    ask: Some(-1.0),
                    ..base
                },
                TickError::BadPrice,
            ),
            (
                Tick {
                    last: Some(f64::INFINITY),
                    ..base
                },
                TickError::BadPrice,
            ),
            (
                Tick {
                    bid_size: Some(-5.0),
                    ..base
                },
                TickError::BadSize,
            ),
            (
                Tick {
                    volume: Some(f64::NAN),
                    ..base
                },
                TickError::BadSize,
            ),
            (
                Tick {
                    ts: Some(1_000),
                    ..base
                },
                TickError::BadTimestamp,
            ),
            (
                Tick {
                    ts: Some(now * 1000),
                    ..base
                },
                TickError::BadTimestamp,
            ),
            (Tick { bid: None, ..base }, TickError::Empty),
        ];
        for (tick, want) in cases {
            assert_eq!(tick.validate(now), Err(want), "{tick:?}");
        }
    }

    #[test]
    fn quote_json_omits_unknown_fields() {
        let mut q = Quote::new(sym("MSFT"));
        q.apply(
            &Tick {
                symbol: Some(sym("MSFT")),
                bid: Some(1.5),
                ..Tick::default()
            },
            42,
        );
        let json = serde_json::to_string(&q).expect("serializes");
        assert_eq!(json, r#"{"symbol":"MSFT","seq":1,"bid":1.5,"ts":42}"#);
    }

    /// µs since the epoch of an RFC 3339 instant.
    fn at(instant: &str) -> u64 {
        let ts: jiff::Timestamp = instant.parse().expect("valid instant");
        u64::try_from(ts.as_microsecond()).expect("after 1970")
    }

    fn day(date: &str) -> jiff::civil::Date {
        date.parse().expect("valid date")
    }

    fn new_york() -> SessionClock {
        SessionClock::parse("04:00", "America/New_York").expect("valid clock")
    }

    /// A trade at `instant`, stamped with its session as the runner does.
    fn trade_at(clock: &SessionClock, instant: &str, price: f64, size: f64) -> Tick {
        let ts = at(instant);
        Tick {
            symbol: Some(sym("AAPL")),
            kind: TickKind::Trade,
            last: Some(price),
            last_size: Some(size),
            ts: Some(ts),
            session: clock.session_of(ts),
            ..Tick::default()
        }
    }

    fn day_fields(q: &Quote) -> (Option<f64>, Option<f64>, Option<f64>, Option<f64>) {
        (q.volume, q.open, q.high, q.low)
    }

    #[test]
    fn the_session_starts_at_the_local_boundary_across_dst_changes() {
        let ny = new_york();
        let cases = [
            // Winter (EST, UTC-5): 04:00 local is 09:00Z.
            ("2026-03-06T08:59:59.999999Z", "2026-03-05"),
            ("2026-03-06T09:00:00Z", "2026-03-06"),
            ("2026-03-06T21:00:00Z", "2026-03-06"),
            // Sunday 2026-03-08 springs forward at 02:00: from Monday on,
            // 04:00 local is 08:00Z; a fixed UTC-5 would call 08:00Z 03:00.
            ("2026-03-08T08:59:59Z", "2026-03-08"),
            ("2026-03-09T07:59:59.999999Z", "2026-03-08"),
            ("2026-03-09T08:00:00Z", "2026-03-09"),
            // The transition day itself: 04:00 EDT is 08:00Z.
            ("2026-03-08T07:59:59Z", "2026-03-07"),
            ("2026-03-08T08:00:00Z", "2026-03-08"),
            // Sunday 2026-11-01 falls back at 02:00: 04:00 EST is 09:00Z.
            ("2026-11-01T08:30:00Z", "2026-10-31"),
            ("2026-11-01T09:00:00Z", "2026-11-01"),
            ("2026-11-02T08:59:59Z", "2026-11-01"),
            ("2026-11-02T09:00:00Z", "2026-11-02"),
        ];
        for (instant, want) in cases {
            assert_eq!(
                ny.session_of(at(instant)).map(SessionDay::date),
                Some(day(want)),
                "{instant}"
            );
        }
        let utc = SessionClock::utc_midnight();
        assert_eq!(
            utc.session_of(at("2026-03-08T23:59:59.999999Z"))
                .map(SessionDay::date),
            Some(day("2026-03-08"))
        );
        assert_eq!(
            utc.session_of(at("2026-03-09T00:00:00Z"))
                .map(SessionDay::date),
            Some(day("2026-03-09"))
        );
    }

    #[test]
    fn a_start_inside_the_dst_gap_begins_when_the_gap_ends() {
        // 02:30 does not exist in New York on 2026-03-08: that session
        // starts an hour later by the clock, at 03:30 EDT (07:30Z).
        let clock = SessionClock::parse("02:30", "America/New_York").expect("valid");
        assert_eq!(
            clock
                .session_of(at("2026-03-08T07:29:59Z"))
                .map(SessionDay::date),
            Some(day("2026-03-07"))
        );
        assert_eq!(
            clock
                .session_of(at("2026-03-08T07:30:00Z"))
                .map(SessionDay::date),
            Some(day("2026-03-08"))
        );
        // 01:30 happens twice on 2026-11-01: the session starts at the
        // first (EDT, 05:30Z).
        let clock = SessionClock::parse("01:30", "America/New_York").expect("valid");
        assert_eq!(
            clock
                .session_of(at("2026-11-01T05:29:59Z"))
                .map(SessionDay::date),
            Some(day("2026-10-31"))
        );
        assert_eq!(
            clock
                .session_of(at("2026-11-01T05:30:00Z"))
                .map(SessionDay::date),
            Some(day("2026-11-01"))
        );
    }

    #[test]
    fn day_fields_roll_over_at_the_session_boundary() {
        let ny = new_york();
        let mut q = Quote::new(sym("AAPL"));
        // Monday after the spring change: the session starts at 08:00Z.
        q.apply(&trade_at(&ny, "2026-03-09T14:30:00Z", 10.0, 100.0), 0);
        q.apply(&trade_at(&ny, "2026-03-09T15:00:00Z", 12.0, 200.0), 0);
        q.apply(&trade_at(&ny, "2026-03-09T20:00:00Z", 11.0, 50.0), 0);
        assert_eq!(
            day_fields(&q),
            (Some(350.0), Some(10.0), Some(12.0), Some(10.0))
        );
        // Exactly at Tuesday's 04:00 EDT: a new session.
        q.apply(&trade_at(&ny, "2026-03-10T08:00:00Z", 11.5, 7.0), 0);
        assert_eq!(
            day_fields(&q),
            (Some(7.0), Some(11.5), Some(11.5), Some(11.5)),
            "volume restarts from the trade's size, open/high/low from its price"
        );
        assert_eq!(
            q.prev_close,
            Some(11.0),
            "the last session's last price is the previous close"
        );
        assert_eq!(q.change, Some(0.5));
        assert_eq!(q.session.map(SessionDay::date), Some(day("2026-03-10")));
        q.apply(&trade_at(&ny, "2026-03-10T13:31:00Z", 13.0, 3.0), 0);
        assert_eq!(
            day_fields(&q),
            (Some(10.0), Some(11.5), Some(13.0), Some(11.5))
        );
    }

    #[test]
    fn a_late_tick_from_an_earlier_session_does_not_roll_back() {
        let ny = new_york();
        let mut q = Quote::new(sym("AAPL"));
        q.apply(&trade_at(&ny, "2026-11-02T15:00:00Z", 20.0, 100.0), 0);
        q.apply(&trade_at(&ny, "2026-11-03T09:00:00Z", 21.0, 10.0), 0);
        assert_eq!(q.session.map(SessionDay::date), Some(day("2026-11-03")));
        // Arrives late, from Monday's session (08:59Z is 03:59 EST).
        let late = trade_at(&ny, "2026-11-03T08:59:00Z", 99.0, 5_000.0);
        assert_eq!(late.session.map(SessionDay::date), Some(day("2026-11-02")));
        assert!(q.apply(&late, 0));
        assert_eq!(
            day_fields(&q),
            (Some(10.0), Some(21.0), Some(21.0), Some(21.0)),
            "today's day fields ignore yesterday's trade"
        );
        let late_stats = Tick {
            kind: TickKind::Quote,
            last: None,
            last_size: None,
            volume: Some(1.0),
            open: Some(1.0),
            high: Some(1.0),
            low: Some(1.0),
            cleared: Cleared::BID,
            ..late
        };
        q.apply(&late_stats, 0);
        let late_clear = Tick {
            cleared: Cleared::DAY,
            ..late_stats
        };
        q.apply(&late_clear, 0);
        assert_eq!(
            day_fields(&q),
            (Some(10.0), Some(21.0), Some(21.0), Some(21.0)),
            "nor its day statistics or clears"
        );
        assert_eq!(
            q.session.map(SessionDay::date),
            Some(day("2026-11-03")),
            "no roll back"
        );
        // The next tick of today's session still adds up.
        q.apply(&trade_at(&ny, "2026-11-03T15:00:00Z", 22.0, 1.0), 0);
        assert_eq!(
            day_fields(&q),
            (Some(11.0), Some(21.0), Some(22.0), Some(21.0))
        );
    }

    #[test]
    fn a_quote_in_a_new_session_clears_the_day_fields_until_a_trade() {
        let utc = SessionClock::utc_midnight();
        let mut q = Quote::new(sym("BTC-USD"));
        q.apply(&trade_at(&utc, "2026-12-05T23:59:59Z", 100.0, 2.0), 0);
        let ts = at("2026-12-06T00:00:00Z");
        let bid = Tick {
            symbol: Some(sym("BTC-USD")),
            bid: Some(101.0),
            ts: Some(ts),
            session: utc.session_of(ts),
            ..Tick::default()
        };
        q.apply(&bid, 0);
        assert_eq!(day_fields(&q), (None, None, None, None));
        assert_eq!(
            (q.bid, q.last, q.prev_close),
            (Some(101.0), Some(100.0), Some(100.0))
        );
        let json = serde_json::to_string(&q).expect("serializes");
        assert!(
            !json.contains("volume") && !json.contains("session"),
            "{json}"
        );
        // A feed that supplies its own statistics sets them after the roll.
        let stats = Tick {
            volume: Some(5.0),
            prev_close: Some(99.0),
            ..bid
        };
        let ts2 = at("2026-12-07T00:00:01Z");
        q.apply(
            &Tick {
                ts: Some(ts2),
                session: utc.session_of(ts2),
                ..stats
            },
            0,
        );
        assert_eq!((q.volume, q.prev_close), (Some(5.0), Some(99.0)));
    }

    #[test]
    fn unstamped_ticks_keep_counting_the_day() {
        let mut q = Quote::new(sym("AAPL"));
        let ny = new_york();
        q.apply(&trade_at(&ny, "2026-03-09T14:30:00Z", 10.0, 100.0), 0);
        let unstamped = Tick {
            session: None,
            ..trade_at(&ny, "2026-03-10T14:30:00Z", 11.0, 1.0)
        };
        q.apply(&unstamped, 0);
        assert_eq!(q.volume, Some(101.0));
    }

    #[test]
    fn a_session_boundary_is_checked_when_parsed() {
        for bad in [
            "4:00", "24:00", "04:60", "0400", "04:00:00", "", "ab:cd", "+4:00",
        ] {
            assert_eq!(
                SessionClock::parse(bad, "UTC"),
                Err(SessionClockError::BadStart(bad.to_string())),
                "{bad:?}"
            );
        }
        for bad in ["Mars/Olympus", "", "EST5EDT6", "america/new york"] {
            assert_eq!(
                SessionClock::parse("04:00", bad),
                Err(SessionClockError::UnknownZone(bad.to_string())),
                "{bad:?}"
            );
        }
        assert!(SessionClock::parse("23:59", "Asia/Tokyo").is_ok());
        assert!(SessionClock::parse("00:00", "UTC").is_ok());
    }

    #[test]
    fn day_fields_loaded_without_a_session_roll_over_when_older_than_it() {
        // A quote loaded at start-up (from the NATS stream) carries no
        // session: its time decides whether its day fields are the last
        // session's.
        let ny = new_york();
        let loaded = |instant: &str| {
            let mut q = Quote::new(sym("AAPL"));
            q.apply(
                &Tick {
                    session: None,
                    ..trade_at(&ny, instant, 10.0, 500.0)
                },
                0,
            );
            q
        };
        let mut yesterday = loaded("2026-03-09T19:00:00Z");
        yesterday.apply(&trade_at(&ny, "2026-03-10T13:30:00Z", 11.0, 1.0), 0);
        assert_eq!(
            day_fields(&yesterday),
            (Some(1.0), Some(11.0), Some(11.0), Some(11.0))
        );
        assert_eq!(yesterday.prev_close, Some(10.0));
        let mut today = loaded("2026-03-10T08:00:00Z");
        today.apply(&trade_at(&ny, "2026-03-10T13:30:00Z", 11.0, 1.0), 0);
        assert_eq!(
            day_fields(&today),
            (Some(501.0), Some(10.0), Some(11.0), Some(10.0)),
            "same session: the loaded day goes on"
        );
        assert_eq!(today.session.map(SessionDay::date), Some(day("2026-03-10")));
    }

    #[test]
    fn the_stamper_agrees_with_the_clock_in_any_order() {
        let ny = new_york();
        let mut stamper = SessionStamper::new(ny.clone());
        let start = at("2026-03-06T00:00:00Z");
        let end = at("2026-03-11T00:00:00Z");
        // Forward in 7-minute steps across the spring change, then back
        // and forth around each boundary.
        let mut instants: Vec<u64> = (start..end).step_by(7 * 60 * 1_000_000).collect();
        for boundary in ["2026-03-08T08:00:00Z", "2026-03-09T08:00:00Z"] {
            let b = at(boundary);
            instants.extend([b, b - 1, b + 1, b - 1, b]);
        }
        for micros in instants {
            assert_eq!(
                stamper.session_of(micros),
                ny.session_of(micros),
                "{micros}"
            );
        }
    }
}
