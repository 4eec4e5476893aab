//! Abuse of the HTTP upgrade: slowloris headers, silence, TLS on the plain
//! port, smuggling headers, huge headers, malformed upgrade requests and
//! upgrades RFC 6455 does not allow (bad key, HTTP/1.0, no `Host`).

use super::support::*;
use crate::common::metric_value;

/// `tickgate_connections_refused_total` for `reason`.
async fn refused(admin: SocketAddr, reason: &str) -> f64 {
    metric_value(
        admin,
        &format!("tickgate_connections_refused_total{{reason=\"{reason}\"}}"),
    )
    .await
}

pub async fn run(suite: &mut Suite) {
    let addr = suite.addr;
    let admin = suite.gateway.admin;
    suite
        .attack("slowloris request headers", async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let started = Instant::now();
            let request = b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            let mut dropped = false;
            for byte in request.iter().chain(std::iter::repeat(&b'a')).take(200) {
                if stream.write_all(&[*byte]).await.is_err() {
                    dropped = true;
                    break;
                }
                // Dripping one byte at a time is the attack.
                sleep(Duration::from_millis(50)).await;
                if started.elapsed() > Duration::from_secs(4) {
                    break;
                }
            }
            if !dropped {
                let mut chunk = [0u8; 256];
                let read = timeout(Duration::from_secs(3), stream.read(&mut chunk)).await;
                dropped = matches!(read, Ok(Ok(_)) | Ok(Err(_)));
            }
            assert!(
                dropped,
                "a slow sender must be dropped after the handshake timeout"
            );
            assert!(started.elapsed() < Duration::from_secs(6));
        })
        .await;
    suite
        .attack("connect and send nothing", async move {
            let (reply, closed) = raw_tcp(addr, b"", Duration::from_secs(4)).await;
            assert!(closed, "idle TCP connection not dropped: {reply:?}");
        })
        .await;
    suite
        .attack("TLS ClientHello on the plain port", async move {
            let hello: &[u8] = &[
                0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03, 0xaa, 0xbb, 0xcc,
                0xdd, 0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00, 0x00, 0x00,
            ];
            let (reply, closed) = raw_tcp(addr, hello, Duration::from_secs(4)).await;
            assert!(closed, "{reply:?}");
            assert!(
                reply.is_empty() || status_of(&reply) == Some(400),
                "{reply:?}"
            );
        })
        .await;
    suite.attack("request smuggling headers", async move {
        let auth = token(&["*"], 600);
        for extra in [
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Content-Length: 5\r\nContent-Length: 7\r\n",
            "Transfer-Encoding: chunked, identity\r\n",
        ] {
            let request = format!(
                "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {auth}\r\n{extra}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
            );
            let (reply, _) = raw_tcp(addr, request.as_bytes(), Duration::from_secs(2)).await;
            assert!(!reply.contains("/smuggled"), "{reply:?}");
            assert!(
                matches!(status_of(&reply), Some(400 | 101) | None),
                "{extra}: {reply:?}"
            );
        }
    }).await;
    suite
        .attack("huge request headers", async move {
            let request = format!(
                "GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "b".repeat(512 * 1024)
            );
            let (reply, closed) = raw_tcp(addr, request.as_bytes(), Duration::from_secs(4)).await;
            assert!(
                closed || matches!(status_of(&reply), Some(431 | 400)),
                "{reply:.200}"
            );
            let many: String = (0..5000).map(|i| format!("X-H{i}: v\r\n")).collect();
            let request = format!("GET /ws HTTP/1.1\r\nHost: x\r\n{many}\r\n");
            let (reply, closed) = raw_tcp(addr, request.as_bytes(), Duration::from_secs(4)).await;
            assert!(
                closed || matches!(status_of(&reply), Some(431 | 400)),
                "{reply:.200}"
            );
        })
        .await;
    suite.attack("bad upgrade requests", async move {
        for (request, want) in [
            ("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 426),
            (
                "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: a\r\n\r\n",
                426,
            ),
            (
                "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
                400,
            ),
            (
                "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
                405,
            ),
            ("GARBAGE\r\n\r\n", 400),
        ] {
            let (status, _) = http_raw(addr, request).await;
            assert_eq!(status, want, "{request:?}");
        }
    }).await;
    suite
        .attack("upgrades RFC 6455 does not allow", async move {
            let auth = format!("Authorization: Bearer {}\r\n", token(&["*"], 600));
            let upgrade =
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
            let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
            let with_key = |key: &str| {
                format!(
                    "GET /ws HTTP/1.1\r\nHost: x\r\n{upgrade}Sec-WebSocket-Key: {key}\r\n{auth}\r\n"
                )
            };
            let cases = [
                (with_key("a"), "bad_key", "Sec-WebSocket-Key"),
                // 15 bytes, 17 bytes, not base64, unpadded
                (with_key("AAAAAAAAAAAAAAAAAAAA"), "bad_key", "16-byte"),
                (with_key("AAAAAAAAAAAAAAAAAAAAAAA="), "bad_key", "16-byte"),
                (with_key("!!!!!!!!!!!!!!!!!!!!!!=="), "bad_key", "16-byte"),
                (with_key("AAAAAAAAAAAAAAAAAAAAAA"), "bad_key", "16-byte"),
                (
                    format!("GET /ws HTTP/1.1\r\nHost: x\r\n{upgrade}{key}{key}{auth}\r\n"),
                    "bad_key",
                    "16-byte",
                ),
                (
                    format!("GET /ws HTTP/1.0\r\nHost: x\r\n{upgrade}{key}{auth}\r\n"),
                    "http_version",
                    "HTTP/1.1",
                ),
                (
                    format!("GET /ws HTTP/1.1\r\n{upgrade}{key}{auth}\r\n"),
                    "missing_host",
                    "Host",
                ),
                (
                    format!("GET /ws HTTP/1.1\r\nHost: x\r\nHost: y\r\n{upgrade}{key}{auth}\r\n"),
                    "missing_host",
                    "Host",
                ),
            ];
            for (request, reason, says) in &cases {
                let before = refused(admin, reason).await;
                let (status, body) = http_raw(addr, request).await;
                assert_eq!(status, 400, "{request:?}: {body}");
                assert!(body.contains(says), "{request:?}: {body}");
                assert_eq!(refused(admin, reason).await, before + 1.0, "{reason}");
            }
            // The same request with a valid key is upgraded.
            let (status, _) = http_raw(addr, &with_key("dGhlIHNhbXBsZSBub25jZQ==")).await;
            assert_eq!(status, 101);
        })
        .await;
    suite
        .attack("request head over the 64 KiB limit", async move {
            let auth = format!("Authorization: Bearer {}\r\n", token(&["*"], 600));
            let upgrade = |filler: usize| {
                format!(
                    "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{auth}X-Filler: {}\r\n\r\n",
                    "f".repeat(filler)
                )
            };
            // Under the old ~400 KiB buffer, over the documented limit.
            for filler in [100 * 1024, 500 * 1024] {
                let before = refused(admin, "request_head_too_large").await;
                let (reply, closed) =
                    raw_tcp(addr, upgrade(filler).as_bytes(), Duration::from_secs(4)).await;
                // The gateway answers 431 and closes without reading the
                // rest, so the kernel may reset the connection before the
                // answer is read.
                assert!(closed, "{reply:.200}");
                assert!(
                    reply.is_empty() || status_of(&reply) == Some(431),
                    "{reply:.200}"
                );
                wait_until("the 431 is counted", WAIT, || async {
                    refused(admin, "request_head_too_large").await > before
                })
                .await;
            }
            // A head within the limit is upgraded.
            let (status, _) = http_raw(addr, &upgrade(48 * 1024)).await;
            assert_eq!(status, 101);
        })
        .await;
}
