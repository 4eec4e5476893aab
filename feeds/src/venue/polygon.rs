//! Polygon (Massive) stocks WebSocket: every frame is a JSON array of events
//! tagged by `ev` — `Q` quote, `T` trade, `status`. `t` is Unix milliseconds.
//! Every size is in shares: trade size `s` always was, and quote sizes
//! `bs`/`as` are shares since 2025-11-03 (Polygon's notice "Upcoming Changes
//! to Bid and Ask Sizes in Stocks Quotes", following the SEC's Market Data
//! Infrastructure rules; before that date they were round lots of 100). `q` (sequence) is not contiguous and resets daily, so it is not
//! used for gap detection. Other event types (aggregates) are ignored.

use simd_json::tape::Value;

use crate::model::{Tick, TickKind};
use crate::parse::{
    Decoded, Decoder, JsonScratch, Notice, ParseError, for_each_element, millis_to_micros, number,
    symbol_field, text, unsigned,
};

/// Decoder for Polygon stocks frames.
#[derive(Debug)]
pub struct PolygonDecoder {
    scratch: JsonScratch,
    max_message_bytes: usize,
}

impl PolygonDecoder {
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            scratch: JsonScratch::default(),
            max_message_bytes,
        }
    }
}

impl Decoder for PolygonDecoder {
    fn decode(&mut self, buf: &mut [u8], out: &mut Decoded) {
        let max = self.max_message_bytes;
        self.scratch.decode_bounded(buf, max, out, |root, out| {
            for_each_element(root, |event| {
                if let Err(error) = event_into(event, out) {
                    out.rejects.push(error);
                }
            });
        });
    }
}

fn event_into(event: Value<'_, '_>, out: &mut Decoded) -> Result<(), ParseError> {
    let obj = event
        .as_object()
        .ok_or(ParseError::WrongType { field: "event" })?;
    let ev = text(&obj, "ev")?.ok_or(ParseError::WrongType { field: "ev" })?;
    let ts = |field| -> Result<Option<u64>, ParseError> {
        match unsigned(&obj, field)? {
            Some(ms) => millis_to_micros(ms)
                .map(Some)
                .ok_or(ParseError::BadTimestamp { field }),
            None => Ok(None),
        }
    };
    match ev {
        "Q" => out.ticks.push(Tick {
            symbol: Some(symbol_field(&obj, "sym")?),
            kind: TickKind::Quote,
            bid: number(&obj, "bp")?,
            ask: number(&obj, "ap")?,
            bid_size: number(&obj, "bs")?,
            ask_size: number(&obj, "as")?,
            ts: ts("t")?,
            ..Tick::default()
        }),
        "T" => out.ticks.push(Tick {
            symbol: Some(symbol_field(&obj, "sym")?),
            kind: TickKind::Trade,
            last: number(&obj, "p")?,
            last_size: number(&obj, "s")?,
            ts: ts("t")?,
            ..Tick::default()
        }),
        "status" => {
            let status = text(&obj, "status")?.unwrap_or_default();
            let message = text(&obj, "message")?.unwrap_or_default();
            let message = format!("{status}: {message}");
            out.notices.push(match status {
                "auth_failed" => Notice::AuthFailed {
                    code: None,
                    message,
                },
                _ if status.contains("fail") || status == "error" => Notice::UpstreamError {
                    code: None,
                    message,
                },
                _ => Notice::Status(message),
            });
        }
        _ => {}
    }
    Ok(())
}

/// `auth` with the API key, then `subscribe` to quotes and trades.
pub(crate) fn handshake(key: &str, symbols: &[String]) -> Vec<String> {
    let params: Vec<String> = symbols
        .iter()
        .flat_map(|s| [format!("Q.{s}"), format!("T.{s}")])
        .collect();
    vec![
        serde_json::json!({"action": "auth", "params": key}).to_string(),
        serde_json::json!({"action": "subscribe", "params": params.join(",")}).to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &str) -> Decoded {
        let mut out = Decoded::default();
        PolygonDecoder::new(1 << 20).decode(&mut input.as_bytes().to_vec(), &mut out);
        out
    }

    #[test]
    fn quote_sizes_are_shares_and_time_is_millis() {
        let out = decode(
            r#"[{"ev":"Q","sym":"BRK.B","bx":4,"bp":411.25,"bs":300,"ax":7,"ap":411.3,"as":1200,"t":1700000000123}]"#,
        );
        let t = out.ticks[0];
        assert_eq!(t.symbol.map(|s| s.to_string()).as_deref(), Some("BRK.B"));
        assert_eq!(t.kind, TickKind::Quote);
        assert_eq!((t.bid, t.ask), (Some(411.25), Some(411.3)));
        assert_eq!((t.bid_size, t.ask_size), (Some(300.0), Some(1200.0)));
        assert_eq!(t.ts, Some(1_700_000_000_123_000));
    }

    #[test]
    fn trades_keep_share_sizes_and_statuses_are_notices() {
        let out = decode(
            r#"[{"ev":"status","status":"auth_failed","message":"bad key"},
                {"ev":"T","sym":"MSFT","p":414.5,"s":25,"t":1700000000000},
                {"ev":"AM","sym":"MSFT"},
                {"ev":"Q","bp":1}]"#,
        );
        assert_eq!(out.ticks.len(), 1);
        assert_eq!(out.ticks[0].kind, TickKind::Trade);
        assert_eq!(
            (out.ticks[0].last, out.ticks[0].last_size),
            (Some(414.5), Some(25.0))
        );
        assert_eq!(
            out.notices[0],
            Notice::AuthFailed {
                code: None,
                message: "auth_failed: bad key".into()
            }
        );
        assert_eq!(out.rejects, [ParseError::MissingSymbol]);
    }

    #[test]
    fn handshake_authenticates_then_subscribes() {
        let msgs = handshake("KEY", &["AAPL".into(), "MSFT".into()]);
        assert_eq!(msgs[0], r#"{"action":"auth","params":"KEY"}"#);
        assert_eq!(
            msgs[1],
            r#"{"action":"subscribe","params":"Q.AAPL,T.AAPL,Q.MSFT,T.MSFT"}"#
        );
    }
}
