//! The generic ingest format (docs/feeds.md): one JSON object with the Quote
//! fields, or an array of them.
//!
//! `symbol` is required; `bid ask bid_size ask_size last last_size volume
//! open high low prev_close` are JSON numbers, or `null` to clear the field
//! (it becomes unknown; an absent field keeps its value); `ts` is an integer
//! count of microseconds since the Unix epoch; `kind` is `"quote"` or
//! `"trade"`. Without `kind`, a tick carrying `last` and neither `bid` nor
//! `ask` is a trade. `trade_id` (a non-negative integer) names a trade for
//! later corrections and cancels. `trading` (`"halted"` or `"trading"`) says a
//! venue halted or resumed the symbol: it becomes a
//! [`VenueEvent::TradingStatus`], and a line with nothing else carries no
//! tick. Unknown fields are ignored. A bad element of an array is rejected
//! alone; its good neighbours are kept.

use simd_json::prelude::*;
use simd_json::tape::{Object, Value};

use crate::model::{Cleared, Symbol, Tick, TickKind, TradingStatus, VenueEvent};
use crate::parse::{
    DEFAULT_MAX_MESSAGE_BYTES, Decoded, Decoder, JsonScratch, ParseError, for_each_element,
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
            for_each_element(root, |element| {
                if let Err(error) = element_into(element, out) {
                    out.rejects.push(error);
                }
            });
        });
    }
}

/// One element: its tick, and its trading status as a venue event. An
/// invalid `trading` value rejects the whole element, so a line is never
/// half applied.
fn element_into(element: Value<'_, '_>, out: &mut Decoded) -> Result<(), ParseError> {
    let obj = element
        .as_object()
        .ok_or(ParseError::WrongType { field: "element" })?;
    let trading = match obj.get("trading") {
        None => None,
        Some(value) => Some(
            value
                .as_str()
                .and_then(TradingStatus::parse)
                .ok_or(ParseError::WrongType { field: "trading" })?,
        ),
    };
    let tick = tick_from_object(&obj)?;
    if trading.is_none() || !carries_nothing(&tick) {
        out.ticks.push(tick);
    }
    if let (Some(status), Some(symbol)) = (trading, tick.symbol) {
        out.events.push(VenueEvent::TradingStatus {
            symbol,
            status,
            ts: tick.ts,
        });
    }
    Ok(())
}

