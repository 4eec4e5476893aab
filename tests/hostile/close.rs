//! The closing handshake: invalid close codes are answered with 1002, a
//! valid client close is echoed, and after the gateway's own 1009 or 1008
//! it waits for the client's close and ends the TCP connection cleanly (a
//! FIN, never a reset that could destroy the close frame).

use super::support::*;

/// A masked client close frame carrying `code`.
fn close_with(code: u16) -> Vec<u8> {
    frame(true, 0, CLOSE, &code.to_be_bytes(), true)
}

/// Reads the gateway's close frame (after any text frames) and returns its
/// code; fails when the connection ends without one.
async fn close_code(raw: &mut Raw) -> u16 {
    let outcome = raw.outcome(WAIT).await;
    outcome
        .close_code
        .unwrap_or_else(|| panic!("no close frame with a code: {outcome:?}"))
}

/// Answers the gateway's close with ours, then expects the gateway to end
/// the TCP connection with a FIN: the write succeeds and the read ends
/// without a reset.
async fn finish_cleanly(raw: &mut Raw, what: &str) {
    raw.stream
        .write_all(&close_with(1000))
        .await
        .unwrap_or_else(|error| panic!("{what}: our close could not be sent: {error}"));
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let read = timeout(WAIT, raw.stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("{what}: the gateway kept the connection open"));
        match read {
            Ok(0) => return,
            Ok(_) => continue,
            Err(error) => panic!("{what}: the connection was reset: {error}"),
        }
    }
}

/// The gateway closes its side after the close frames: the read ends.
async fn expect_end(raw: &mut Raw, what: &str) {
    let mut chunk = vec![0u8; 4096];
    loop {
        let read = timeout(WAIT, raw.stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("{what}: the gateway kept the connection open"));
        match read {
            Ok(0) => return,
            Ok(_) => continue,
            Err(error) => panic!("{what}: the connection was reset: {error}"),
        }
    }
}

pub async fn run(suite: &mut Suite) {
    let addr = suite.addr;
    suite
        .attack("close frames with codes RFC 6455 forbids", async move {
            for code in [
                0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2999, 5000, 65535,
            ] {
                let mut raw = Raw::open(addr).await;
                raw.send(&close_with(code)).await;
                assert_eq!(close_code(&mut raw).await, 1002, "code {code}");
                expect_end(&mut raw, &format!("code {code}")).await;
            }
        })
        .await;
    suite
        .attack("valid client closes are echoed", async move {
            for code in [1000, 1001, 1003, 1011, 3000, 4000, 4999] {
                let mut raw = Raw::open(addr).await;
                raw.send(&close_with(code)).await;
                assert_eq!(close_code(&mut raw).await, code, "code {code}");
                expect_end(&mut raw, &format!("code {code}")).await;
            }
        })
        .await;
    suite
        .attack(
            "an oversized frame gets 1009 and a clean close",
            async move {
                let mut raw = Raw::open(addr).await;
                // The whole frame is sent: the gateway stops reading at its
                // header, so the payload is still unread when it closes.
                let payload = vec![b'x'; MAX_MESSAGE + 40 * 1024];
                raw.send(&frame(true, 0, TEXT, &payload, true)).await;
                assert_eq!(close_code(&mut raw).await, 1009);
                finish_cleanly(&mut raw, "after 1009").await;
            },
        )
        .await;
    suite
        .attack("a request flood gets 1008 and a clean close", async move {
            let mut raw = Raw::open(addr).await;
            let ping = text(r#"{"op":"ping"}"#);
            let flood: Vec<u8> = ping
                .iter()
                .copied()
                .cycle()
                .take(ping.len() * 400)
                .collect();
            raw.send(&flood).await;
            assert_eq!(close_code(&mut raw).await, 1008);
            finish_cleanly(&mut raw, "after 1008").await;
        })
        .await;
}
