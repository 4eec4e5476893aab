//! The wire format: a published quote is its client-protocol JSON, decoded
//! back into a tick carrying `seq`, plus `"trading":"halted"|"trading"` once
//! a venue halted the symbol (docs/nats.md, "Trading status"); and the
//! publisher heartbeat.

use serde::Deserialize;
use simd_json::prelude::*;

use crate::model::{Cleared, Quote, Tick, TickKind, TradingStatus};
use crate::parse::{JsonScratch, ParseError, unsigned};

/// Decodes one published quote (its client-protocol JSON) into a tick that
/// carries every field and the publisher's `seq`. A quote is state, so the
/// tick is always of kind `quote`: applying it sets the fields, it does not
/// add a trade. A published quote is complete, so a field it leaves out is
/// unknown at the publisher (a feed cleared it with `null`) and the tick
/// clears it too: replicas never keep a value the publisher dropped.
pub fn decode_quote(scratch: &mut JsonScratch, buf: &mut [u8]) -> Result<Tick, ParseError> {
    decode_published(scratch, buf).map(|(tick, _)| tick)
}

/// [`decode_quote`], plus the trading status the message carries: `None`
/// for a symbol the publisher never saw halted. A `trading` value other
/// than `"halted"` or `"trading"` refuses the whole message.
pub fn decode_published(
    scratch: &mut JsonScratch,
    buf: &mut [u8],
) -> Result<(Tick, Option<TradingStatus>), ParseError> {
    scratch.parse(buf, |root| {
        let obj = root
            .as_object()
            .ok_or(ParseError::WrongType { field: "quote" })?;
        let mut tick = crate::json::tick_from_object(&obj)?;
        tick.kind = TickKind::Quote;
        tick.cleared = tick.cleared.with(unknown_fields(&tick));
        tick.seq = Some(unsigned(&obj, "seq")?.ok_or(ParseError::WrongType { field: "seq" })?);
        let trading = match obj.get("trading") {
            None => None,
            Some(value) => Some(
                value
                    .as_str()
                    .and_then(TradingStatus::parse)
                    .ok_or(ParseError::WrongType { field: "trading" })?,
            ),
        };
        Ok((tick, trading))
    })?
}

/// The message published for `quote`: its client-protocol JSON, with
/// `"trading"` added when the publisher holds a status for the symbol.
pub fn encode_quote(quote: &Quote, trading: Option<TradingStatus>) -> Option<Vec<u8>> {
    let Some(status) = trading else {
        return serde_json::to_vec(quote).ok();
    };
    let mut value = serde_json::to_value(quote).ok()?;
    value
        .as_object_mut()?
        .insert("trading".into(), status.as_str().into());
    serde_json::to_vec(&value).ok()
}

/// The quote fields `tick` does not carry.
fn unknown_fields(tick: &Tick) -> Cleared {
    [
        (tick.bid, Cleared::BID),
        (tick.ask, Cleared::ASK),
        (tick.bid_size, Cleared::BID_SIZE),
        (tick.ask_size, Cleared::ASK_SIZE),
        (tick.last, Cleared::LAST),
        (tick.last_size, Cleared::LAST_SIZE),
        (tick.volume, Cleared::VOLUME),
        (tick.open, Cleared::OPEN),
        (tick.high, Cleared::HIGH),
        (tick.low, Cleared::LOW),
        (tick.prev_close, Cleared::PREV_CLOSE),
    ]
    .into_iter()
    .filter(|(value, _)| value.is_none())
    .fold(Cleared::default(), |unknown, (_, field)| {
        unknown.with(field)
    })
}

