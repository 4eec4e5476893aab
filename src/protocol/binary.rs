//! The binary encoding (*extension*, subprotocol `tickgate.v1.bin`): every
//! server message as one MessagePack map in a binary WebSocket frame, with
//! the same keys and values as its JSON form except inside quotes and
//! trades, where
//!
//! - `symbol` becomes `s`, a small integer this connection learns once: the
//!   first frame that uses an id carries `"defs":[[id,"AAPL"],…]`;
//! - each price field (`bid`, `ask`, `last`, `open`, `high`, `low`,
//!   `prev_close`, `change`, a trade's `price`) whose value is an exact
//!   decimal with at most [`MAX_DECIMALS`] places travels as an integer,
//!   scaled by the quote's `px` (value = integer / 10^px); others stay
//!   float64;
//! - a size or volume with an integral value travels as an integer.
//!
//! Decoding ([`BinaryDecoder`], in `tickgate-clients` so the command-line
//! clients share it) gives back exactly the JSON message's values.
//! The layout is documented in docs/protocol.md ("Binary encoding").
//!
//! A [`BinaryEncoder`] belongs to one connection (it holds the ids the
//! client has learnt); it transcodes the frames the JSON path built, so
//! both encodings always say the same thing.

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

pub use tickgate_clients::binary::{
    BinaryDecoder, DecodeError, MAX_DECIMALS, PRICES, SIZES, SUBPROTOCOL,
};

/// How a connection's server messages travel, chosen at the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// JSON text frames: the protocol's default.
    Json,
    /// MessagePack binary frames ([`SUBPROTOCOL`]).
    Binary,
}

impl Encoding {
    /// The encoding a `Sec-WebSocket-Protocol` request header asks for
    /// (comma-separated subprotocols, in the client's order of
    /// preference): binary when it names [`SUBPROTOCOL`], else JSON.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let binary = offered
            .into_iter()
            .flat_map(|header| header.split(|&b| b == b','))
            .any(|name| name.trim_ascii() == SUBPROTOCOL.as_bytes());
        if binary { Self::Binary } else { Self::Json }
    }
}

/// One connection's binary encoder: the symbol ids its client knows.
#[derive(Debug, Default)]
pub struct BinaryEncoder {
    ids: FxHashMap<String, u64>,
}

impl BinaryEncoder {
    /// The binary form of one JSON server message. A frame that is not a
    /// JSON object (never produced by the gateway) travels as a MessagePack
    /// string, so nothing is dropped.
    pub fn encode(&mut self, json: &str) -> Vec<u8> {
        let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(json) else {
            return rmp_serde::to_vec(json).unwrap_or_default();
        };
        let list = match message.get("type").and_then(Value::as_str) {
            Some("snapshot" | "update") => Some("quotes"),
            Some("trades") => Some("trades"),
            _ => None,
        };
        if let Some(list) = list {
            let mut new_ids = Vec::new();
            if let Some(Value::Array(items)) = message.get_mut(list) {
                for item in items {
                    if let Value::Object(quote) = item {
                        self.compact(quote, &mut new_ids);
                    }
                }
            }
            if !new_ids.is_empty() {
                message.insert("defs".to_owned(), Value::Array(new_ids));
            }
        }
        // Serializing a JSON value to MessagePack cannot fail.
        rmp_serde::to_vec_named(&Value::Object(message)).unwrap_or_default()
    }

    /// Rewrites one quote or trade in place: symbol id, scaled prices,
    /// integral sizes.
    fn compact(&mut self, quote: &mut Map<String, Value>, new_ids: &mut Vec<Value>) {
        if let Some(Value::String(symbol)) = quote.remove("symbol") {
            let next = self.ids.len() as u64;
            let id = *self.ids.entry(symbol.clone()).or_insert_with(|| {
                new_ids.push(Value::Array(vec![next.into(), Value::String(symbol)]));
                next
            });
            quote.insert("s".to_owned(), id.into());
        }
        // One scale for the quote: the most places any of its prices needs;
        // a price that is not exact at it (or at all) stays a float.
        let scale = PRICES
            .iter()
            .filter_map(|field| quote.get(*field).and_then(Value::as_f64))
            .filter_map(decimals)
            .max()
            .unwrap_or(0);
        let mut scaled_any = false;
        for field in PRICES {
            if let Some(value) = quote.get_mut(field)
                && let Some(price) = value.as_f64()
                && let Some(int) = scaled(price, scale)
            {
                *value = Value::Number(int.into());
                scaled_any = true;
            }
        }
        if scaled_any && scale > 0 {
            quote.insert("px".to_owned(), scale.into());
        }
        for field in SIZES {
            if let Some(value) = quote.get_mut(field)
                && let Some(size) = value.as_f64()
                && let Some(int) = scaled(size, 0)
            {
                *value = Value::Number(int.into());
            }
        }
    }
}

/// Fewest decimal places (at most [`MAX_DECIMALS`]) at which `value` is an
/// exact scaled integer, or `None`.
fn decimals(value: f64) -> Option<i32> {
    (0..=MAX_DECIMALS).find(|&places| scaled(value, places).is_some())
}

