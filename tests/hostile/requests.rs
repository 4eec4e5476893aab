//! Bad JSON and bad requests: an error reply naming the problem, and the
//! connection stays usable.

use super::support::*;

pub async fn run(suite: &mut Suite) {
    let addr = suite.addr;
    suite
        .attack("malformed JSON", async move {
            Raw::open(addr)
                .await
                .expect_reply(&text(r#"{"op":"subscribe",,}"#), "bad_request")
                .await;
        })
        .await;
    suite
        .attack("truncated JSON", async move {
            Raw::open(addr)
                .await
                .expect_reply(&text(r#"{"op":"subscribe","symbols":["AA"#), "bad_request")
                .await;
        })
        .await;
    suite
        .attack("JSON that is not an object", async move {
            let mut raw = Raw::open(addr).await;
            for payload in ["[1,2,3]", "42", "\"subscribe\"", "null", "true"] {
                raw.expect_reply(&text(payload), "bad_request").await;
            }
        })
        .await;
    suite
        .attack("wrong field types", async move {
            let mut raw = Raw::open(addr).await;
            for payload in [
                r#"{"op":7}"#,
                r#"{"op":"subscribe","symbols":"AAPL"}"#,
                r#"{"op":"subscribe","symbols":[1,{"a":2},null]}"#,
                r#"{"op":"ping","id":{"nested":true}}"#,
                r#"{"op":"subscribe","symbols":["AAPL"],"max_rate":"fast"}"#,
            ] {
                raw.expect_reply(&text(payload), "bad_request").await;
            }
        })
        .await;
    suite
        .attack("deeply nested JSON", async move {
            let nested = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
            Raw::open(addr)
                .await
                .expect_reply(&text(&nested), "bad_request")
                .await;
        })
        .await;
    suite
        .attack("unknown ops", async move {
            let mut raw = Raw::open(addr).await;
            for op in ["buy", "SUBSCRIBE", "", "subscribe\u{0}"] {
                raw.expect_reply(&text(&json!({"op":op}).to_string()), "unknown_op")
                    .await;
            }
        })
        .await;
    suite
        .attack("huge ids", async move {
            let mut raw = Raw::open(addr).await;
            let big_number = format!(r#"{{"op":"ping","id":{}}}"#, "9".repeat(5000));
            raw.expect_reply(&text(&big_number), "\"type\"").await;
            raw.expect_reply(
                &text(&json!({"op":"ping","id":"x".repeat(10_000)}).to_string()),
                "bad_request",
            )
            .await;
            raw.expect_reply(&text(r#"{"op":"ping","id":1e400}"#), "bad_request")
                .await;
        })
        .await;
    suite
        .attack("duplicate symbols", async move {
            let symbols = vec!["AAPL"; 2000];
            let mut raw = Raw::open(addr).await;
            raw.expect_reply(
                &text(&json!({"op":"subscribe","symbols":symbols,"id":1}).to_string()),
                "subscribed",
            )
            .await;
        })
        .await;
    suite.attack("invalid and oversized symbols", async move {
        let mut raw = Raw::open(addr).await;
        let long = "Z".repeat(5000);
        raw.expect_reply(
            &text(&json!({"op":"subscribe","symbols":["", " ", "A B", "\u{1F600}", "<script>", long]}).to_string()),
            "invalid_symbol",
        )
        .await;
    }).await;
    suite
        .attack("control characters and NULs in strings", async move {
            Raw::open(addr)
                .await
                .expect_reply(
                    &text("{\"op\":\"subscribe\",\"symbols\":[\"A\\u0000B\",\"\\u0007\"]}"),
                    "invalid_symbol",
                )
                .await;
        })
        .await;
    suite
        .attack("too many subscriptions in one request", async move {
            let symbols: Vec<String> = (0..1500).map(|i| format!("JUNK{i}")).collect();
            let mut raw = Raw::open(addr).await;
            raw.expect_reply(
                &text(&json!({"op":"subscribe","symbols":symbols}).to_string()),
                "too_many_subscriptions",
            )
            .await;
            let all: Vec<String> = (0..1500).map(|i| format!("JUNK{i}")).collect();
            raw.expect_reply(
                &text(&json!({"op":"unsubscribe","symbols":all}).to_string()),
                "unsubscribed",
            )
            .await;
        })
        .await;
    suite
        .attack(
            "more symbols than the symbol budget, again and again",
            async move {
                // 6,000 names (the budget holds 5,000): refused whole, cheaply,
                // with a small frame instead of a 6,000-name echo; the
                // connection stays usable for requests within the budget.
                let symbols: Vec<String> = (0..6_000).map(|i| format!("B{i}")).collect();
                let request = json!({"op":"subscribe","id":"huge","symbols":symbols}).to_string();
                let mut raw = Raw::open(addr).await;
                for _ in 0..3 {
                    raw.expect_reply(&text(&request), "names 6000 symbols")
                        .await;
                }
                raw.expect_reply(
                    &text(r#"{"op":"subscribe","id":"small","symbols":["AAPL"]}"#),
                    "snapshot",
                )
                .await;
            },
        )
        .await;
    suite
        .attack("empty text frame", async move {
            Raw::open(addr)
                .await
                .expect_reply(&text(""), "bad_request")
                .await;
        })
        .await;
    suite
        .attack("binary frames", async move {
            let mut raw = Raw::open(addr).await;
            raw.expect_reply(
                &frame(true, 0, BINARY, b"{\"op\":\"ping\"}", true),
                "binary frames are not supported",
            )
            .await;
            raw.expect_reply(&frame(true, 0, BINARY, &[0xff; 1000], true), "bad_request")
                .await;
        })
        .await;
    suite
        .attack(
            "priority requests: huge, duplicated, unsubscribed, wrong types",
            async move {
                let mut raw = Raw::open(addr).await;
                raw.expect_reply(
                    &text(r#"{"op":"subscribe","symbols":["AAPL"]}"#),
                    "snapshot",
                )
                .await;
                let many: Vec<String> = (0..3_000).map(|i| format!("P{i}")).collect();
                raw.expect_reply(
                    &text(&json!({"op":"priority","visible":many}).to_string()),
                    "not_subscribed",
                )
                .await;
                raw.expect_reply(
                    &text(r#"{"op":"priority","visible":["AAPL","AAPL"],"background":["AAPL"]}"#),
                    "\"priority\"",
                )
                .await;
                for bad in [
                    r#"{"op":"priority","visible":{"AAPL":1}}"#,
                    r#"{"op":"priority","normal":[null]}"#,
                    r#"{"op":"priority"}"#,
                    r#"{"op":"subscribe","symbols":["AAPL"],"priority":7}"#,
                    r#"{"op":"subscribe","symbols":["AAPL"],"trades":1}"#,
                ] {
                    raw.expect_reply(&text(bad), "bad_request").await;
                }
            },
        )
        .await;
}
