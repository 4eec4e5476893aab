//! Decoding tickgate's binary encoding (subprotocol `tickgate.v1.bin`,
//! docs/protocol.md "Binary encoding"): every server message is one
//! MessagePack map with the JSON message's keys, except inside quotes and
//! trades, where `s` stands for `symbol` (ids learnt from a frame's `defs`),
//! prices may be integers scaled by the quote's `px`, and integral sizes
//! are integers. The gateway's encoder is `tickgate::protocol::binary`.

use rustc_hash::FxHashMap;
use serde_json::{Map, Number, Value};

/// The WebSocket subprotocol a client offers to receive binary frames.
pub const SUBPROTOCOL: &str = "tickgate.v1.bin";

/// Most decimal places a price may have to travel as a scaled integer.
pub const MAX_DECIMALS: i32 = 9;

/// Price fields of a quote or trade: scaled integers where exact.
pub const PRICES: [&str; 9] = [
    "bid",
    "ask",
    "last",
    "open",
    "high",
    "low",
    "prev_close",
    "change",
    "price",
];

/// Size fields: integers when integral.
pub const SIZES: [&str; 5] = ["bid_size", "ask_size", "last_size", "volume", "size"];

/// What a decoder must remember between frames: the symbol ids learnt.
#[derive(Debug, Default)]
pub struct BinaryDecoder {
    names: FxHashMap<u64, String>,
}

/// Why a binary frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not MessagePack: {0}")]
    Format(#[from] rmp_serde::decode::Error),
    #[error("a frame must be a map")]
    NotAMap,
    #[error("symbol id {0} was never defined")]
    UnknownId(u64),
    #[error("malformed symbols table")]
    BadTable,
}

impl BinaryDecoder {
    /// The JSON form of one binary frame: exactly the message the JSON
    /// encoding would have carried (numbers as JSON numbers).
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Value, DecodeError> {
        let Value::Object(mut message) = rmp_serde::from_slice::<Value>(bytes)? else {
            return Err(DecodeError::NotAMap);
        };
        if let Some(table) = message.remove("defs") {
            let Value::Array(entries) = table else {
                return Err(DecodeError::BadTable);
            };
            for entry in entries {
                match entry {
                    Value::Array(pair) if pair.len() == 2 => {
                        let (Some(id), Some(name)) = (pair[0].as_u64(), pair[1].as_str()) else {
                            return Err(DecodeError::BadTable);
                        };
                        self.names.insert(id, name.to_owned());
                    }
                    _ => return Err(DecodeError::BadTable),
                }
            }
        }
        for list in ["quotes", "trades"] {
            if let Some(Value::Array(items)) = message.get_mut(list) {
                for item in items {
                    if let Value::Object(quote) = item {
                        self.expand(quote)?;
                    }
                }
            }
        }
        Ok(Value::Object(message))
    }

    fn expand(&self, quote: &mut Map<String, Value>) -> Result<(), DecodeError> {
        if let Some(id) = quote.remove("s").and_then(|id| id.as_u64()) {
            let name = self.names.get(&id).ok_or(DecodeError::UnknownId(id))?;
            quote.insert("symbol".to_owned(), Value::String(name.clone()));
        }
        let places = quote
            .remove("px")
            .and_then(|p| p.as_i64())
            .map_or(0, |p| p.clamp(0, i64::from(MAX_DECIMALS)));
        #[allow(clippy::cast_possible_truncation)] // clamped to 0..=9
        let factor = 10f64.powi(places as i32);
        for field in PRICES.iter().chain(SIZES.iter()) {
            if let Some(value) = quote.get_mut(*field)
                && let Some(int) = value.as_i64()
            {
                let divisor = if PRICES.contains(field) { factor } else { 1.0 };
                #[allow(clippy::cast_precision_loss)] // encoder keeps |int| < 2^53
                let float = int as f64 / divisor;
                if let Some(number) = Number::from_f64(float) {
                    *value = Value::Number(number);
                }
            }
        }
        Ok(())
    }
}