/// Largest integer a decoder can hold exactly in a float64 (2^53).
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// `value × 10^places` as an integer, when dividing it back gives exactly
/// `value` and it fits a float64's exact range.
fn scaled(value: f64, places: i32) -> Option<i64> {
    let factor = 10f64.powi(places);
    let int = (value * factor).round();
    if !int.is_finite() || int.abs() >= EXACT_INT {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)] // |int| < 2^53
    let int = int as i64;
    #[allow(clippy::cast_precision_loss)] // |int| < 2^53: exact
    let back = int as f64 / factor;
    (back.to_bits() == value.to_bits()).then_some(int)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;
    use tickgate_feeds::{Quote, Symbol};

    use super::*;
    use crate::fanout::encode::UpdateFrame;

    fn roundtrip(encoder: &mut BinaryEncoder, decoder: &mut BinaryDecoder, json: &str) -> Value {
        let bytes = encoder.encode(json);
        decoder.decode(&bytes).expect("decodes")
    }

    #[test]
    fn prices_become_scaled_integers_and_symbols_small_ids() {
        let mut encoder = BinaryEncoder::default();
        let json = r#"{"type":"update","quotes":[{"symbol":"AAPL","seq":7,"bid":231.38,"ask":231.4,"bid_size":300.0,"ts":1764000000123456}]}"#;
        let raw: Value = rmp_serde::from_slice(&encoder.encode(json)).expect("msgpack");
        assert_eq!(
            raw,
            json!({"type":"update","defs":[[0,"AAPL"]],
                   "quotes":[{"s":0,"seq":7,"bid":23138,"ask":23140,"px":2,"bid_size":300,"ts":1_764_000_000_123_456_u64}]})
        );
        // The id is known now: the next frame carries no table.
        let raw: Value = rmp_serde::from_slice(&encoder.encode(json)).expect("msgpack");
        assert!(raw.get("defs").is_none(), "{raw}");
        let size = encoder.encode(json).len();
        assert!(
            size * 3 < json.len() * 2,
            "{size} bytes for {} of JSON",
            json.len()
        );
    }

    #[test]
    fn control_messages_keep_their_json_shape() {
        let mut encoder = BinaryEncoder::default();
        let mut decoder = BinaryDecoder::default();
        for json in [
            r#"{"type":"subscribed","id":1,"symbols":["AAPL"],"epoch":"e1"}"#,
            r#"{"type":"status","feed":"equities","state":"stale","symbols":["AAPL","MSFT"]}"#,
            r#"{"type":"error","id":"x","code":"rate_limited","message":"slow down"}"#,
            r#"{"type":"heartbeat","ts":1764000000000000}"#,
        ] {
            let expected: Value = serde_json::from_str(json).expect("json");
            assert_eq!(roundtrip(&mut encoder, &mut decoder, json), expected);
        }
    }

    #[test]
    fn an_unknown_id_or_a_broken_table_is_an_error_not_a_guess() {
        let mut decoder = BinaryDecoder::default();
        let frame = rmp_serde::to_vec_named(&json!({"type":"update","quotes":[{"s":3,"seq":1}]}))
            .expect("msgpack");
        assert!(matches!(
            decoder.decode(&frame),
            Err(DecodeError::UnknownId(3))
        ));
        let frame = rmp_serde::to_vec_named(&json!({"type":"update","defs":[[1]],"quotes":[]}))
            .expect("msgpack");
        assert!(matches!(decoder.decode(&frame), Err(DecodeError::BadTable)));
        assert!(decoder.decode(&[0xc1]).is_err());
        assert!(
            decoder
                .decode(&rmp_serde::to_vec(&7).expect("msgpack"))
                .is_err()
        );
    }

    fn price() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            Just(None),
            (0i64..10_000_000, 0i32..=6)
                .prop_map(|(n, places)| Some(n as f64 / 10f64.powi(places))),
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(Some),
        ]
    }

    prop_compose! {
        fn quote()(symbol in "[A-Z]{1,5}", seq in 1u64..1 << 40, bid in price(), ask in price(),
                   last in price(), change in price(), bid_size in price(), volume in price(),
                   ts in 0u64..1 << 53) -> Quote {
            Quote {
                seq, bid, ask, last, change, bid_size, volume, ts,
                ..Quote::new(Symbol::parse(&symbol).expect("symbol"))
            }
        }
    }

    proptest! {
        /// Whatever ticks made the quotes, the binary form decodes to
        /// exactly the JSON protocol's frame, over a connection's lifetime
        /// (ids learnt in earlier frames are used in later ones).
        #[test]
        fn binary_frames_decode_to_exactly_the_json_frames(
            frames in prop::collection::vec(prop::collection::vec(quote(), 1..8), 1..6)
        ) {
            let mut encoder = BinaryEncoder::default();
            let mut decoder = BinaryDecoder::default();
            for quotes in frames {
                let mut frame = UpdateFrame::with_capacity(quotes.len());
                for quote in &quotes {
                    frame.push(&serde_json::to_string(quote).expect("json"));
                }
                let json = frame.finish().expect("a frame");
                let expected: Value = serde_json::from_str(&json).expect("json");
                prop_assert_eq!(roundtrip(&mut encoder, &mut decoder, &json), expected);
            }
        }
    }
}
