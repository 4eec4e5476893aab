//! Alpaca stocks v2 WebSocket: arrays of messages tagged by `T` — `q` quote,
//! `t` trade, `success`, `subscription`, `error`. `t` is RFC 3339 with 3 to 9
//! fraction digits. Quote sizes `bs`/`as` are round lots, so they are
//! multiplied by [`ROUND_LOT`] into shares (Alpaca's answer on its forum,
//! "The Alpaca quote sizes are actually in round lots: … 15 * 100 = 1500
//! shares"; its schema only says `int`); trade size `s` is in shares. An
//! `error` message (for example `407 slow client`) is surfaced as a
//! [`Notice::UpstreamError`], or as a [`Notice::AuthFailed`] when its code is
//! one of [`AUTH_ERROR_CODES`]. Trading statuses (`s`, halts and
//! resumptions), corrections (`c`) and cancels/errors (`x`) become
//! [`VenueEvent`]s; other types (bars, LULD bands) are ignored.

use simd_json::prelude::*;
use simd_json::tape::{Object, Value};

use crate::model::{Tick, TickKind, TradingStatus, VenueEvent};
use crate::parse::{
    Decoded, Decoder, JsonScratch, Notice, ParseError, for_each_element, number, rfc3339_micros,
    symbol_field, text, unsigned,
};

/// Shares per round lot, the unit of Alpaca quote sizes.
pub const ROUND_LOT: f64 = 100.0;

/// Alpaca `error` codes that mean the credentials or their entitlement were
/// refused, so the connection will never deliver data: 401 not
/// authenticated, 402 auth failed, 404 auth timeout, 406 connection limit
/// exceeded, 409 insufficient subscription.
pub const AUTH_ERROR_CODES: [i64; 5] = [401, 402, 404, 406, 409];

/// Decoder for Alpaca stocks frames.
#[derive(Debug)]
pub struct AlpacaDecoder {
    scratch: JsonScratch,
    max_message_bytes: usize,
}

impl AlpacaDecoder {
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            scratch: JsonScratch::default(),
            max_message_bytes,
        }
    }
}

impl Decoder for AlpacaDecoder {
    fn decode(&mut self, buf: &mut [u8], out: &mut Decoded) {
        let max = self.max_message_bytes;
        self.scratch.decode_bounded(buf, max, out, |root, out| {
            for_each_element(root, |message| {
                if let Err(error) = message_into(message, out) {
                    out.rejects.push(error);
                }
            });
        });
    }
}

fn message_into(message: Value<'_, '_>, out: &mut Decoded) -> Result<(), ParseError> {
    let obj = message
        .as_object()
        .ok_or(ParseError::WrongType { field: "message" })?;
    let tag = text(&obj, "T")?.ok_or(ParseError::WrongType { field: "T" })?;
    match tag {
        "q" => out.ticks.push(Tick {
            symbol: Some(symbol_field(&obj, "S")?),
            kind: TickKind::Quote,
            bid: number(&obj, "bp")?,
            ask: number(&obj, "ap")?,
            bid_size: number(&obj, "bs")?.map(|lots| lots * ROUND_LOT),
            ask_size: number(&obj, "as")?.map(|lots| lots * ROUND_LOT),
            ts: timestamp(&obj)?,
            ..Tick::default()
        }),
        "t" => out.ticks.push(Tick {
            symbol: Some(symbol_field(&obj, "S")?),
            kind: TickKind::Trade,
            last: number(&obj, "p")?,
            last_size: number(&obj, "s")?,
            ts: timestamp(&obj)?,
            trade_id: unsigned(&obj, "i")?,
            ..Tick::default()
        }),
        "s" => {
            let code = text(&obj, "sc")?.unwrap_or_default();
            // Codes of the CTA and UTP tapes: H halt, P LULD pause, 2 halt;
            // T and 3 resumption. Others (quotation resumption, price
            // indications, imbalances) do not change whether it trades.
            let status = match code {
                "H" | "P" | "2" => TradingStatus::Halted,
                "T" | "3" => TradingStatus::Trading,
                _ => return Ok(()),
            };
            out.events.push(VenueEvent::TradingStatus {
                symbol: symbol_field(&obj, "S")?,
                status,
                ts: timestamp(&obj)?,
            });
        }
        "c" => out.events.push(VenueEvent::TradeCorrected {
            symbol: symbol_field(&obj, "S")?,
            trade_id: unsigned(&obj, "oi")?,
            original_price: number(&obj, "op")?,
            original_size: number(&obj, "os")?,
            price: number(&obj, "cp")?,
            size: number(&obj, "cs")?,
            ts: timestamp(&obj)?,
        }),
        "x" => out.events.push(VenueEvent::TradeCancelled {
            symbol: symbol_field(&obj, "S")?,
            trade_id: unsigned(&obj, "i")?,
            price: number(&obj, "p")?,
            size: number(&obj, "s")?,
            ts: timestamp(&obj)?,
        }),
        "success" | "subscription" => {
            let msg = text(&obj, "msg")?.unwrap_or(tag);
            out.notices.push(Notice::Status(msg.to_string()));
        }
        "error" => {
            let code = obj.get("code").and_then(|c| c.as_i64());
            let message = text(&obj, "msg")?
                .unwrap_or("unspecified error")
                .to_string();
            out.notices.push(match code {
                Some(code) if AUTH_ERROR_CODES.contains(&code) => Notice::AuthFailed {
                    code: Some(code),
                    message,
                },
                _ => Notice::UpstreamError { code, message },
            });
        }
        _ => {}
    }
    Ok(())
}

