//! The generic ingest format of DESIGN §4: one JSON object with the Quote
//! fields, or an array of them.
//!
//! `symbol` is required; `bid ask bid_size ask_size last last_size volume
//! open high low prev_close` are JSON numbers (or `null`); `ts` is an integer
//! count of microseconds since the Unix epoch; `kind` is `"quote"` or
//! `"trade"`. Without `kind`, a tick carrying `last` and neither `bid` nor
//! `ask` is a trade. Unknown fields are ignored. A bad element of an array is
//! rejected alone; its good neighbours are kept.

use simd_json::tape::{Object, Value};

use crate::model::{Tick, TickKind};
use crate::parse::{
    DEFAULT_MAX_MESSAGE_BYTES, Decoded, Decoder, JsonScratch, ParseError, for_each_element, number,
    symbol_field, text, unsigned,
};

/// Decoder for the generic format. Holds the reusable simd-json scratch.
#[derive(Debug)]
pub struct JsonDecoder {
    scratch: JsonScratch,
    max_message_bytes: usize,
}

impl Default for JsonDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

impl JsonDecoder {
    /// A decoder that skips (and reports) messages over `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            scratch: JsonScratch::default(),
            max_message_bytes,
        }
    }
}

impl Decoder for JsonDecoder {
    fn decode(&mut self, buf: &mut [u8], out: &mut Decoded) {
        let max = self.max_message_bytes;
        self.scratch.decode_bounded(buf, max, out, |root, out| {
            for_each_element(root, |element| match element_tick(element) {
                Ok(tick) => out.ticks.push(tick),
                Err(error) => out.rejects.push(error),
            });
        });
    }
}

/// Parses one message of the generic format into `out`, returning how many
/// ticks were appended; bad elements are appended to `rejects`. A message
/// that is not JSON at all is an `Err`.
pub fn parse_ticks(
    scratch: &mut JsonScratch,
    buf: &mut [u8],
    out: &mut Vec<Tick>,
    rejects: &mut Vec<ParseError>,
) -> Result<usize, ParseError> {
    let before = out.len();
    scratch.parse(buf, |root| {
        for_each_element(root, |element| match element_tick(element) {
            Ok(tick) => out.push(tick),
            Err(error) => rejects.push(error),
        });
    })?;
    Ok(out.len() - before)
}

fn element_tick(element: Value<'_, '_>) -> Result<Tick, ParseError> {
    let obj = element
        .as_object()
        .ok_or(ParseError::WrongType { field: "element" })?;
    tick_from_object(&obj)
}

