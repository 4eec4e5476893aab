//! Floods of requests and control frames: `rate_limited`, then 1008.

use super::support::*;

pub async fn run(suite: &mut Suite) {
    let addr = suite.addr;
    suite
        .attack("request flood", async move {
            let mut raw = Raw::open(addr).await;
            let mut bytes = Vec::new();
            for i in 0..400 {
                bytes.extend(text(&format!(r#"{{"op":"ping","id":{i}}}"#)));
            }
            raw.send(&bytes).await;
            let outcome = raw.outcome(WAIT).await;
            assert!(outcome.saw("rate_limited"), "{outcome:?}");
            assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
        })
        .await;
    suite
        .attack("subscribe flood", async move {
            let mut raw = Raw::open(addr).await;
            let mut bytes = Vec::new();
            for i in 0..300 {
                bytes.extend(text(
                    &json!({"op":"subscribe","symbols":[format!("FLOOD{}", i % 50)]}).to_string(),
                ));
            }
            raw.send(&bytes).await;
            let outcome = raw.outcome(WAIT).await;
            assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
        })
        .await;
    suite
        .attack("ping flood", async move {
            let mut raw = Raw::open(addr).await;
            let mut bytes = Vec::new();
            for _ in 0..2000 {
                bytes.extend(frame(true, 0, PING, b"flood", true));
            }
            raw.send(&bytes).await;
            let outcome = raw.outcome(WAIT).await;
            assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
        })
        .await;
    suite
        .attack("unsolicited pong flood", async move {
            let mut raw = Raw::open(addr).await;
            let mut bytes = Vec::new();
            for _ in 0..2000 {
                bytes.extend(frame(true, 0, PONG, b"", true));
            }
            raw.send(&bytes).await;
            let outcome = raw.outcome(WAIT).await;
            assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
        })
        .await;
}