/// The publisher's heartbeat: when it was sent and whether the publisher's
/// own upstream is live. Published every second or so on `<prefix>.$hb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Heartbeat {
    /// Microseconds since the Unix epoch at the publisher.
    pub ts: u64,
    /// True while the publisher's upstream feeds are live.
    pub live: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Quote, Symbol};

    #[test]
    fn a_field_the_publisher_dropped_is_dropped_by_the_replica() {
        let mut scratch = JsonScratch::default();
        let mut replica = Quote::new(sym("AAPL"));
        let mut full =
            br#"{"symbol":"AAPL","seq":41,"bid":1.5,"ask":1.6,"last":1.55,"ts":1764000000000000}"#
                .to_vec();
        let tick = decode_quote(&mut scratch, &mut full).expect("decodes");
        assert!(replica.apply(&tick, 1));
        let mut bid_cleared =
            br#"{"symbol":"AAPL","seq":42,"ask":1.7,"last":1.55,"ts":1764000000000001}"#.to_vec();
        let tick = decode_quote(&mut scratch, &mut bid_cleared).expect("decodes");
        assert!(tick.validate(1_764_000_000_000_001).is_ok());
        assert!(replica.apply(&tick, 2));
        assert_eq!(
            (replica.seq, replica.bid, replica.ask, replica.last),
            (42, None, Some(1.7), Some(1.55))
        );
    }

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("valid symbol")
    }

    #[test]
    fn a_trading_status_rides_in_the_quote_message_and_a_bad_one_refuses_it() {
        let mut scratch = JsonScratch::default();
        let mut quote = Quote::new(sym("AAPL"));
        quote.seq = 7;
        quote.bid = Some(1.5);
        quote.ts = 1_764_000_000_000_000;
        let mut plain = encode_quote(&quote, None).expect("encodes");
        let (_, trading) = decode_published(&mut scratch, &mut plain).expect("decodes");
        assert_eq!(trading, None);
        let mut halted = encode_quote(&quote, Some(TradingStatus::Halted)).expect("encodes");
        let (tick, trading) = decode_published(&mut scratch, &mut halted).expect("decodes");
        assert_eq!(
            (trading, tick.seq, tick.bid),
            (Some(TradingStatus::Halted), Some(7), Some(1.5))
        );
        let mut bad =
            br#"{"symbol":"AAPL","seq":8,"trading":"maybe","ts":1764000000000000}"#.to_vec();
        assert_eq!(
            decode_published(&mut scratch, &mut bad),
            Err(ParseError::WrongType { field: "trading" })
        );
    }

    #[test]
    fn a_published_quote_decodes_to_a_tick_with_every_field_and_seq() {
        let mut scratch = JsonScratch::default();
        let mut text = br#"{"symbol":"AAPL","seq":42,"bid":1.5,"ask":1.6,"bid_size":10.0,"ask_size":20.0,"last":1.55,"last_size":5.0,"volume":900.0,"open":1.4,"high":1.7,"low":1.3,"prev_close":1.45,"change":0.1,"change_pct":6.896552,"ts":1764000000000000}"#.to_vec();
        let tick = decode_quote(&mut scratch, &mut text).expect("decodes");
        assert_eq!(tick.symbol, Some(sym("AAPL")));
        assert_eq!(tick.seq, Some(42));
        assert_eq!(tick.kind, TickKind::Quote);
        assert_eq!(
            (tick.bid, tick.ask, tick.last),
            (Some(1.5), Some(1.6), Some(1.55))
        );
        assert_eq!(
            (tick.open, tick.high, tick.low),
            (Some(1.4), Some(1.7), Some(1.3))
        );
        assert_eq!(tick.prev_close, Some(1.45));
        assert_eq!(tick.ts, Some(1_764_000_000_000_000));
        assert!(tick.cleared.is_empty(), "a complete quote clears nothing");
        let mut no_seq = br#"{"symbol":"AAPL","bid":1.5}"#.to_vec();
        assert!(decode_quote(&mut scratch, &mut no_seq).is_err());
        let mut garbage = b"{not json".to_vec();
        assert_eq!(
            decode_quote(&mut scratch, &mut garbage),
            Err(ParseError::MalformedJson)
        );
    }
}
