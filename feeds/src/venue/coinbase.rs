//! Coinbase Exchange `ticker` and `heartbeat` channels: JSON objects tagged by
//! `type`; every decimal is a string; `time` is ISO 8601 with microseconds.
//!
//! A ticker is sent for every match, so it becomes one [`TickKind::Trade`]
//! tick that also carries the best bid/ask and the 24 h open/high/low/volume.
//!
//! `sequence` is per product and is *not* contiguous on the ticker channel
//! (it counts every order-book message), and it can repeat. So sequences only
//! order messages: a ticker older than one already applied is rejected
//! (`out_of_order`), a repeat is accepted. The order is kept across
//! reconnects (a sequence belongs to the product, not the connection); a
//! lower sequence whose `time` is later than the last applied ticker's is
//! taken as the venue renumbering and followed. Real gaps are found through the
//! heartbeat: its `last_trade_id` is the product's latest trade, and a ticker
//! carries the `trade_id` of the latest match it reports, so a heartbeat
//! naming a newer trade than the last ticker seen means tickers were missed.

use std::collections::HashMap;

use simd_json::tape::Object;

use crate::model::{Cleared, Symbol, Tick, TickKind};
use crate::parse::{
    Decoded, Decoder, JsonScratch, Notice, ParseError, decimal, rfc3339_micros, symbol_field, text,
    unsigned,
};

/// Products whose sequence state is tracked; past this (a misbehaving
/// upstream inventing products) the tracking restarts from empty.
pub const MAX_TRACKED_PRODUCTS: usize = 4096;

/// Decoder for Coinbase Exchange frames; remembers per-product order state.
#[derive(Debug)]
pub struct CoinbaseDecoder {
    scratch: JsonScratch,
    max_message_bytes: usize,
    /// At most [`MAX_TRACKED_PRODUCTS`] entries.
    products: HashMap<Symbol, ProductState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ProductState {
    last_sequence: u64,
    /// `time` of the ticker that set `last_sequence`, 0 when it had none.
    last_time: u64,
    /// Trade id of the latest ticker, 0 before the first one.
    last_trade_id: u64,
}

impl CoinbaseDecoder {
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            scratch: JsonScratch::default(),
            max_message_bytes,
            products: HashMap::new(),
        }
    }
}

impl Decoder for CoinbaseDecoder {
    fn decode(&mut self, buf: &mut [u8], out: &mut Decoded) {
        let max = self.max_message_bytes;
        let products = &mut self.products;
        self.scratch.decode_bounded(buf, max, out, |root, out| {
            let result = root
                .as_object()
                .ok_or(ParseError::WrongType { field: "message" })
                .and_then(|obj| message_into(&obj, products, out));
            if let Err(error) = result {
                out.rejects.push(error);
            }
        });
    }

    /// Keeps every product's order state: Coinbase sequences are per
    /// product, not per connection, so a ticker replayed on a new connection
    /// that is older than one already applied is still refused.
    fn reset(&mut self) {}
}

fn message_into(
    obj: &Object<'_, '_>,
    products: &mut HashMap<Symbol, ProductState>,
    out: &mut Decoded,
) -> Result<(), ParseError> {
    match text(obj, "type")?.ok_or(ParseError::WrongType { field: "type" })? {
        "ticker" => {
            let symbol = symbol_field(obj, "product_id")?;
            let sequence = unsigned(obj, "sequence")?;
            let trade_id = unsigned(obj, "trade_id")?;
            let tick = ticker_tick(obj, symbol)?;
            let state = product(products, symbol);
            if let Some(seq) = sequence {
                let time = tick.ts.unwrap_or(0);
                // A lower sequence with a later time means the venue
                // restarted its numbering; anything else lower is older.
                let renumbered = time > state.last_time && state.last_time != 0;
                if seq < state.last_sequence && !renumbered {
                    let last = state.last_sequence;
                    return Err(ParseError::OutOfOrder { last, got: seq });
                }
                state.last_sequence = seq;
                state.last_time = time;
            }
            if let Some(id) = trade_id {
                state.last_trade_id = state.last_trade_id.max(id);
            }
            out.ticks.push(tick);
        }
        "heartbeat" => {
            let symbol = symbol_field(obj, "product_id")?;
            let last_trade_id = unsigned(obj, "last_trade_id")?.unwrap_or(0);
            let state = product(products, symbol);
            // 0 means the venue did not say; before the first ticker there is
            // nothing to compare against.
            if last_trade_id > state.last_trade_id && state.last_trade_id != 0 {
                out.gaps += 1;
            }
            if last_trade_id != 0 {
                state.last_trade_id = state.last_trade_id.max(last_trade_id);
            }
            out.heartbeats += 1;
        }
        "subscriptions" => out.notices.push(Notice::Status("subscribed".into())),
        "error" => {
            let message = text(obj, "message")?.unwrap_or("unspecified error");
            let reason = text(obj, "reason")?.unwrap_or("");
            let auth = [message, reason]
                .iter()
                .any(|t| t.to_ascii_lowercase().contains("authentication"));
            let message = format!("{message} {reason}").trim_end().to_string();
            out.notices.push(if auth {
                Notice::AuthFailed {
                    code: None,
                    message,
                }
            } else {
                Notice::UpstreamError {
                    code: None,
                    message,
                }
            });
        }
        _ => {}
    }
    Ok(())
}

