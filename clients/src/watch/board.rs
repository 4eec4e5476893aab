//! What `tickgate watch` knows about each watched symbol, and the table it
//! draws from that. Pure: frames and the time come in as arguments, text
//! goes out; nothing here awaits, reads a clock or writes to a terminal.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// How `--sort` orders the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    /// Alphabetically.
    Symbol,
    /// Largest gain first (`change_pct`), losers last.
    Change,
    /// Oldest quote first: the rows to worry about on top.
    Age,
    /// Highest session volume first.
    Volume,
    /// Highest last price first.
    Last,
}

/// The state of the link to the gateway, for the header line.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Link {
    /// Dialling, the first time.
    Connecting,
    /// Subscribed on a live connection of this gateway epoch.
    Live { epoch: Option<String> },
    /// Lost; the next attempt is due at `next_at`.
    Reconnecting {
        attempt: u32,
        next_at: Instant,
        reason: String,
    },
}

/// One watched symbol.
#[derive(Debug, Default)]
struct Row {
    /// Every quote field received so far, merged field by field.
    quote: Map<String, Value>,
    /// When the last quote of it arrived.
    received_at: Option<Instant>,
    /// The feed serving it is `stale` or `down` (from `status` frames), on this connection.
    feed: Option<(String, String)>,
    /// The gateway reported it halted (`trading` frames).
    halted: bool,
    /// The last quote carried `"stale":true` (its feed was not live when sent).
    quote_stale: bool,
}

/// Latest state per watched symbol. Holds only the symbols asked for, so a
/// gateway sending anything else cannot grow it.
#[derive(Debug)]
pub(super) struct Board {
    rows: BTreeMap<String, Row>,
    sort: SortKey,
    stale_after: Duration,
    quotes_received: u64,
    last_frame_at: Option<Instant>,
    link: Link,
}

impl Board {
    /// A board for `symbols` (already upper-cased), every row empty.
    pub(super) fn new(symbols: &[String], sort: SortKey, stale_after: Duration) -> Self {
        Self {
            rows: symbols
                .iter()
                .map(|s| (s.clone(), Row::default()))
                .collect(),
            sort,
            stale_after,
            quotes_received: 0,
            last_frame_at: None,
            link: Link::Connecting,
        }
    }

    /// The seq held per symbol, for a `resume` after a reconnect.
    pub(super) fn seqs(&self) -> Map<String, Value> {
        self.rows
            .iter()
            .filter_map(|(symbol, row)| {
                let seq = row.quote.get("seq")?.as_u64()?;
                Some((symbol.clone(), Value::from(seq)))
            })
            .collect()
    }

    pub(super) fn set_link(&mut self, link: Link) {
        self.link = link;
    }

    /// Any frame arrived: the link is not silent.
    pub(super) fn heard(&mut self, now: Instant) {
        self.last_frame_at = Some(now);
    }

    /// A new connection: feed status is per connection (the gateway repeats
    /// what is not live right after the snapshot, and so it does for halts).
    pub(super) fn subscribed(&mut self, symbols: &[Value]) {
        for symbol in symbols.iter().filter_map(Value::as_str) {
            if let Some(row) = self.rows.get_mut(symbol) {
                row.feed = None;
                row.halted = false;
            }
        }
    }

