//! Hostile clients against the real binary: dozens of kinds of bad input,
//! from malformed JSON to masking violations, floods, slowloris, TLS garbage
//! and forged tokens. After each attack a well-behaved client connected
//! alongside must still receive fresh updates; at the end the gateway's
//! resident memory (read from /proc/<pid>/status) must be back near its
//! baseline.
//!
//! The gateway runs as a child process with authentication required, a
//! one-second handshake timeout, 64 KiB messages, 40 connections per IP and
//! the simulator feed. Raw WebSocket frames are built by hand below.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Client, KillOnDrop, WAIT, http_raw};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SECRET: &str = "hostile-suite-secret-0123456789abcdef";
const PER_IP: usize = 40;
const MAX_MESSAGE: usize = 64 * 1024;
const WATCHED: usize = 40;

/// The gateway child process and how to reach it.
struct Gateway {
    child: KillOnDrop,
    client: SocketAddr,
    dir: std::path::PathBuf,
}

impl Gateway {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("tickgate-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("secret"), SECRET).expect("secret");
        let config = format!(
            r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[limits]
handshake_timeout_ms = 1000
max_message_bytes = {MAX_MESSAGE}
max_connections_per_ip = {PER_IP}
max_requests_per_second = 50.0
request_burst = 100
max_rate_limited = 20
[simulator]
ticks_per_second = 2000.0
symbols = 60
[auth]
mode = "required"
hs256_secret_file = "{}"
leeway_seconds = 0
first_message = true
first_message_timeout_ms = 1000
[log]
level = "error"
"#,
            dir.join("secret").display()
        );
        std::fs::write(dir.join("hostile.toml"), config).expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tickgate"))
            .arg("--config")
            .arg(dir.join("hostile.toml"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let event: Value = serde_json::from_str(&line).expect("listening line is JSON");
        let client = event["client"]
            .as_str()
            .expect("client")
            .parse()
            .expect("addr");
        Self {
            child: KillOnDrop(child),
            client,
            dir,
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn token(symbols: &[&str], ttl: i64) -> String {
    let exp = now_micros() / 1_000_000 + ttl;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub":"hostile","exp":exp,"symbols":symbols}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The well-behaved client: subscribed to the simulator's first symbols.
async fn watcher(addr: SocketAddr) -> Client {
    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", token(&["*"], 3600))).expect("header"),
    );
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("watcher connects");
    let mut client = Client { ws };
    let symbols: Vec<String> = tickgate_feeds::sim::universe()
        .take(WATCHED)
        .map(|s| s.to_string())
        .collect();
    client
        .send_json(json!({"op":"subscribe","symbols":symbols}))
        .await;
    client.next_of_type("snapshot").await;
    client
}

/// Reads the watcher until an update holds a quote stamped after `since`
/// (µs): proof that fresh data still flows to it.
async fn assert_fresh(watcher: &mut Client, since: i64, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let frame = timeout(
            deadline.saturating_duration_since(Instant::now()),
            watcher.next_json(),
        )
        .await
        .unwrap_or_else(|_| panic!("no fresh update for the watcher after {after}"));
        if frame["type"] != "update" {
            continue;
        }
        let fresh = frame["quotes"]
            .as_array()
            .expect("quotes")
            .iter()
            .any(|q| q["ts"].as_i64().unwrap_or(0) > since);
        if fresh {
            return;
        }
    }
}

// ---- raw WebSocket client -------------------------------------------------

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One client frame: FIN, RSV bits (0..=7), opcode, payload, masked or not.
fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0xf)];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

fn text(payload: &str) -> Vec<u8> {
    frame(true, 0, TEXT, payload.as_bytes(), true)
}

/// What the gateway did with a raw connection.
#[derive(Debug, Default)]
struct Outcome {
    texts: Vec<String>,
    close_code: Option<u16>,
    /// The stream ended (EOF or reset) or the close frame arrived.
    ended: bool,
}

impl Outcome {
    fn saw(&self, needle: &str) -> bool {
        self.texts.iter().any(|t| t.contains(needle))
    }
}

/// A TCP connection that has done the HTTP upgrade by hand.
struct Raw {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Raw {
    /// Upgrades with a valid token in the header.
    async fn open(addr: SocketAddr) -> Self {
        let auth = format!("Authorization: Bearer {}\r\n", token(&["*"], 600));
        Self::open_with(addr, &auth).await.expect("101")
    }

    /// Upgrades with `extra` header lines; `Err(status)` when refused.
    async fn open_with(addr: SocketAddr, extra: &str) -> Result<Self, u16> {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("response in time")
                .expect("read");
            assert!(n > 0, "connection closed before a response");
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        if status != 101 {
            return Err(status);
        }
        buffer.drain(..head_end);
        Ok(Self { stream, buffer })
    }

    async fn send(&mut self, bytes: &[u8]) {
        // The gateway may already have closed: a failed write is an outcome too.
        let _ = self.stream.write_all(bytes).await;
    }

    /// Reads server frames for up to `limit`, until a close frame or EOF.
    async fn outcome(&mut self, limit: Duration) -> Outcome {
        let mut outcome = Outcome::default();
        let deadline = Instant::now() + limit;
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            while let Some((opcode, payload, used)) = parse_server_frame(&self.buffer) {
                self.buffer.drain(..used);
                match opcode {
                    TEXT => outcome
                        .texts
                        .push(String::from_utf8_lossy(&payload).into_owned()),
                    CLOSE => {
                        outcome.close_code = (payload.len() >= 2)
                            .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                        outcome.ended = true;
                        return outcome;
                    }
                    _ => {}
                }
            }
            let Ok(read) = timeout(
                deadline.saturating_duration_since(Instant::now()),
                self.stream.read(&mut chunk),
            )
            .await
            else {
                return outcome;
            };
            match read {
                Ok(0) | Err(_) => {
                    outcome.ended = true;
                    return outcome;
                }
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends `bytes`, then expects a close frame with `code`.
    async fn expect_close(&mut self, bytes: &[u8], code: u16) {
        self.send(bytes).await;
        let outcome = self.outcome(Duration::from_secs(5)).await;
        assert_eq!(outcome.close_code, Some(code), "{outcome:?}");
    }

    /// Sends `bytes`, then expects a text reply containing `needle`, and
    /// that the connection still answers a ping afterwards.
    async fn expect_reply(&mut self, bytes: &[u8], needle: &str) {
        self.send(bytes).await;
        let outcome = self.outcome_until(needle).await;
        assert!(outcome.saw(needle), "no {needle:?} in {outcome:?}");
        self.send(&text(r#"{"op":"ping","id":"still"}"#)).await;
        let outcome = self.outcome_until("\"still\"").await;
        assert!(outcome.saw("\"pong\""), "unusable after: {outcome:?}");
    }

    async fn outcome_until(&mut self, needle: &str) -> Outcome {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut all = Outcome::default();
        while Instant::now() < deadline && !all.saw(needle) && !all.ended {
            let part = self.outcome(Duration::from_millis(200)).await;
            all.texts.extend(part.texts);
            all.close_code = part.close_code;
            all.ended = part.ended;
        }
        all
    }
}

/// (opcode, payload, bytes used) of the first complete unmasked frame.
fn parse_server_frame(buffer: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buffer.len() < 2 {
        return None;
    }
    let opcode = buffer[0] & 0xf;
    let (len, start) = match buffer[1] & 0x7f {
        126 if buffer.len() >= 4 => (usize::from(u16::from_be_bytes([buffer[2], buffer[3]])), 4),
        127 if buffer.len() >= 10 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&buffer[2..10]);
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        126 | 127 => return None,
        n => (usize::from(n), 2),
    };
    (buffer.len() >= start + len)
        .then(|| (opcode, buffer[start..start + len].to_vec(), start + len))
}

/// Sends raw bytes on a fresh TCP connection; returns what came back
/// (lossy text) within `limit`, and whether the gateway closed it.
async fn raw_tcp(addr: SocketAddr, bytes: &[u8], limit: Duration) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(bytes).await;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            stream.read(&mut chunk),
        )
        .await
        {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

fn status_of(response: &str) -> Option<u16> {
    response.split_whitespace().nth(1)?.parse().ok()
}

/// The first `n` symbols of the simulator's universe.
fn universe(n: usize) -> Vec<String> {
    tickgate_feeds::sim::universe()
        .take(n)
        .map(|s| s.to_string())
        .collect()
}

/// Upgrades with a 4 KiB receive buffer, sends `requests`, then reads
/// nothing for `stall` and drops the connection.
async fn stalled_reader(addr: SocketAddr, requests: &[serde_json::Value], stall: Duration) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stream = socket.connect(addr).await.expect("connect");
    let auth = token(&["*"], 600);
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {auth}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    for request in requests {
        let _ = stream.write_all(&text(&request.to_string())).await;
    }
    sleep(stall).await;
    drop(stream);
}

// ---- the suite ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_never_hurt_a_well_behaved_one_and_memory_returns_to_baseline() {
    let mut gateway = Gateway::start();
    let addr = gateway.client;
    let mut watcher = watcher(addr).await;
    assert_fresh(&mut watcher, now_micros(), "start-up").await;
    // Warm up: a few ordinary clients come and go, so allocator pools exist.
    for _ in 0..5 {
        let mut raw = Raw::open(addr).await;
        raw.expect_reply(
            &text(r#"{"op":"subscribe","symbols":["AAPL","MSFT"]}"#),
            "snapshot",
        )
        .await;
    }
    sleep(Duration::from_millis(500)).await;
    let baseline_kib = gateway.rss_kib();
    let mut attacks: Vec<&str> = Vec::new();

    macro_rules! attack {
        ($name:expr, $body:expr) => {{
            let started = now_micros();
            timeout(Duration::from_secs(20), $body)
                .await
                .unwrap_or_else(|_| panic!("attack {:?} took too long", $name));
            assert!(gateway.alive(), "gateway died after {:?}", $name);
            assert_fresh(&mut watcher, started, $name).await;
            attacks.push($name);
        }};
    }

    // --- bad JSON and bad requests: an error, and the connection stays usable.
    attack!("malformed JSON", async {
        Raw::open(addr)
            .await
            .expect_reply(&text(r#"{"op":"subscribe",,}"#), "bad_request")
            .await;
    });
    attack!("truncated JSON", async {
        Raw::open(addr)
            .await
            .expect_reply(&text(r#"{"op":"subscribe","symbols":["AA"#), "bad_request")
            .await;
    });
    attack!("JSON that is not an object", async {
        let mut raw = Raw::open(addr).await;
        for payload in ["[1,2,3]", "42", "\"subscribe\"", "null", "true"] {
            raw.expect_reply(&text(payload), "bad_request").await;
        }
    });
    attack!("wrong field types", async {
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
    });
    attack!("deeply nested JSON", async {
        let nested = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        Raw::open(addr)
            .await
            .expect_reply(&text(&nested), "bad_request")
            .await;
    });
    attack!("unknown ops", async {
        let mut raw = Raw::open(addr).await;
        for op in ["buy", "SUBSCRIBE", "", "subscribe\u{0}"] {
            raw.expect_reply(&text(&json!({"op":op}).to_string()), "unknown_op")
                .await;
        }
    });
    attack!("huge ids", async {
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
    });
    attack!("duplicate symbols", async {
        let symbols = vec!["AAPL"; 2000];
        let mut raw = Raw::open(addr).await;
        raw.expect_reply(
            &text(&json!({"op":"subscribe","symbols":symbols,"id":1}).to_string()),
            "subscribed",
        )
        .await;
    });
    attack!("invalid and oversized symbols", async {
        let mut raw = Raw::open(addr).await;
        let long = "Z".repeat(5000);
        raw.expect_reply(
            &text(&json!({"op":"subscribe","symbols":["", " ", "A B", "\u{1F600}", "<script>", long]}).to_string()),
            "invalid_symbol",
        )
        .await;
    });
    attack!("control characters and NULs in strings", async {
        Raw::open(addr)
            .await
            .expect_reply(
                &text("{\"op\":\"subscribe\",\"symbols\":[\"A\\u0000B\",\"\\u0007\"]}"),
                "invalid_symbol",
            )
            .await;
    });
    attack!("too many subscriptions in one request", async {
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
    });
    attack!("empty text frame", async {
        Raw::open(addr)
            .await
            .expect_reply(&text(""), "bad_request")
            .await;
    });
    attack!("binary frames", async {
        let mut raw = Raw::open(addr).await;
        raw.expect_reply(
            &frame(true, 0, BINARY, b"{\"op\":\"ping\"}", true),
            "binary frames are not supported",
        )
        .await;
        raw.expect_reply(&frame(true, 0, BINARY, &[0xff; 1000], true), "bad_request")
            .await;
    });
    // --- WebSocket protocol violations: 1002 (or 1007 for bad UTF-8).
    attack!("invalid UTF-8 in a text frame", async {
        let mut raw = Raw::open(addr).await;
        raw.send(&frame(
            true,
            0,
            TEXT,
            b"{\"op\":\"ping\",\"id\":\"\xff\xfe\"}",
            true,
        ))
        .await;
        let outcome = raw.outcome(Duration::from_secs(5)).await;
        assert!(outcome.ended, "{outcome:?}");
        assert!(
            matches!(outcome.close_code, Some(1002 | 1007) | None),
            "{outcome:?}"
        );
    });
    attack!("fragmented text message (valid)", async {
        let mut raw = Raw::open(addr).await;
        let mut bytes = frame(false, 0, TEXT, b"{\"op\":\"pi", true);
        bytes.extend(frame(false, 0, CONTINUATION, b"ng\",\"id\":", true));
        bytes.extend(frame(true, 0, CONTINUATION, b"\"frag\"}", true));
        raw.expect_reply(&bytes, "\"frag\"").await;
    });
    attack!("ping interleaved between fragments (valid)", async {
        let mut raw = Raw::open(addr).await;
        let mut bytes = frame(false, 0, TEXT, b"{\"op\":\"ping\",", true);
        bytes.extend(frame(true, 0, PING, b"mid", true));
        bytes.extend(frame(true, 0, CONTINUATION, b"\"id\":\"inter\"}", true));
        raw.expect_reply(&bytes, "\"inter\"").await;
    });
    attack!("new data frame inside a fragmented message", async {
        let mut bytes = frame(false, 0, TEXT, b"{\"op\":", true);
        bytes.extend(text(r#"{"op":"ping"}"#));
        Raw::open(addr).await.expect_close(&bytes, 1002).await;
    });
    attack!("continuation frame without a start", async {
        Raw::open(addr)
            .await
            .expect_close(&frame(true, 0, CONTINUATION, b"orphan", true), 1002)
            .await;
    });
    attack!("unmasked client frame", async {
        Raw::open(addr)
            .await
            .expect_close(&frame(true, 0, TEXT, br#"{"op":"ping"}"#, false), 1002)
            .await;
    });
    attack!("reserved opcodes", async {
        for opcode in [0x3, 0x7, 0xB, 0xF] {
            Raw::open(addr)
                .await
                .expect_close(&frame(true, 0, opcode, b"x", true), 1002)
                .await;
        }
    });
    attack!("reserved RSV bits", async {
        for rsv in [1, 2, 4] {
            Raw::open(addr)
                .await
                .expect_close(&frame(true, rsv, TEXT, br#"{"op":"ping"}"#, true), 1002)
                .await;
        }
    });
    attack!("oversize control frame", async {
        Raw::open(addr)
            .await
            .expect_close(&frame(true, 0, PING, &[b'p'; 200], true), 1002)
            .await;
    });
    attack!("fragmented control frame", async {
        Raw::open(addr)
            .await
            .expect_close(&frame(false, 0, PING, b"half", true), 1002)
            .await;
    });
    attack!("close frame with an invalid code", async {
        let mut raw = Raw::open(addr).await;
        raw.send(&frame(true, 0, CLOSE, &999u16.to_be_bytes(), true))
            .await;
        let outcome = raw.outcome(Duration::from_secs(5)).await;
        assert!(outcome.ended, "{outcome:?}");
    });
    // --- size limits: 1009.
    attack!("oversize frame header (1 GiB announced)", async {
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 30).to_be_bytes());
        header.extend_from_slice(&MASK);
        Raw::open(addr).await.expect_close(&header, 1009).await;
    });
    attack!("oversize frame (sent in full)", async {
        let big = format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(MAX_MESSAGE * 2));
        Raw::open(addr).await.expect_close(&text(&big), 1009).await;
    });
    attack!("oversize message in small fragments", async {
        let piece = vec![b'x'; 16 * 1024];
        let mut bytes = frame(false, 0, TEXT, b"{\"pad\":\"", true);
        for _ in 0..8 {
            bytes.extend(frame(false, 0, CONTINUATION, &piece, true));
        }
        bytes.extend(frame(true, 0, CONTINUATION, b"\"}", true));
        Raw::open(addr).await.expect_close(&bytes, 1009).await;
    });
    // --- floods: rate_limited, then 1008.
    attack!("request flood", async {
        let mut raw = Raw::open(addr).await;
        let mut bytes = Vec::new();
        for i in 0..400 {
            bytes.extend(text(&format!(r#"{{"op":"ping","id":{i}}}"#)));
        }
        raw.send(&bytes).await;
        let outcome = raw.outcome(Duration::from_secs(5)).await;
        assert!(outcome.saw("rate_limited"), "{outcome:?}");
        assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
    });
    attack!("subscribe flood", async {
        let mut raw = Raw::open(addr).await;
        let mut bytes = Vec::new();
        for i in 0..300 {
            bytes.extend(text(
                &json!({"op":"subscribe","symbols":[format!("FLOOD{}", i % 50)]}).to_string(),
            ));
        }
        raw.send(&bytes).await;
        let outcome = raw.outcome(Duration::from_secs(5)).await;
        assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
    });
    attack!("ping flood", async {
        let mut raw = Raw::open(addr).await;
        let mut bytes = Vec::new();
        for _ in 0..2000 {
            bytes.extend(frame(true, 0, PING, b"flood", true));
        }
        raw.send(&bytes).await;
        let outcome = raw.outcome(Duration::from_secs(5)).await;
        assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
    });
    attack!("unsolicited pong flood", async {
        let mut raw = Raw::open(addr).await;
        let mut bytes = Vec::new();
        for _ in 0..2000 {
            bytes.extend(frame(true, 0, PONG, b"", true));
        }
        raw.send(&bytes).await;
        let outcome = raw.outcome(Duration::from_secs(5)).await;
        assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
    });
    // --- transport-level abuse.
    attack!("random garbage after the handshake", async {
        let mut raw = Raw::open(addr).await;
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        raw.send(&garbage).await;
        let outcome = raw.outcome(Duration::from_secs(5)).await;
        assert!(outcome.ended, "{outcome:?}");
    });
    attack!("half a frame, then silence and a reset", async {
        let mut raw = Raw::open(addr).await;
        raw.send(&text(r#"{"op":"ping","id":"half"}"#)[..6]).await;
        sleep(Duration::from_millis(200)).await;
        let socket = socket2_linger_reset(raw.stream);
        drop(socket);
    });
    attack!("half-open TCP after the upgrade", async {
        let raw = Raw::open(addr).await;
        let mut stream = raw.stream;
        let _ = stream.shutdown().await; // our write side closed, reads still open
        let mut chunk = [0u8; 1024];
        let read = timeout(Duration::from_secs(5), stream.read(&mut chunk)).await;
        assert!(
            read.is_ok(),
            "the gateway must notice the half-closed stream"
        );
    });
    attack!("stalled reader subscribed to everything", async {
        let symbols = universe(60);
        let subscribe = json!({"op":"subscribe","symbols":symbols});
        // Never read; the watcher must not notice.
        stalled_reader(addr, &[subscribe], Duration::from_secs(2)).await;
    });
    attack!("stalled reader asking for every trade, ranked", async {
        let symbols = universe(200);
        let requests = [
            json!({"op":"subscribe","symbols":symbols,"trades":true,"priority":"visible"}),
            json!({"op":"priority","background":symbols}),
        ];
        // Never read: trades pile up to the trade buffer, the ladder slows
        // the symbols; the watcher must not notice.
        stalled_reader(addr, &requests, Duration::from_secs(3)).await;
    });
    attack!(
        "priority requests: huge, duplicated, unsubscribed, wrong types",
        async {
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
        }
    );
    attack!("slowloris request headers", async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let started = Instant::now();
        let request = b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        let mut dropped = false;
        for byte in request.iter().chain(std::iter::repeat(&b'a')).take(200) {
            if stream.write_all(&[*byte]).await.is_err() {
                dropped = true;
                break;
            }
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
    });
    attack!("connect and send nothing", async {
        let (reply, closed) = raw_tcp(addr, b"", Duration::from_secs(4)).await;
        assert!(closed, "idle TCP connection not dropped: {reply:?}");
    });
    attack!("TLS ClientHello on the plain port", async {
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
    });
    attack!("request smuggling headers", async {
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
    });
    attack!("huge request headers", async {
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
    });
    attack!("bad upgrade requests", async {
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
    });
    attack!("many connections from one IP", async {
        let mut held = Vec::new();
        let mut refused = None;
        for _ in 0..PER_IP + 5 {
            match Raw::open_with(
                addr,
                &format!("Authorization: Bearer {}\r\n", token(&["*"], 600)),
            )
            .await
            {
                Ok(raw) => held.push(raw),
                Err(status) => {
                    refused = Some(status);
                    break;
                }
            }
        }
        assert_eq!(refused, Some(429), "held {}", held.len());
        assert!(held.len() < PER_IP, "the watcher holds one place too");
        // Closing them gives the places back.
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Raw::open_with(
            addr,
            &format!("Authorization: Bearer {}\r\n", token(&["*"], 600)),
        )
        .await
        .is_err()
        {
            assert!(Instant::now() < deadline, "per-IP places never came back");
            sleep(Duration::from_millis(50)).await;
        }
    });
    attack!("bad tokens of many kinds", async {
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
            let refused = Raw::open_with(addr, &format!("Authorization: Bearer {bad}\r\n")).await;
            assert_eq!(refused.err(), Some(401), "{bad:.60}");
        }
        // The same tokens in a first message: unauthorized, then 1008.
        for bad in cases.iter().filter(|t| !t.is_empty() && t.len() < 10_000) {
            let mut raw = Raw::open_with(addr, "")
                .await
                .expect("upgrade without a token");
            raw.send(&text(&json!({"op":"auth","token":bad}).to_string()))
                .await;
            let outcome = raw.outcome(Duration::from_secs(5)).await;
            assert!(outcome.saw("unauthorized"), "{outcome:?}");
            assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
        }
    });
    attack!("requests before authenticating", async {
        let mut raw = Raw::open_with(addr, "")
            .await
            .expect("upgrade without a token");
        raw.send(&text(r#"{"op":"subscribe","symbols":["AAPL"]}"#))
            .await;
        let outcome = raw.outcome(Duration::from_secs(5)).await;
        assert!(!outcome.saw("snapshot"), "{outcome:?}");
        assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
        let mut silent = Raw::open_with(addr, "")
            .await
            .expect("upgrade without a token");
        let outcome = silent.outcome(Duration::from_secs(5)).await;
        assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
    });
    attack!("unentitled symbols", async {
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
    });
    attack!("connection churn", async {
        for _ in 0..100 {
            let raw = Raw::open(addr).await;
            drop(raw);
        }
    });

    assert!(
        attacks.len() >= 30,
        "only {} kinds of attack",
        attacks.len()
    );

    // Memory: every attacker is gone; give the gateway a moment to notice.
    let deadline = Instant::now() + Duration::from_secs(10);
    // Allocator noise on a shared machine, not per-attack growth.
    let limit_kib = baseline_kib + 12 * 1024;
    let mut rss = gateway.rss_kib();
    while rss > limit_kib && Instant::now() < deadline {
        sleep(Duration::from_millis(250)).await;
        rss = gateway.rss_kib();
    }
    eprintln!(
        "{} attacks; gateway RSS baseline {baseline_kib} KiB, after {rss} KiB",
        attacks.len()
    );
    assert!(
        rss <= limit_kib,
        "RSS {rss} KiB did not return near the baseline {baseline_kib} KiB"
    );
    assert_fresh(&mut watcher, now_micros(), "the whole suite").await;
}

/// Turns a stream into one that resets on drop (SO_LINGER 0: the close is
/// an immediate RST, so the drop does not block).
#[allow(deprecated)]
fn socket2_linger_reset(stream: TcpStream) -> TcpStream {
    let _ = stream.set_linger(Some(Duration::ZERO));
    stream
}