/// One generic-format object as a tick.
pub(crate) fn tick_from_object(obj: &Object<'_, '_>) -> Result<Tick, ParseError> {
    let symbol = symbol_field(obj, "symbol")?;
    let mut tick = Tick {
        symbol: Some(symbol),
        bid: number(obj, "bid")?,
        ask: number(obj, "ask")?,
        bid_size: number(obj, "bid_size")?,
        ask_size: number(obj, "ask_size")?,
        last: number(obj, "last")?,
        last_size: number(obj, "last_size")?,
        volume: number(obj, "volume")?,
        open: number(obj, "open")?,
        high: number(obj, "high")?,
        low: number(obj, "low")?,
        prev_close: number(obj, "prev_close")?,
        ts: unsigned(obj, "ts")?,
        ..Tick::default()
    };
    tick.kind = match text(obj, "kind")? {
        Some("trade") => TickKind::Trade,
        Some("quote") => TickKind::Quote,
        Some(_) => return Err(ParseError::WrongType { field: "kind" }),
        None if tick.last.is_some() && tick.bid.is_none() && tick.ask.is_none() => TickKind::Trade,
        None => TickKind::Quote,
    };
    Ok(tick)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Symbol;

    fn decode(input: &str) -> Decoded {
        let mut out = Decoded::default();
        JsonDecoder::default().decode(&mut input.as_bytes().to_vec(), &mut out);
        out
    }

    #[test]
    fn one_object_becomes_one_tick_with_every_field() {
        let out = decode(
            r#"{"symbol":"AAPL","bid":189.5,"ask":189.52,"bid_size":300,"ask_size":200,
               "last":189.51,"last_size":100,"volume":1200000,"open":188,"high":190.25,
               "low":187.5,"prev_close":187.9,"ts":1764000000000000,"venue":"X"}"#,
        );
        assert!(out.rejects.is_empty(), "{:?}", out.rejects);
        let tick = out.ticks[0];
        assert_eq!(tick.symbol, Symbol::parse("AAPL").ok());
        assert_eq!(tick.kind, TickKind::Quote, "bid/ask present: a quote");
        assert_eq!((tick.bid, tick.ask), (Some(189.5), Some(189.52)));
        assert_eq!((tick.bid_size, tick.ask_size), (Some(300.0), Some(200.0)));
        assert_eq!((tick.last, tick.last_size), (Some(189.51), Some(100.0)));
        assert_eq!(tick.volume, Some(1_200_000.0));
        assert_eq!(
            (tick.open, tick.high, tick.low),
            (Some(188.0), Some(190.25), Some(187.5))
        );
        assert_eq!(tick.prev_close, Some(187.9));
        assert_eq!(tick.ts, Some(1_764_000_000_000_000));
    }

    #[test]
    fn kind_is_explicit_or_inferred_from_a_bare_last() {
        let out = decode(
            r#"[{"symbol":"A","last":1.5,"last_size":10},
                {"symbol":"B","last":1.5,"bid":1.4},
                {"symbol":"C","bid":1.4,"kind":"trade"},
                {"symbol":"D","last":1.5,"kind":"quote"}]"#,
        );
        let kinds: Vec<_> = out.ticks.iter().map(|t| t.kind).collect();
        use TickKind::{Quote, Trade};
        assert_eq!(kinds, [Trade, Quote, Trade, Quote]);
    }

    #[test]
    fn a_bad_element_does_not_lose_its_neighbours() {
        let out = decode(
            r#"[{"symbol":"A","bid":1},
                {"bid":2},
                {"symbol":"B C","bid":3},
                {"symbol":"D","bid":"4"},
                7,
                {"symbol":"E","ts":-5,"bid":1},
                {"symbol":"F","kind":"auction","bid":1},
                {"symbol":"G","ask":2}]"#,
        );
        let symbols: Vec<_> = out
            .ticks
            .iter()
            .filter_map(|t| t.symbol.map(|s| s.to_string()))
            .collect();
        assert_eq!(symbols, ["A", "G"]);
        let reasons: Vec<_> = out.rejects.iter().map(ParseError::kind).collect();
        assert_eq!(
            reasons,
            [
                "missing_symbol",
                "invalid_symbol",
                "wrong_type",
                "wrong_type",
                "wrong_type",
                "wrong_type"
            ]
        );
    }

    #[test]
    fn garbage_and_oversize_are_reported_not_panicked_on() {
        assert_eq!(decode("{\"symbol\":").rejects, [ParseError::MalformedJson]);
        assert_eq!(decode("").rejects, [ParseError::MalformedJson]);
        let mut out = Decoded::default();
        let mut big = format!(r#"{{"symbol":"A","pad":"{}"}}"#, "x".repeat(100)).into_bytes();
        JsonDecoder::new(64).decode(&mut big, &mut out);
        assert_eq!(out.rejects[0].kind(), "oversize");
        assert!(out.ticks.is_empty());
    }

    #[test]
    fn null_fields_mean_unknown() {
        let out = decode(r#"{"symbol":"A","bid":null,"ask":2,"ts":null}"#);
        assert_eq!(
            (out.ticks[0].bid, out.ticks[0].ask, out.ticks[0].ts),
            (None, Some(2.0), None)
        );
    }

    #[test]
    fn parse_ticks_counts_what_it_appended() {
        let mut scratch = JsonScratch::default();
        let (mut ticks, mut rejects) = (Vec::new(), Vec::new());
        let mut buf = br#"[{"symbol":"A","bid":1},{"x":1},{"symbol":"B","ask":1}]"#.to_vec();
        assert_eq!(
            parse_ticks(&mut scratch, &mut buf, &mut ticks, &mut rejects),
            Ok(2)
        );
        assert_eq!(rejects.len(), 1);
        let mut junk = b"\x00\x01".to_vec();
        assert_eq!(
            parse_ticks(&mut scratch, &mut junk, &mut ticks, &mut rejects),
            Err(ParseError::MalformedJson)
        );
    }
}
