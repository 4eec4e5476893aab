//! Authentication and entitlements: forged, expired and malformed tokens,
//! requests and non-auth first frames before authenticating, symbols the
//! token does not grant.

use super::support::*;

pub async fn run(suite: &mut Suite) {
    let addr = suite.addr;
    suite
        .attack("bad tokens of many kinds", async move {
            let exp = now_micros() / 1_000_000 + 600;
            let forged = |secret: &[u8], claims: Value| {
                jsonwebtoken::encode(
                    &Header::new(Algorithm::HS256),
                    &claims,
                    &EncodingKey::from_secret(secret),
                )
                .expect("sign")
            };
            use base64::Engine as _;
            let b64 =
                |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            let cases = [
                String::new(),
                "garbage".into(),
                "a.b.c".into(),
                forged(
                    b"wrong-secret-wrong-secret-wrong-secret",
                    json!({"exp":exp,"symbols":["*"]}),
                ),
                forged(SECRET.as_bytes(), json!({"exp":exp - 1200,"symbols":["*"]})),
                forged(
                    SECRET.as_bytes(),
                    json!({"exp":exp,"nbf":exp,"symbols":["*"]}),
                ),
                forged(SECRET.as_bytes(), json!({"symbols":["*"]})),
                forged(SECRET.as_bytes(), json!({"exp":"soon","symbols":["*"]})),
                format!(
                    "{}.{}.",
                    b64(&json!({"alg":"none"})),
                    b64(&json!({"exp":exp,"symbols":["*"]}))
                ),
                format!(
                    "{}.{}.AAAA",
                    b64(&json!({"alg":"RS256"})),
                    b64(&json!({"exp":exp}))
                ),
                "e".repeat(20_000),
            ];
            for bad in &cases {
                let refused =
                    Raw::open_with(addr, &format!("Authorization: Bearer {bad}\r\n")).await;
                assert_eq!(refused.err(), Some(401), "{bad:.60}");
            }
            // The same tokens in a first message: unauthorized, then 1008.
            for bad in cases.iter().filter(|t| !t.is_empty() && t.len() < 10_000) {
                let mut raw = Raw::open_with(addr, "")
                    .await
                    .expect("upgrade without a token");
                raw.send(&text(&json!({"op":"auth","token":bad}).to_string()))
                    .await;
                let outcome = raw.outcome(WAIT).await;
                assert!(outcome.saw("unauthorized"), "{outcome:?}");
                assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
            }
        })
        .await;
    suite
        .attack("requests before authenticating", async move {
            let mut raw = Raw::open_with(addr, "")
                .await
                .expect("upgrade without a token");
            raw.send(&text(r#"{"op":"subscribe","symbols":["AAPL"]}"#))
                .await;
            let outcome = raw.outcome(WAIT).await;
            assert!(!outcome.saw("snapshot"), "{outcome:?}");
            assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
            let mut silent = Raw::open_with(addr, "")
                .await
                .expect("upgrade without a token");
            let outcome = silent.outcome(WAIT).await;
            assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
        })
        .await;
    suite
        .attack("first frames that are not an auth message", async move {
            let cases: [(&str, Vec<u8>); 5] = [
                ("not JSON", text("hello")),
                ("an empty text frame", text("")),
                ("an empty token", text(r#"{"op":"auth","token":""}"#)),
                ("no token", text(r#"{"op":"auth"}"#)),
                ("a binary frame", frame(true, 0, BINARY, b"\x00\x01", true)),
            ];
            for (what, first) in &cases {
                let mut raw = Raw::open_with(addr, "")
                    .await
                    .expect("upgrade without a token");
                raw.send(first).await;
                let outcome = raw.outcome(WAIT).await;
                assert_eq!(outcome.close_code, Some(1008), "{what}: {outcome:?}");
                // Closed for this frame, not at the first-message timeout,
                // and without a bad_request the client could retry after.
                assert!(outcome.saw("authenticate first"), "{what}: {outcome:?}");
                assert!(!outcome.saw("bad_request"), "{what}: {outcome:?}");
            }
        })
        .await;
    suite
        .attack("unentitled symbols", async move {
            let mut raw = Raw::open_with(
                addr,
                &format!("Authorization: Bearer {}\r\n", token(&["AAPL"], 600)),
            )
            .await
            .expect("101");
            let symbols: Vec<String> = tickgate_feeds::sim::universe()
                .take(60)
                .map(|s| s.to_string())
                .collect();
            raw.send(&text(
                &json!({"op":"subscribe","symbols":symbols}).to_string(),
            ))
            .await;
            let outcome = raw.outcome(Duration::from_secs(2)).await;
            for frame in &outcome.texts {
                if frame.contains("not_entitled") {
                    continue;
                }
                let value: Value = serde_json::from_str(frame).expect("json");
                for quote in value["quotes"].as_array().into_iter().flatten() {
                    assert_eq!(quote["symbol"], "AAPL", "{frame}");
                }
            }
            assert!(outcome.saw("not_entitled"), "{outcome:?}");
        })
        .await;
}
