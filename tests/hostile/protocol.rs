//! WebSocket protocol violations: 1002 (or 1007 for bad UTF-8); valid but
//! unusual framing (fragments, interleaved pings) is answered normally.

use super::support::*;

pub async fn run(suite: &mut Suite) {
    let addr = suite.addr;
    suite
        .attack("invalid UTF-8 in a text frame", async move {
            let mut raw = Raw::open(addr).await;
            raw.send(&frame(
                true,
                0,
                TEXT,
                b"{\"op\":\"ping\",\"id\":\"\xff\xfe\"}",
                true,
            ))
            .await;
            let outcome = raw.outcome(WAIT).await;
            assert!(outcome.ended, "{outcome:?}");
            assert!(
                matches!(outcome.close_code, Some(1002 | 1007) | None),
                "{outcome:?}"
            );
        })
        .await;
    suite
        .attack("fragmented text message (valid)", async move {
            let mut raw = Raw::open(addr).await;
            let mut bytes = frame(false, 0, TEXT, b"{\"op\":\"pi", true);
            bytes.extend(frame(false, 0, CONTINUATION, b"ng\",\"id\":", true));
            bytes.extend(frame(true, 0, CONTINUATION, b"\"frag\"}", true));
            raw.expect_reply(&bytes, "\"frag\"").await;
        })
        .await;
    suite
        .attack("ping interleaved between fragments (valid)", async move {
            let mut raw = Raw::open(addr).await;
            let mut bytes = frame(false, 0, TEXT, b"{\"op\":\"ping\",", true);
            bytes.extend(frame(true, 0, PING, b"mid", true));
            bytes.extend(frame(true, 0, CONTINUATION, b"\"id\":\"inter\"}", true));
            raw.expect_reply(&bytes, "\"inter\"").await;
        })
        .await;
    suite
        .attack("new data frame inside a fragmented message", async move {
            let mut bytes = frame(false, 0, TEXT, b"{\"op\":", true);
            bytes.extend(text(r#"{"op":"ping"}"#));
            Raw::open(addr).await.expect_close(&bytes, 1002).await;
        })
        .await;
    suite
        .attack("continuation frame without a start", async move {
            Raw::open(addr)
                .await
                .expect_close(&frame(true, 0, CONTINUATION, b"orphan", true), 1002)
                .await;
        })
        .await;
    suite
        .attack("unmasked client frame", async move {
            Raw::open(addr)
                .await
                .expect_close(&frame(true, 0, TEXT, br#"{"op":"ping"}"#, false), 1002)
                .await;
        })
        .await;
    suite
        .attack("reserved opcodes", async move {
            for opcode in [0x3, 0x7, 0xB, 0xF] {
                Raw::open(addr)
                    .await
                    .expect_close(&frame(true, 0, opcode, b"x", true), 1002)
                    .await;
            }
        })
        .await;
    suite
        .attack("reserved RSV bits", async move {
            for rsv in [1, 2, 4] {
                Raw::open(addr)
                    .await
                    .expect_close(&frame(true, rsv, TEXT, br#"{"op":"ping"}"#, true), 1002)
                    .await;
            }
        })
        .await;
    suite
        .attack("oversize control frame", async move {
            Raw::open(addr)
                .await
                .expect_close(&frame(true, 0, PING, &[b'p'; 200], true), 1002)
                .await;
        })
        .await;
    suite
        .attack("fragmented control frame", async move {
            Raw::open(addr)
                .await
                .expect_close(&frame(false, 0, PING, b"half", true), 1002)
                .await;
        })
        .await;
    suite
        .attack("close frame with an invalid code", async move {
            let mut raw = Raw::open(addr).await;
            raw.send(&frame(true, 0, CLOSE, &999u16.to_be_bytes(), true))
                .await;
            let outcome = raw.outcome(WAIT).await;
            assert!(outcome.ended, "{outcome:?}");
        })
        .await;
}
