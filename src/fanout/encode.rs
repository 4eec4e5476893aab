//! Data frames on the wire: `update`, `trades` and `trades_lost`. A quote's
//! shared JSON is encoded once per tick by the store; this module splices it
//! (or a per-connection delta/meta form) into one frame per drain. Requests
//! and their replies are the `protocol` module's, which builds on this one.

use std::collections::BTreeMap;

use serde_json::Value;
use tickgate_feeds::{Quote, Symbol, TradingStatus};

use super::store::Snapshot;

/// One `update` frame being built: `{"type":"update","quotes":[…]}`.
pub struct UpdateFrame {
    buf: String,
    quotes: u64,
}

impl UpdateFrame {
    /// An empty frame with room for about `expected` quotes.
    pub fn with_capacity(expected: usize) -> Self {
        let mut buf = String::with_capacity(32 + expected * 192);
        buf.push_str(r#"{"type":"update","quotes":["#);
        Self { buf, quotes: 0 }
    }

    /// Appends a quote already encoded as a Quote object.
    pub fn push(&mut self, quote_json: &str) {
        self.separator();
        self.buf.push_str(quote_json);
    }

    /// Appends a quote object with `meta` spliced in before its closing
    /// brace (meta mode).
    pub fn push_with_meta(&mut self, quote_json: &str, meta: Meta) {
        self.separator();
        meta.splice_into(&mut self.buf, quote_json);
    }

    fn separator(&mut self) {
        if self.quotes > 0 {
            self.buf.push(',');
        }
        self.quotes += 1;
    }

    /// Quotes in the frame so far.
    pub fn quotes(&self) -> u64 {
        self.quotes
    }

    /// The frame, or `None` when it holds no quote.
    pub fn finish(mut self) -> Option<String> {
        if self.quotes == 0 {
            return None;
        }
        self.buf.push_str("]}");
        Some(self.buf)
    }
}

/// What a `meta` subscription adds to each quote it receives, in updates
/// and snapshots alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Ticks of the symbol this client skipped since the quote it holds
    /// (0 for a snapshot: the client held none).
    pub conflated: u64,
    /// Gateway receive time of the tick behind the quote (µs).
    pub received_micros: u64,
    /// The feed serving the symbol was not `live` when the frame was built.
    pub stale: bool,
}

impl Meta {
    /// `quote_json` with `,"conflated":…,"received_ts":…,"stale":…` spliced
    /// in before its closing brace, appended to `buf`.
    fn splice_into(self, buf: &mut String, quote_json: &str) {
        use std::fmt::Write as _;
        // A Quote object always ends with `}`.
        let body = quote_json.strip_suffix('}').unwrap_or(quote_json);
        buf.push_str(body);
        let Self {
            conflated,
            received_micros,
            stale,
        } = self;
        // Writing into a String cannot fail.
        let _ = write!(
            buf,
            r#","conflated":{conflated},"received_ts":{received_micros},"stale":{stale}}}"#
        );
    }
}

/// A quote of a `snapshot` reply: the shared encoding, untouched, for a
/// plain or delta subscription (snapshots are always complete); with `meta`
/// spliced in for a meta subscription, as its updates carry it.
pub fn snapshot_quote(snapshot: &Snapshot, meta: bool, stale: bool) -> String {
    if !meta {
        return snapshot.json.clone();
    }
    let mut quote = String::with_capacity(snapshot.json.len() + 64);
    Meta {
        conflated: 0,
        received_micros: snapshot.received_micros,
        stale,
    }
    .splice_into(&mut quote, &snapshot.json);
    quote
}

/// A quote encoded for one connection: only the fields changed since
/// `previous` in delta mode (the full quote without one).
pub fn personal_quote(snapshot: &Snapshot, previous: Option<&Snapshot>) -> String {
    match previous {
        Some(previous) => delta_json(&previous.quote, &snapshot.quote),
        None => snapshot.json.clone(),
    }
}

/// `current` as a Quote object holding `symbol`, `seq`, `ts` and only the
/// fields whose value differs from `previous` (a field that became unknown
/// is sent as `null`).
pub fn delta_json(previous: &Quote, current: &Quote) -> String {
    let (Ok(Value::Object(before)), Ok(Value::Object(mut after))) = (
        serde_json::to_value(previous),
        serde_json::to_value(current),
    ) else {
        return String::new();
    };
    for (key, old) in &before {
        match after.get(key) {
            Some(new) if new == old && !matches!(key.as_str(), "symbol" | "seq" | "ts") => {
                after.remove(key);
            }
            None => {
                after.insert(key.clone(), Value::Null);
            }
            _ => {}
        }
    }
    Value::Object(after).to_string()
}

