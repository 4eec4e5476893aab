//! Size limits: a frame or message over `max_message_bytes` is closed with
//! 1009, whether announced, sent in full or assembled from fragments.

use super::support::*;

pub async fn run(suite: &mut Suite) {
    let addr = suite.addr;
    suite
        .attack("oversize frame header (1 GiB announced)", async move {
            let mut header = vec![0x81, 0x80 | 127];
            header.extend_from_slice(&(1u64 << 30).to_be_bytes());
            header.extend_from_slice(&MASK);
            Raw::open(addr).await.expect_close(&header, 1009).await;
        })
        .await;
    suite
        .attack("oversize frame (sent in full)", async move {
            let big = format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(MAX_MESSAGE * 2));
            Raw::open(addr).await.expect_close(&text(&big), 1009).await;
        })
        .await;
    suite
        .attack("oversize message in small fragments", async move {
            let piece = vec![b'x'; 16 * 1024];
            let mut bytes = frame(false, 0, TEXT, b"{\"pad\":\"", true);
            for _ in 0..8 {
                bytes.extend(frame(false, 0, CONTINUATION, &piece, true));
            }
            bytes.extend(frame(true, 0, CONTINUATION, b"\"}", true));
            Raw::open(addr).await.expect_close(&bytes, 1009).await;
        })
        .await;
}
