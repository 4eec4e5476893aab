//! Property tests: no parser panics on any input, and the generic parser
//! round-trips what it is given.

use proptest::prelude::*;
use tickgate_feeds::json::JsonDecoder;
use tickgate_feeds::parse::{Decoded, Decoder};
use tickgate_feeds::venue::Venue;
use tickgate_feeds::{FeedSpec, Symbol, TickKind};

fn decoders() -> Vec<Box<dyn Decoder>> {
    let mut all: Vec<Box<dyn Decoder>> = vec![Box::new(JsonDecoder::new(1 << 16))];
    all.extend(Venue::ALL.iter().map(|v| v.decoder(1 << 16)));
    all
}

/// JSON-ish fragments that reach deeper into the parsers than random bytes.
fn jsonish() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("\"Q\"".to_string()),
        Just("\"trade\"".to_string()),
        Just("\"ticker\"".to_string()),
        Just("\"BTC-USD\"".to_string()),
        Just("\"2025-11-24T14:30:00.123456789Z\"".to_string()),
        Just("\"1e999\"".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "\"[a-zA-Z0-9 .:_-]{0,12}\"",
    ];
    let key = prop_oneof![
        Just("symbol"),
        Just("bid"),
        Just("ts"),
        Just("kind"),
        Just("ev"),
        Just("sym"),
        Just("T"),
        Just("S"),
        Just("t"),
        Just("type"),
        Just("product_id"),
        Just("price"),
        Just("sequence"),
        Just("trade_id"),
        Just("last_trade_id"),
        Just("stream"),
        Just("data"),
        Just("e"),
        Just("s"),
        Just("u"),
        Just("b"),
        Just("p"),
        Just("q"),
        Just("error"),
        Just("code"),
        Just("msg"),
        Just("time"),
    ];
    atom.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key.clone(), inner), 0..8).prop_map(|kv| {
                let fields: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_parser_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut out = Decoded::default();
        for mut decoder in decoders() {
            decoder.decode(&mut bytes.clone(), &mut out);
        }
    }

    #[test]
    fn no_parser_panics_on_jsonish_messages(text in jsonish()) {
        let mut out = Decoded::default();
        for mut decoder in decoders() {
            decoder.decode(&mut text.clone().into_bytes(), &mut out);
            prop_assert!(out.ticks.iter().all(|t| t.symbol.is_some()));
        }
    }

    #[test]
    fn generic_objects_round_trip(
        symbol in "[A-Z]{1,5}(\\.[A-Z])?",
        bid in 0.0001f64..1e7,
        size in 0u32..1_000_000,
        ts in 946_684_800_000_000u64..4_000_000_000_000_000,
        trade: bool,
    ) {
        let kind = if trade { "trade" } else { "quote" };
        let text = format!(r#"{{"symbol":"{symbol}","bid":{bid:?},"bid_size":{size},"ts":{ts},"kind":"{kind}"}}"#);
        let mut out = Decoded::default();
        JsonDecoder::default().decode(&mut text.into_bytes(), &mut out);
        prop_assert!(out.rejects.is_empty(), "{:?}", out.rejects);
        let tick = out.ticks[0];
        prop_assert_eq!(tick.symbol, Symbol::parse(&symbol).ok());
        prop_assert_eq!(tick.bid, Some(bid));
        prop_assert_eq!(tick.bid_size, Some(f64::from(size)));
        prop_assert_eq!(tick.ts, Some(ts));
        prop_assert_eq!(tick.kind, if trade { TickKind::Trade } else { TickKind::Quote });
    }

    #[test]
    fn feed_spec_never_panics(spec in "\\PC{0,80}") {
        let _ = FeedSpec::parse(&spec);
    }

    #[test]
    fn feed_spec_never_panics_on_spec_shaped_input(
        head in prop_oneof![Just("sim"), Just("tcp://"), Just("ws://"), Just("wss://"), Just("replay:"), Just("coinbase+wss://"), Just("binance")],
        body in "[a-z0-9.:/%&=?#,_*-]{0,60}",
    ) {
        let _ = FeedSpec::parse(&format!("{head}{body}"));
    }
}