/// `{"type":"trades_lost","lost":n,"symbols":{…}}` for the trades dropped per
/// symbol, with their total.
pub fn trades_lost(lost: BTreeMap<Symbol, u64>) -> (u64, String) {
    let total = lost.values().sum();
    let symbols: serde_json::Map<String, Value> = lost
        .into_iter()
        .map(|(symbol, n)| (symbol.to_string(), Value::from(n)))
        .collect();
    let frame = serde_json::json!({
        "type": "trades_lost",
        "lost": total,
        "symbols": symbols,
    })
    .to_string();
    (total, frame)
}

/// `{"type":"trading","state":"halted"|"trading","symbols":[…]}`: the venue
/// halted or resumed these symbols (docs/protocol.md, "Trading status").
pub fn trading(state: TradingStatus, symbols: &[Symbol]) -> String {
    serde_json::json!({
        "type": "trading",
        "state": state.as_str(),
        "symbols": symbols,
    })
    .to_string()
}

/// `{"type":"trades","trades":[…]}` from trades each already encoded once.
pub fn trades<'a>(encoded: impl ExactSizeIterator<Item = &'a str>) -> String {
    let mut frame = String::with_capacity(32 + encoded.len() * 112);
    frame.push_str(r#"{"type":"trades","trades":["#);
    for (i, trade) in encoded.enumerate() {
        if i > 0 {
            frame.push(',');
        }
        frame.push_str(trade);
    }
    frame.push_str("]}");
    frame
}

/// A trade as clients receive it in `trades` frames.
#[derive(serde::Serialize)]
struct TradeJson {
    symbol: Symbol,
    /// The symbol's quote seq once this trade was applied: the quote with
    /// this seq (or a later one) already reflects it.
    seq: u64,
    price: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<f64>,
    ts: u64,
}

/// One trade's JSON, encoded once for every connection that wants it.
pub fn trade(symbol: Symbol, seq: u64, price: f64, size: Option<f64>, ts: u64) -> String {
    let trade = TradeJson {
        symbol,
        seq,
        price,
        size,
        ts,
    };
    // A struct of numbers and a validated symbol always serializes.
    serde_json::to_string(&trade).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_frame_without_quotes_is_not_sent() {
        assert_eq!(UpdateFrame::with_capacity(4).finish(), None);
    }

    #[test]
    fn quotes_are_comma_separated_and_meta_is_spliced_in() {
        let mut frame = UpdateFrame::with_capacity(2);
        frame.push(r#"{"symbol":"A","seq":1}"#);
        frame.push_with_meta(
            r#"{"symbol":"B","seq":9}"#,
            Meta {
                conflated: 3,
                received_micros: 77,
                stale: true,
            },
        );
        assert_eq!(frame.quotes(), 2);
        assert_eq!(
            frame.finish().as_deref(),
            Some(
                r#"{"type":"update","quotes":[{"symbol":"A","seq":1},{"symbol":"B","seq":9,"conflated":3,"received_ts":77,"stale":true}]}"#
            )
        );
    }

    fn snapshot_of(json: &str) -> Snapshot {
        Snapshot {
            quote: Quote::new(Symbol::parse("B").expect("valid")),
            json: json.to_owned(),
            received_micros: 1_764_000_000_000_123,
        }
    }

    #[test]
    fn a_meta_snapshot_quote_carries_received_ts_and_staleness() {
        let snapshot = snapshot_of(r#"{"symbol":"B","seq":9,"bid":1.5}"#);
        assert_eq!(
            snapshot_quote(&snapshot, true, false),
            r#"{"symbol":"B","seq":9,"bid":1.5,"conflated":0,"received_ts":1764000000000123,"stale":false}"#
        );
        assert_eq!(
            snapshot_quote(&snapshot, true, true),
            r#"{"symbol":"B","seq":9,"bid":1.5,"conflated":0,"received_ts":1764000000000123,"stale":true}"#
        );
    }

    #[test]
    fn a_plain_snapshot_quote_is_the_shared_encoding_byte_for_byte() {
        let json = r#"{"symbol":"B","seq":9,"bid":1.5}"#;
        let snapshot = snapshot_of(json);
        assert_eq!(snapshot_quote(&snapshot, false, true), json);
        assert_eq!(snapshot_quote(&snapshot, false, false), json);
    }

    #[test]
    fn trades_lost_totals_per_symbol() {
        let mut lost = BTreeMap::new();
        lost.insert(Symbol::parse("A").expect("valid"), 2);
        lost.insert(Symbol::parse("B").expect("valid"), 3);
        let (total, frame) = trades_lost(lost);
        assert_eq!(total, 5);
        let value: Value = serde_json::from_str(&frame).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"type": "trades_lost", "lost": 5, "symbols": {"A": 2, "B": 3}})
        );
    }

    #[test]
    fn trades_frame_keeps_order() {
        let frame = trades(["{\"a\":1}", "{\"b\":2}"].into_iter());
        assert_eq!(frame, r#"{"type":"trades","trades":[{"a":1},{"b":2}]}"#);
    }
}