/// A tick with no quote or trade field: a `trading`-only line.
fn carries_nothing(tick: &Tick) -> bool {
    [
        tick.bid,
        tick.ask,
        tick.bid_size,
        tick.ask_size,
        tick.last,
        tick.last_size,
        tick.volume,
        tick.open,
        tick.high,
        tick.low,
        tick.prev_close,
    ]
    .iter()
    .all(Option::is_none)
        && tick.cleared.is_empty()
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
///
/// One pass over the object's entries files each known key's value in its
/// slot; the first occurrence of a key wins (what `Object::get` would find)
/// and unknown keys are skipped. The slots are then read in a fixed order,
/// so the error reported for an object with several bad fields does not
/// depend on the order of its keys.
pub(crate) fn tick_from_object(obj: &Object<'_, '_>) -> Result<Tick, ParseError> {
    let mut f = Fields::default();
    for (key, value) in obj.iter() {
        let slot = match key {
            "symbol" => &mut f.symbol,
            "bid" => &mut f.bid,
            "ask" => &mut f.ask,
            "bid_size" => &mut f.bid_size,
            "ask_size" => &mut f.ask_size,
            "last" => &mut f.last,
            "last_size" => &mut f.last_size,
            "volume" => &mut f.volume,
            "open" => &mut f.open,
            "high" => &mut f.high,
            "low" => &mut f.low,
            "prev_close" => &mut f.prev_close,
            "ts" => &mut f.ts,
            "kind" => &mut f.kind,
            "trade_id" => &mut f.trade_id,
            _ => continue,
        };
        slot.get_or_insert(value);
    }
    let name = text(f.symbol, "symbol")?.ok_or(ParseError::MissingSymbol)?;
    let symbol = Symbol::parse(name).map_err(ParseError::InvalidSymbol)?;
    let mut tick = Tick {
        symbol: Some(symbol),
        bid: number(f.bid, "bid")?,
        ask: number(f.ask, "ask")?,
        bid_size: number(f.bid_size, "bid_size")?,
        ask_size: number(f.ask_size, "ask_size")?,
        last: number(f.last, "last")?,
        last_size: number(f.last_size, "last_size")?,
        volume: number(f.volume, "volume")?,
        open: number(f.open, "open")?,
        high: number(f.high, "high")?,
        low: number(f.low, "low")?,
        prev_close: number(f.prev_close, "prev_close")?,
        ts: unsigned(f.ts, "ts")?,
        trade_id: unsigned(f.trade_id, "trade_id")?,
        ..Tick::default()
    };
    let nullable = [
        (f.bid, Cleared::BID),
        (f.ask, Cleared::ASK),
        (f.bid_size, Cleared::BID_SIZE),
        (f.ask_size, Cleared::ASK_SIZE),
        (f.last, Cleared::LAST),
        (f.last_size, Cleared::LAST_SIZE),
        (f.volume, Cleared::VOLUME),
        (f.open, Cleared::OPEN),
        (f.high, Cleared::HIGH),
        (f.low, Cleared::LOW),
        (f.prev_close, Cleared::PREV_CLOSE),
    ];
    for (value, field) in nullable {
        if value.is_some_and(|v| v.is_null()) {
            tick.cleared = tick.cleared.with(field);
        }
    }
    tick.kind = match text(f.kind, "kind")? {
        Some("trade") => TickKind::Trade,
        Some("quote") => TickKind::Quote,
        Some(_) => return Err(ParseError::WrongType { field: "kind" }),
        None if tick.last.is_some() && tick.bid.is_none() && tick.ask.is_none() => TickKind::Trade,
        None => TickKind::Quote,
    };
    Ok(tick)
}

/// The value of each key [`tick_from_object`] reads, if present.
#[derive(Default)]
struct Fields<'t, 'i> {
    symbol: Option<Value<'t, 'i>>,
    bid: Option<Value<'t, 'i>>,
    ask: Option<Value<'t, 'i>>,
    bid_size: Option<Value<'t, 'i>>,
    ask_size: Option<Value<'t, 'i>>,
    last: Option<Value<'t, 'i>>,
    last_size: Option<Value<'t, 'i>>,
    volume: Option<Value<'t, 'i>>,
    open: Option<Value<'t, 'i>>,
    high: Option<Value<'t, 'i>>,
    low: Option<Value<'t, 'i>>,
    prev_close: Option<Value<'t, 'i>>,
    ts: Option<Value<'t, 'i>>,
    kind: Option<Value<'t, 'i>>,
    trade_id: Option<Value<'t, 'i>>,
}

// The value-level twins of `parse::{number, unsigned, text}` (which look the
// field up by name first).

/// A JSON number as `f64`; `null` or absent is `None`; anything else is a
/// wrong type.
fn number(value: Option<Value<'_, '_>>, field: &'static str) -> Result<Option<f64>, ParseError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(None);
    }
    if let Some(x) = value.as_f64() {
        return Ok(Some(x));
    }
    if let Some(x) = value.as_u64() {
        return Ok(Some(x as f64));
    }
    value
        .as_i64()
        .map(|x| Some(x as f64))
        .ok_or(ParseError::WrongType { field })
}

/// A non-negative integer; `null` or absent is `None`.
fn unsigned(value: Option<Value<'_, '_>>, field: &'static str) -> Result<Option<u64>, ParseError> {
    match value {
        None => Ok(None),
        Some(value) if value.is_null() => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or(ParseError::WrongType { field }),
    }
}

