//! Data frames on the wire: `update`, `trades` and `trades_lost`. A quote's
//! shared JSON is encoded once per tick by the store; this module splices it
//! (or a per-connection delta/meta form) into one frame per drain. Requests
//! and their replies are the `protocol` module's, which builds on this one.

use std::collections::BTreeMap;

use serde_json::Value;
use tickgate_feeds::{Quote, Symbol};

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

    /// Appends a quote object with `conflated` and `received_ts` spliced in
    /// before its closing brace (meta mode).
    pub fn push_with_meta(&mut self, quote_json: &str, conflated: u64, received_micros: u64) {
        self.separator();
        // A Quote object always ends with `}`.
        self.buf.push_str(&quote_json[..quote_json.len() - 1]);
        self.buf.push_str(&format!(
            r#","conflated":{conflated},"received_ts":{received_micros}}}"#
        ));
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
        frame.push_with_meta(r#"{"symbol":"B","seq":9}"#, 3, 77);
        assert_eq!(frame.quotes(), 2);
        assert_eq!(
            frame.finish().as_deref(),
            Some(
                r#"{"type":"update","quotes":[{"symbol":"A","seq":1},{"symbol":"B","seq":9,"conflated":3,"received_ts":77}]}"#
            )
        );
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
