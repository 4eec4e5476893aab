//! Transport-level abuse after the upgrade: garbage bytes, a half frame
//! then a reset, a half-closed socket, and connection churn.

use super::support::*;

pub async fn run(suite: &mut Suite) {
    let addr = suite.addr;
    suite
        .attack("random garbage after the handshake", async move {
            let mut raw = Raw::open(addr).await;
            let garbage: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            raw.send(&garbage).await;
            let outcome = raw.outcome(WAIT).await;
            assert!(outcome.ended, "{outcome:?}");
        })
        .await;
    suite
        .attack("half a frame, then silence and a reset", async move {
            let mut raw = Raw::open(addr).await;
            raw.send(&text(r#"{"op":"ping","id":"half"}"#)[..6]).await;
            // The silence is the attack: the gateway holds half a frame.
            sleep(Duration::from_millis(200)).await;
            let socket = socket2_linger_reset(raw.stream);
            drop(socket);
        })
        .await;
    suite
        .attack("half-open TCP after the upgrade", async move {
            let raw = Raw::open(addr).await;
            let mut stream = raw.stream;
            let _ = stream.shutdown().await; // our write side closed, reads still open
            let mut chunk = [0u8; 1024];
            let read = timeout(WAIT, stream.read(&mut chunk)).await;
            assert!(
                read.is_ok(),
                "the gateway must notice the half-closed stream"
            );
        })
        .await;
    suite
        .attack("connection churn", async move {
            for _ in 0..100 {
                let raw = Raw::open(addr).await;
                drop(raw);
            }
        })
        .await;
}