    /// Merges the quotes of a `snapshot` (which replace what was held: a
    /// snapshot quote is complete) or an `update` (merged field by field).
    /// Returns the quotes taken, for `--json` to print.
    pub(super) fn quotes<'f>(
        &mut self,
        frame: &'f Map<String, Value>,
        now: Instant,
    ) -> Vec<&'f Value> {
        let Some(Value::Array(quotes)) = frame.get("quotes") else {
            return Vec::new();
        };
        let snapshot = frame.get("type").and_then(Value::as_str) == Some("snapshot");
        let mut taken = Vec::new();
        for quote in quotes {
            let Value::Object(fields) = quote else {
                continue;
            };
            let Some(row) = fields
                .get("symbol")
                .and_then(Value::as_str)
                .and_then(|s| self.rows.get_mut(s))
            else {
                continue;
            };
            if snapshot {
                row.quote.clear();
            }
            for (key, value) in fields {
                if value.is_null() {
                    row.quote.remove(key);
                } else {
                    row.quote.insert(key.clone(), value.clone());
                }
            }
            row.received_at = Some(now);
            row.quote_stale = fields.get("stale").and_then(Value::as_bool) == Some(true);
            self.quotes_received += 1;
            taken.push(quote);
        }
        taken
    }

    /// A `status` frame: the feed serving these symbols (all held ones when
    /// it names none) is `stale`, `down` or `live`. False when malformed.
    pub(super) fn status(&mut self, frame: &Map<String, Value>) -> bool {
        let Some(state) = frame.get("state").and_then(Value::as_str) else {
            return false;
        };
        let feed = frame.get("feed").and_then(Value::as_str).unwrap_or("");
        let named = match frame.get("symbols") {
            Some(Value::Array(list)) => {
                Some(list.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            }
            None | Some(Value::Null) => None,
            Some(_) => return false,
        };
        for (symbol, row) in &mut self.rows {
            let applies = match &named {
                Some(list) => list.contains(&symbol.as_str()),
                None => row.feed.as_ref().is_none_or(|(f, _)| f == feed),
            };
            if !applies {
                continue;
            }
            row.feed = (state != "live").then(|| (feed.to_owned(), state.to_owned()));
            if state == "live" && named.is_some() {
                row.quote_stale = false;
            }
        }
        true
    }

    /// A `trading` frame: these symbols are `halted` or `trading` again.
    /// False when malformed.
    pub(super) fn trading(&mut self, frame: &Map<String, Value>) -> bool {
        let halted = match frame.get("state").and_then(Value::as_str) {
            Some("halted") => true,
            Some("trading") => false,
            _ => return false,
        };
        let Some(Value::Array(symbols)) = frame.get("symbols") else {
            return false;
        };
        for symbol in symbols.iter().filter_map(Value::as_str) {
            if let Some(row) = self.rows.get_mut(symbol) {
                row.halted = halted;
            }
        }
        true
    }

    /// The markers of one row: empty when its quote is live and current.
    fn markers(&self, row: &Row, now: Instant) -> Vec<&'static str> {
        let mut markers = Vec::new();
        if row.halted {
            markers.push("HALTED");
        }
        match row.feed.as_ref().map(|(_, state)| state.as_str()) {
            Some("down") => markers.push("FEED DOWN"),
            Some(_) => markers.push("FEED STALE"),
            None => {}
        }
        let old = row
            .received_at
            .is_some_and(|at| now.saturating_duration_since(at) > self.stale_after);
        if (row.quote_stale || (old && !row.halted)) && row.feed.is_none() {
            markers.push("STALE");
        }
        markers
    }

    /// The whole screen at `now`: a header, then one line per symbol.
    pub(super) fn render(&self, url: &str, now: Instant) -> String {
        let mut screen = String::new();
        let link = match &self.link {
            Link::Connecting => "connecting".to_owned(),
            Link::Live { epoch } => {
                let silent = self
                    .last_frame_at
                    .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
                let mut text = format!("live (epoch {})", epoch.as_deref().unwrap_or("-"));
                if silent > self.stale_after {
                    let _ = write!(text, ", SILENT for {}", age(silent));
                }
                text
            }
            Link::Reconnecting {
                attempt,
                next_at,
                reason,
            } => format!(
                "RECONNECTING (attempt {attempt}, next in {}): {reason}",
                age(next_at.saturating_duration_since(now))
            ),
        };
        let _ = writeln!(
            screen,
            "tickgate watch  {url}  link: {link}\n{} quotes received, sorted by {:?}, stale after {}\n",
            self.quotes_received,
            self.sort,
            age(self.stale_after)
        );
        let _ = writeln!(
            screen,
            "{:<12} {:>12} {:>12} {:>12} {:>9} {:>14} {:>9} {:>7}  STATE",
            "SYMBOL", "BID", "ASK", "LAST", "CHG%", "VOLUME", "SEQ", "AGE"
        );
        for (symbol, row) in self.sorted(now) {
            let number = |key: &str, decimals: usize| {
                row.quote
                    .get(key)
                    .and_then(Value::as_f64)
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
            };
            let markers = self.markers(row, now);
            let state = if row.received_at.is_none() {
                "no data yet".to_owned()
            } else if markers.is_empty() {
                "live".to_owned()
            } else {
                markers.join(" ")
            };
            let _ = writeln!(
                screen,
                "{:<12} {:>12} {:>12} {:>12} {:>9} {:>14} {:>9} {:>7}  {}",
                symbol,
                number("bid", 2),
                number("ask", 2),
                number("last", 2),
                number("change_pct", 2),
                number("volume", 0),
                row.quote
                    .get("seq")
                    .map(Value::to_string)
                    .unwrap_or_default(),
                row.received_at.map_or_else(
                    || "-".to_owned(),
                    |at| age(now.saturating_duration_since(at))
                ),
                state,
            );
        }
        screen
    }

    fn sorted(&self, now: Instant) -> Vec<(&String, &Row)> {
        let mut rows: Vec<_> = self.rows.iter().collect();
        let number = |row: &Row, key: &str| row.quote.get(key).and_then(Value::as_f64);
        // Rows without the value go last, whatever the order.
        let descending = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => b.total_cmp(&a),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        match self.sort {
            SortKey::Symbol => {}
            SortKey::Change => rows
                .sort_by(|a, b| descending(number(a.1, "change_pct"), number(b.1, "change_pct"))),
            SortKey::Volume => {
                rows.sort_by(|a, b| descending(number(a.1, "volume"), number(b.1, "volume")))
            }
            SortKey::Last => {
                rows.sort_by(|a, b| descending(number(a.1, "last"), number(b.1, "last")))
            }
            SortKey::Age => {
                let age = |row: &Row| {
                    row.received_at
                        .map(|at| now.saturating_duration_since(at).as_secs_f64())
                };
                rows.sort_by(|a, b| descending(age(a.1), age(b.1)));
            }
        }
        rows
    }
}