/// A string; `null` or absent is `None`.
fn text<'i>(
    value: Option<Value<'_, 'i>>,
    field: &'static str,
) -> Result<Option<&'i str>, ParseError> {
    match value {
        None => Ok(None),
        Some(value) if value.is_null() => Ok(None),
        Some(value) => value
            .into_string()
            .map(Some)
            .ok_or(ParseError::WrongType { field }),
    }
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
    fn a_null_field_is_cleared_and_an_absent_one_is_not() {
        let out = decode(r#"{"symbol":"A","bid":null,"ask":2,"ts":null,"prev_close":null}"#);
        let tick = out.ticks[0];
        assert_eq!((tick.bid, tick.ask, tick.ts), (None, Some(2.0), None));
        assert_eq!(tick.cleared, Cleared::BID.with(Cleared::PREV_CLOSE));
        assert!(!tick.cleared.contains(Cleared::ASK) && !tick.cleared.contains(Cleared::LAST));
    }

    #[test]
    fn a_null_clears_the_stored_value_end_to_end() {
        let out = decode(
            r#"[{"symbol":"A","bid":1.5,"ask":1.6,"volume":100},
                {"symbol":"A","bid":null},
                {"symbol":"A","ask":1.7}]"#,
        );
        let mut quote = crate::model::Quote::new(Symbol::parse("A").expect("symbol"));
        for tick in &out.ticks {
            assert!(tick.validate(1_800_000_000_000_000).is_ok(), "{tick:?}");
            quote.apply(tick, 1_800_000_000_000_000);
        }
        assert_eq!(
            (quote.bid, quote.ask, quote.volume),
            (None, Some(1.7), Some(100.0)),
            "null cleared the bid; absent fields kept their values"
        );
    }

    #[test]
    fn trading_becomes_a_venue_event_and_a_bad_value_drops_only_its_line() {
        let mut decoder = JsonDecoder::default();
        let mut out = Decoded::default();
        let mut buf = br#"[{"symbol":"AAPL","trading":"halted"},
            {"symbol":"MSFT","bid":1.5,"trading":"trading","ts":1764000000000000},
            {"symbol":"NVDA","trading":"paused"},
            {"symbol":"AMD","trading":7},
            {"symbol":"TSLA","trading":null},
            {"symbol":"AAPL","kind":"trade","last":2.5,"trade_id":17}]"#
            .to_vec();
        decoder.decode(&mut buf, &mut out);
        let sym = |s| Symbol::parse(s).expect("symbol");
        assert_eq!(
            out.events,
            [
                VenueEvent::TradingStatus {
                    symbol: sym("AAPL"),
                    status: TradingStatus::Halted,
                    ts: None
                },
                VenueEvent::TradingStatus {
                    symbol: sym("MSFT"),
                    status: TradingStatus::Trading,
                    ts: Some(1_764_000_000_000_000)
                },
            ]
        );
        assert_eq!(
            out.ticks.iter().map(|t| t.symbol).collect::<Vec<_>>(),
            [Some(sym("MSFT")), Some(sym("AAPL"))],
            "a trading-only line carries no tick"
        );
        assert_eq!(out.ticks[1].trade_id, Some(17));
        assert_eq!(
            out.rejects,
            vec![ParseError::WrongType { field: "trading" }; 3],
            "unknown, wrong-typed and null values are each rejected alone"
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

    #[test]
    fn the_first_of_duplicate_keys_wins_and_unknown_keys_are_ignored() {
        let out = decode(
            r#"[{"symbol":"A","bid":1,"bid":"x","venue":{"bid":9},"symbol":"B C"},
                {"symbol":"A","bid":"x","bid":1},
                {"kind":null,"symbol":"A","last":2,"kind":"quote"},
                {"symbol":null,"symbol":"A"}]"#,
        );
        assert_eq!(out.ticks.len(), 2, "{:?}", out.rejects);
        assert_eq!(out.ticks[0].symbol, Symbol::parse("A").ok());
        assert_eq!(out.ticks[0].bid, Some(1.0), "nested keys are not fields");
        assert_eq!(out.ticks[1].kind, TickKind::Trade, "a first null kind wins");
        assert_eq!(
            out.rejects,
            [
                ParseError::WrongType { field: "bid" },
                ParseError::MissingSymbol
            ]
        );
    }

    #[test]
    fn the_error_reported_does_not_depend_on_key_order() {
        for input in [
            r#"{"kind":"x","ts":-1,"ask":true,"bid":"1","symbol":"A"}"#,
            r#"{"symbol":"A","bid":"1","ask":true,"ts":-1,"kind":"x"}"#,
        ] {
            assert_eq!(
                decode(input).rejects,
                [ParseError::WrongType { field: "bid" }]
            );
        }
        assert_eq!(
            decode(r#"{"bid":"1","symbol":7}"#).rejects,
            [ParseError::WrongType { field: "symbol" }]
        );
        assert_eq!(
            decode(r#"{"bid":"1"}"#).rejects,
            [ParseError::MissingSymbol]
        );
        let out = decode(r#"{"symbol":"A","ts":1.5,"bid":-2,"ask":18446744073709551615}"#);
        assert_eq!(out.rejects, [ParseError::WrongType { field: "ts" }]);
        let out = decode(r#"{"symbol":"A","bid":-2,"ask":18446744073709551615,"ts":0}"#);
        assert_eq!(
            (out.ticks[0].bid, out.ticks[0].ask, out.ticks[0].ts),
            (Some(-2.0), Some(18_446_744_073_709_551_615.0), Some(0))
        );
    }

    /// The lookup-by-name reading this module did before the one-pass
    /// rewrite, kept as the reference the rewrite is checked against.
    fn tick_by_lookup(obj: &Object<'_, '_>) -> Result<Tick, ParseError> {
        use crate::parse::{number, symbol_field, text, unsigned};
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
        let nullable = [
            ("bid", Cleared::BID),
            ("ask", Cleared::ASK),
            ("bid_size", Cleared::BID_SIZE),
            ("ask_size", Cleared::ASK_SIZE),
            ("last", Cleared::LAST),
            ("last_size", Cleared::LAST_SIZE),
            ("volume", Cleared::VOLUME),
            ("open", Cleared::OPEN),
            ("high", Cleared::HIGH),
            ("low", Cleared::LOW),
            ("prev_close", Cleared::PREV_CLOSE),
        ];
        for (name, field) in nullable {
            if obj.get(name).is_some_and(|v| v.is_null()) {
                tick.cleared = tick.cleared.with(field);
            }
        }
        tick.kind = match text(obj, "kind")? {
            Some("trade") => TickKind::Trade,
            Some("quote") => TickKind::Quote,
            Some(_) => return Err(ParseError::WrongType { field: "kind" }),
            None if tick.last.is_some() && tick.bid.is_none() && tick.ask.is_none() => {
                TickKind::Trade
            }
            None => TickKind::Quote,
        };
        Ok(tick)
    }

    mod same_as_lookup {
        use super::*;
        use proptest::prelude::*;

        fn key() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "symbol",
                "bid",
                "ask",
                "bid_size",
                "ask_size",
                "last",
                "last_size",
                "volume",
                "open",
                "high",
                "low",
                "prev_close",
                "ts",
                "kind",
                "seq",
                "venue",
                "Bid",
                "",
            ])
        }

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("null".to_string()),
                Just("true".to_string()),
                Just("\"trade\"".to_string()),
                Just("\"quote\"".to_string()),
                Just("\"AAPL\"".to_string()),
                Just("\"B C\"".to_string()),
                Just("\"\"".to_string()),
                Just("[1,{\"bid\":\"x\"}]".to_string()),
                Just("{\"symbol\":\"Z\",\"bid\":1}".to_string()),
                Just("18446744073709551615".to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                any::<u32>().prop_map(|n| n.to_string()),
                (-1e9f64..1e9).prop_map(|n| format!("{n:?}")),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn one_pass_reads_what_lookup_by_name_reads(
                fields in prop::collection::vec((key(), value()), 0..12),
            ) {
                let body: Vec<String> =
                    fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                let mut buf = format!("{{{}}}", body.join(",")).into_bytes();
                let text = String::from_utf8_lossy(&buf).into_owned();
                let tape = simd_json::to_tape(&mut buf).expect("generated JSON parses");
                let obj = tape.as_value().as_object().expect("an object");
                prop_assert_eq!(tick_from_object(&obj), tick_by_lookup(&obj), "{}", text);
            }
        }
    }
}