fn ticker_tick(obj: &Object<'_, '_>, symbol: Symbol) -> Result<Tick, ParseError> {
    let ts = match text(obj, "time")? {
        Some(t) => Some(rfc3339_micros(t).ok_or(ParseError::BadTimestamp { field: "time" })?),
        None => None,
    };
    let last = decimal(obj, "price")?;
    Ok(Tick {
        symbol: Some(symbol),
        kind: if last.is_some() {
            TickKind::Trade
        } else {
            TickKind::Quote
        },
        bid: decimal(obj, "best_bid")?,
        ask: decimal(obj, "best_ask")?,
        bid_size: decimal(obj, "best_bid_size")?,
        ask_size: decimal(obj, "best_ask_size")?,
        last,
        last_size: decimal(obj, "last_size")?,
        volume: decimal(obj, "volume_24h")?,
        open: decimal(obj, "open_24h")?,
        high: decimal(obj, "high_24h")?,
        low: decimal(obj, "low_24h")?,
        prev_close: None,
        ts,
        seq: None,
        trade_id: None,
        cleared: Cleared::default(),
        session: None,
    })
}

fn product(products: &mut HashMap<Symbol, ProductState>, symbol: Symbol) -> &mut ProductState {
    if products.len() >= MAX_TRACKED_PRODUCTS && !products.contains_key(&symbol) {
        products.clear();
    }
    products.entry(symbol).or_default()
}