fn timestamp(obj: &Object<'_, '_>) -> Result<Option<u64>, ParseError> {
    match text(obj, "t")? {
        Some(t) => rfc3339_micros(t)
            .map(Some)
            .ok_or(ParseError::BadTimestamp { field: "t" }),
        None => Ok(None),
    }
}

/// `auth` with key and secret, then `subscribe` to trades, quotes and
/// trading statuses (halts and resumptions; corrections and cancels come
/// with the trades subscription).
pub(crate) fn handshake(key: &str, secret: &str, symbols: &[String]) -> Vec<String> {
    vec![
        serde_json::json!({"action": "auth", "key": key, "secret": secret}).to_string(),
        serde_json::json!({
            "action": "subscribe",
            "trades": symbols,
            "quotes": symbols,
            "statuses": symbols,
        })
        .to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Symbol;

    fn decode(input: &str) -> Decoded {
        let mut out = Decoded::default();
        AlpacaDecoder::new(1 << 20).decode(&mut input.as_bytes().to_vec(), &mut out);
        out
    }

    #[test]
    fn quotes_in_round_lots_become_shares_and_times_keep_nanoseconds_to_micros() {
        let out = decode(
            r#"[{"T":"q","S":"AMD","bx":"U","bp":141.02,"bs":2,"ax":"Q","ap":141.05,"as":5,"t":"2025-03-04T15:00:01.123456789Z","c":["R"],"z":"C"},
                {"T":"t","i":7,"S":"AMD","x":"D","p":141.03,"s":40,"t":"2025-03-04T15:00:01.5Z","c":["@"],"z":"C"}]"#,
        );
        assert!(out.rejects.is_empty(), "{:?}", out.rejects);
        let (q, t) = (out.ticks[0], out.ticks[1]);
        assert_eq!(
            (q.kind, q.bid, q.ask),
            (TickKind::Quote, Some(141.02), Some(141.05))
        );
        assert_eq!(
            (q.bid_size, q.ask_size),
            (Some(200.0), Some(500.0)),
            "round lots become shares"
        );
        assert_eq!(q.ts, Some(1_741_100_401_123_456));
        assert_eq!(
            (t.kind, t.last, t.last_size),
            (TickKind::Trade, Some(141.03), Some(40.0))
        );
        assert_eq!(t.ts, Some(1_741_100_401_500_000));
        assert_eq!(
            t.trade_id,
            Some(7),
            "corrections and cancels name trades by id"
        );
    }

    #[test]
    fn slow_client_error_is_a_notice_and_bad_time_a_reject() {
        let out = decode(
            r#"[{"T":"error","code":407,"msg":"slow client"},
                {"T":"success","msg":"authenticated"},
                {"T":"q","S":"X","bp":1,"t":"yesterday"},
                {"T":"b","S":"X"}]"#,
        );
        assert_eq!(
            out.notices[0],
            Notice::UpstreamError {
                code: Some(407),
                message: "slow client".into()
            }
        );
        assert_eq!(out.notices[1], Notice::Status("authenticated".into()));
        assert_eq!(out.rejects, [ParseError::BadTimestamp { field: "t" }]);
        assert!(out.ticks.is_empty());
    }

    #[test]
    fn rejected_credentials_are_auth_failures_and_greetings_are_status() {
        for code in AUTH_ERROR_CODES {
            let out = decode(&format!(
                r#"[{{"T":"success","msg":"connected"}},{{"T":"error","code":{code},"msg":"auth failed"}}]"#
            ));
            assert_eq!(out.notices[0], Notice::Status("connected".into()));
            assert_eq!(
                out.notices[1],
                Notice::AuthFailed {
                    code: Some(code),
                    message: "auth failed".into()
                }
            );
            assert!(out.ticks.is_empty() && out.rejects.is_empty());
        }
        let out = decode(r#"[{"T":"error","code":405,"msg":"symbol limit exceeded"}]"#);
        assert!(matches!(
            out.notices[0],
            Notice::UpstreamError {
                code: Some(405),
                ..
            }
        ));
    }

    #[test]
    fn halts_resumptions_corrections_and_cancels_become_venue_events() {
        let out = decode(
            r#"[{"T":"s","S":"AAPL","sc":"H","sm":"Trading Halt","rc":"T12","rm":"Trading Halted; For information requested by NASDAQ","t":"2025-03-04T15:00:00Z","z":"C"},
                {"T":"s","S":"AAPL","sc":"Q","sm":"Quotation Resumption","t":"2025-03-04T15:04:00Z"},
                {"T":"s","S":"AAPL","sc":"T","sm":"Trading Resumption","t":"2025-03-04T15:05:00Z"},
                {"T":"c","S":"AAPL","x":"N","oi":1001,"op":210.5,"os":100,"oc":["@"],"ci":1002,"cp":210.25,"cs":100,"cc":["@"],"t":"2025-03-04T15:06:00Z","z":"A"},
                {"T":"x","S":"AAPL","i":1003,"x":"N","p":211.0,"s":50,"a":"C","t":"2025-03-04T15:07:00Z","z":"A"},
                {"T":"x","i":1004}]"#,
        );
        let aapl = Symbol::parse("AAPL").expect("symbol");
        assert_eq!(
            out.events,
            [
                VenueEvent::TradingStatus {
                    symbol: aapl,
                    status: TradingStatus::Halted,
                    ts: Some(1_741_100_400_000_000)
                },
                VenueEvent::TradingStatus {
                    symbol: aapl,
                    status: TradingStatus::Trading,
                    ts: Some(1_741_100_700_000_000)
                },
                VenueEvent::TradeCorrected {
                    symbol: aapl,
                    trade_id: Some(1001),
                    original_price: Some(210.5),
                    original_size: Some(100.0),
                    price: Some(210.25),
                    size: Some(100.0),
                    ts: Some(1_741_100_760_000_000)
                },
                VenueEvent::TradeCancelled {
                    symbol: aapl,
                    trade_id: Some(1003),
                    price: Some(211.0),
                    size: Some(50.0),
                    ts: Some(1_741_100_820_000_000)
                },
            ]
        );
        assert!(out.ticks.is_empty(), "events are not ticks");
        assert_eq!(out.rejects, [ParseError::MissingSymbol]);
    }

    #[test]
    fn handshake_authenticates_then_subscribes() {
        let msgs = handshake("K", "S", &["AAPL".into()]);
        assert_eq!(msgs[0], r#"{"action":"auth","key":"K","secret":"S"}"#);
        assert_eq!(
            msgs[1],
            r#"{"action":"subscribe","quotes":["AAPL"],"statuses":["AAPL"],"trades":["AAPL"]}"#
        );
    }
}