/// `0.4s`, `12s`, `3m05s`, `2h07m`.
fn age(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..10 => format!("{:.1}s", duration.as_secs_f64()),
        10..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs / 60) % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test frames are objects"),
        }
    }

    fn board(sort: SortKey) -> Board {
        Board::new(
            &["AAPL".into(), "MSFT".into(), "NVDA".into()],
            sort,
            Duration::from_secs(5),
        )
    }

    fn row_of<'s>(screen: &'s str, symbol: &str) -> &'s str {
        screen
            .lines()
            .find(|l| l.starts_with(&format!("{symbol} ")))
            .unwrap_or_else(|| panic!("no row for {symbol} in\n{screen}"))
    }

    #[test]
    fn age_grows_and_a_quiet_symbol_is_marked_stale() {
        let mut board = board(SortKey::Symbol);
        let t0 = Instant::now();
        board.quotes(
            &frame(json!({"type":"snapshot","quotes":[{"symbol":"AAPL","seq":3,"bid":1.0}]})),
            t0,
        );
        let screen = board.render("ws://x/ws", t0 + Duration::from_secs(1));
        assert!(row_of(&screen, "AAPL").ends_with("1.0s  live"), "{screen}");
        let screen = board.render("ws://x/ws", t0 + Duration::from_secs(7));
        assert!(row_of(&screen, "AAPL").ends_with("7.0s  STALE"), "{screen}");
        assert!(row_of(&screen, "MSFT").ends_with("no data yet"), "{screen}");
    }

    #[test]
    fn status_trading_and_the_quote_flag_each_mark_their_rows() {
        let mut board = board(SortKey::Symbol);
        let now = Instant::now();
        let quotes = json!({"type":"snapshot","quotes":[
            {"symbol":"AAPL","seq":1},{"symbol":"MSFT","seq":1},{"symbol":"NVDA","seq":1,"stale":true}]});
        board.quotes(&frame(quotes), now);
        assert!(board.status(&frame(
            json!({"type":"status","feed":"eq","state":"down","symbols":["MSFT"]})
        )));
        assert!(board.trading(&frame(
            json!({"type":"trading","state":"halted","symbols":["AAPL"]})
        )));
        let screen = board.render("u", now);
        assert!(row_of(&screen, "AAPL").ends_with("HALTED"), "{screen}");
        assert!(row_of(&screen, "MSFT").ends_with("FEED DOWN"), "{screen}");
        assert!(row_of(&screen, "NVDA").ends_with("STALE"), "{screen}");
        // A halted symbol gets no quotes: its age alone is not staleness.
        let later = board.render("u", now + Duration::from_secs(60));
        assert!(row_of(&later, "AAPL").ends_with("HALTED"), "{later}");

        assert!(board.status(&frame(
            json!({"type":"status","feed":"eq","state":"live","symbols":["MSFT","NVDA"]})
        )));
        assert!(board.trading(&frame(
            json!({"type":"trading","state":"trading","symbols":["AAPL"]})
        )));
        let screen = board.render("u", now);
        for symbol in ["AAPL", "MSFT", "NVDA"] {
            assert!(row_of(&screen, symbol).ends_with("live"), "{screen}");
        }
    }

    #[test]
    fn a_new_subscription_forgets_status_and_halts_until_the_gateway_repeats_them() {
        let mut board = board(SortKey::Symbol);
        let now = Instant::now();
        board.quotes(&frame(json!({"type":"snapshot","quotes":[{"symbol":"AAPL","seq":1},{"symbol":"MSFT","seq":1}]})), now);
        board.trading(&frame(
            json!({"type":"trading","state":"halted","symbols":["AAPL","MSFT"]}),
        ));
        board.status(&frame(
            json!({"type":"status","feed":"eq","state":"stale","symbols":["AAPL"]}),
        ));
        // Reconnected: the ack, then the gateway repeats only MSFT's halt.
        board.subscribed(&[json!("AAPL"), json!("MSFT"), json!("NVDA")]);
        board.trading(&frame(
            json!({"type":"trading","state":"halted","symbols":["MSFT"]}),
        ));
        let screen = board.render("u", now);
        assert!(row_of(&screen, "AAPL").ends_with("live"), "{screen}");
        assert!(row_of(&screen, "MSFT").ends_with("HALTED"), "{screen}");
    }

    #[test]
    fn sorts_by_change_and_age_with_unknown_values_last() {
        let mut board = board(SortKey::Change);
        let t0 = Instant::now();
        board.quotes(
            &frame(json!({"type":"update","quotes":[{"symbol":"MSFT","change_pct":-1.0}]})),
            t0,
        );
        board.quotes(
            &frame(json!({"type":"update","quotes":[{"symbol":"AAPL","change_pct":2.5}]})),
            t0 + Duration::from_secs(2),
        );
        let order = |board: &Board| -> Vec<String> {
            board
                .sorted(t0 + Duration::from_secs(3))
                .into_iter()
                .map(|(s, _)| s.clone())
                .collect()
        };
        assert_eq!(order(&board), ["AAPL", "MSFT", "NVDA"]);
        board.sort = SortKey::Age;
        assert_eq!(order(&board), ["MSFT", "AAPL", "NVDA"]);
    }

    #[test]
    fn a_snapshot_replaces_the_row_and_an_update_merges_into_it() {
        let mut board = board(SortKey::Symbol);
        let now = Instant::now();
        board.quotes(&frame(json!({"type":"snapshot","quotes":[{"symbol":"AAPL","seq":9,"bid":1.0,"last":2.0}]})), now);
        board.quotes(
            &frame(json!({"type":"update","quotes":[{"symbol":"AAPL","seq":10,"bid":1.5}]})),
            now,
        );
        assert_eq!(board.rows["AAPL"].quote["last"], 2.0);
        // A restarted gateway's snapshot: nothing of the old process survives.
        board.quotes(
            &frame(json!({"type":"snapshot","quotes":[{"symbol":"AAPL","seq":1,"bid":3.0}]})),
            now,
        );
        assert_eq!(board.rows["AAPL"].quote.get("last"), None);
        assert_eq!(board.seqs(), frame(json!({"AAPL":1})));
    }

    #[test]
    fn malformed_and_hostile_frames_change_nothing_and_never_grow_the_board() {
        let mut board = board(SortKey::Symbol);
        let now = Instant::now();
        let flood: Vec<Value> = (0..10_000)
            .map(|i| json!({"symbol": format!("X{i}"), "seq": i}))
            .collect();
        let hostile = [
            json!({"type":"update","quotes":"AAPL"}),
            json!({"type":"update","quotes":[1, null, "AAPL", [], {"symbol": 7}, {"bid": 1.0}]}),
            json!({"type":"update","quotes": flood}),
            json!({"type":"snapshot"}),
        ];
        for frame_value in hostile {
            assert!(board.quotes(&frame(frame_value), now).is_empty());
        }
        assert!(!board.status(&frame(json!({"type":"status","symbols":["AAPL"]}))));
        assert!(!board.status(&frame(
            json!({"type":"status","state":"down","symbols":"AAPL"})
        )));
        assert!(!board.trading(&frame(
            json!({"type":"trading","state":"paused","symbols":["AAPL"]})
        )));
        assert!(!board.trading(&frame(
            json!({"type":"trading","state":"halted","symbols":{"AAPL":1}})
        )));
        assert!(board.trading(&frame(
            json!({"type":"trading","state":"halted","symbols":["ZZZ", 5, null]})
        )));
        assert_eq!(board.rows.len(), 3);
        assert_eq!(board.quotes_received, 0);
        assert!(board.rows.values().all(|r| !r.halted && r.feed.is_none()));
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(Duration::from_millis(430)), "0.4s");
        assert_eq!(age(Duration::from_secs(12)), "12s");
        assert_eq!(age(Duration::from_secs(185)), "3m05s");
        assert_eq!(age(Duration::from_secs(7620)), "2h07m");
    }
}