/// `subscribe` to the `ticker` and `heartbeat` channels of `symbols`
/// (Coinbase product ids are already tickgate names). No authentication is
/// needed for these public channels.
pub(crate) fn handshake(symbols: &[String]) -> Vec<String> {
    vec![
        serde_json::json!({
            "type": "subscribe",
            "product_ids": symbols,
            "channels": ["ticker", "heartbeat"],
        })
        .to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut CoinbaseDecoder, lines: &[&str]) -> Decoded {
        let mut out = Decoded::default();
        for line in lines {
            decoder.decode(&mut line.as_bytes().to_vec(), &mut out);
        }
        out
    }

    #[test]
    fn ticker_is_a_trade_with_book_and_day_stats() {
        let mut decoder = CoinbaseDecoder::new(1 << 20);
        let out = decode_all(
            &mut decoder,
            &[
                r#"{"type":"ticker","product_id":"ETH-USD","sequence":55,"trade_id":9001,"time":"2026-01-05T10:00:00.250000Z","price":"3120.55","side":"sell","last_size":"0.5","best_bid":"3120.5","best_bid_size":"2.25","best_ask":"3120.6","best_ask_size":"1.75","open_24h":"3001","high_24h":"3150.1","low_24h":"2990.25","volume_24h":"12345.678","volume_30d":"1"}"#,
            ],
        );
        assert!(out.rejects.is_empty(), "{:?}", out.rejects);
        let t = out.ticks[0];
        assert_eq!(t.symbol.map(|s| s.to_string()).as_deref(), Some("ETH-USD"));
        assert_eq!(t.kind, TickKind::Trade);
        assert_eq!((t.last, t.last_size), (Some(3120.55), Some(0.5)));
        assert_eq!((t.bid, t.bid_size), (Some(3120.5), Some(2.25)));
        assert_eq!((t.ask, t.ask_size), (Some(3120.6), Some(1.75)));
        assert_eq!(
            (t.open, t.high, t.low),
            (Some(3001.0), Some(3150.1), Some(2990.25))
        );
        assert_eq!(t.volume, Some(12345.678));
        assert_eq!(t.ts, Some(1_767_607_200_250_000));
    }

    #[test]
    fn repeats_pass_older_sequences_are_rejected_and_heartbeats_find_gaps() {
        let mut decoder = CoinbaseDecoder::new(1 << 20);
        let out = decode_all(
            &mut decoder,
            &[
                r#"{"type":"ticker","product_id":"BTC-USD","sequence":100,"trade_id":10,"price":"1"}"#,
                r#"{"type":"ticker","product_id":"BTC-USD","sequence":100,"trade_id":10,"price":"1"}"#,
                r#"{"type":"ticker","product_id":"BTC-USD","sequence":140,"trade_id":12,"price":"2"}"#,
                r#"{"type":"ticker","product_id":"BTC-USD","sequence":120,"trade_id":11,"price":"3"}"#,
                r#"{"type":"heartbeat","product_id":"BTC-USD","sequence":150,"last_trade_id":12}"#,
                r#"{"type":"heartbeat","product_id":"BTC-USD","sequence":190,"last_trade_id":15}"#,
                r#"{"type":"heartbeat","product_id":"BTC-USD","sequence":191,"last_trade_id":15}"#,
                r#"{"type":"heartbeat","product_id":"ETH-USD","sequence":5,"last_trade_id":99}"#,
            ],
        );
        assert_eq!(out.ticks.len(), 3, "two plus the repeat");
        assert_eq!(
            out.rejects,
            [ParseError::OutOfOrder {
                last: 140,
                got: 120
            }]
        );
        assert_eq!(
            out.gaps, 1,
            "trade 13..15 missed once; unseen product is no gap"
        );
        decoder.reset();
        let out = decode_all(
            &mut decoder,
            &[
                r#"{"type":"ticker","product_id":"BTC-USD","sequence":130,"trade_id":11,"price":"1"}"#,
            ],
        );
        assert!(
            out.ticks.is_empty(),
            "a new connection keeps the product's order"
        );
    }

    #[test]
    fn an_older_ticker_after_a_reconnect_is_refused_and_a_renumbering_is_followed() {
        let mut decoder = CoinbaseDecoder::new(1 << 20);
        let ticker = |seq: u64, second: u32, price: &str| {
            format!(
                r#"{{"type":"ticker","product_id":"ETH-USD","sequence":{seq},"time":"2026-01-05T10:00:{second:02}.000000Z","price":"{price}"}}"#
            )
        };
        let first = decode_all(&mut decoder, &[&ticker(500, 10, "3000")]);
        assert_eq!(first.ticks.len(), 1);
        decoder.reset();
        let replayed = decode_all(
            &mut decoder,
            &[&ticker(480, 9, "2990"), &ticker(500, 10, "3000")],
        );
        assert_eq!(
            replayed.rejects,
            [ParseError::OutOfOrder {
                last: 500,
                got: 480
            }]
        );
        assert_eq!(replayed.ticks.len(), 1, "the repeat of the newest passes");
        let renumbered = decode_all(
            &mut decoder,
            &[&ticker(3, 20, "3050"), &ticker(2, 19, "3040")],
        );
        assert_eq!(
            renumbered.ticks.iter().map(|t| t.last).collect::<Vec<_>>(),
            [Some(3050.0)],
            "a lower sequence with a later time is a new numbering; older after it is refused"
        );
    }

    #[test]
    fn authentication_errors_and_heartbeats_are_told_apart() {
        let mut decoder = CoinbaseDecoder::new(1 << 20);
        let out = decode_all(
            &mut decoder,
            &[
                r#"{"type":"error","message":"Authentication Failed","reason":"invalid signature"}"#,
                r#"{"type":"heartbeat","product_id":"BTC-USD","sequence":1,"last_trade_id":0}"#,
                r#"{"type":"subscriptions","channels":[]}"#,
            ],
        );
        assert_eq!(
            out.notices,
            [
                Notice::AuthFailed {
                    code: None,
                    message: "Authentication Failed invalid signature".into()
                },
                Notice::Status("subscribed".into())
            ]
        );
        assert_eq!(out.heartbeats, 1);
        assert!(out.ticks.is_empty());
    }

    #[test]
    fn decimal_strings_that_are_not_numbers_are_rejected() {
        let mut decoder = CoinbaseDecoder::new(1 << 20);
        let out = decode_all(
            &mut decoder,
            &[
                r#"{"type":"ticker","product_id":"BTC-USD","price":"NaN"}"#,
                r#"{"type":"ticker","product_id":"BTC-USD","price":true}"#,
                r#"{"type":"ticker","price":"1"}"#,
                r#"{"type":"error","message":"Failed to subscribe","reason":"bad product"}"#,
                r#"[1,2]"#,
            ],
        );
        let reasons: Vec<_> = out.rejects.iter().map(ParseError::kind).collect();
        assert_eq!(
            reasons,
            ["bad_number", "wrong_type", "missing_symbol", "wrong_type"]
        );
        assert_eq!(
            out.notices,
            [Notice::UpstreamError {
                code: None,
                message: "Failed to subscribe bad product".into()
            }]
        );
    }

    #[test]
    fn handshake_subscribes_to_ticker_and_heartbeat() {
        assert_eq!(
            handshake(&["BTC-USD".into()]),
            [r#"{"channels":["ticker","heartbeat"],"product_ids":["BTC-USD"],"type":"subscribe"}"#]
        );
    }
}
