//! The hostile suite's machinery: the gateway as a child process, the
//! well-behaved watcher, a raw WebSocket client that builds frames by hand,
//! and [`Suite`], which runs each attack and checks the watcher after it.

pub use std::net::SocketAddr;
pub use std::time::Duration;

pub use crate::common::{Client, KillOnDrop, WAIT, http_get, http_raw, wait_until};
pub use jsonwebtoken::{Algorithm, EncodingKey, Header};
pub use serde_json::{Value, json};
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub use tokio::net::{TcpSocket, TcpStream};
pub use tokio::time::{Instant, sleep, timeout};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

pub const SECRET: &str = "hostile-suite-secret-0123456789abcdef";
pub const PER_IP: usize = 40;
pub const MAX_MESSAGE: usize = 64 * 1024;
pub const WATCHED: usize = 40;

/// The gateway child process and how to reach it.
pub struct Gateway {
    child: KillOnDrop,
    pub client: SocketAddr,
    pub admin: SocketAddr,
    dir: std::path::PathBuf,
}

impl Gateway {
    pub fn start() -> Self {
        Self::start_with(MAX_MESSAGE, "")
    }

    /// The suite's gateway with another `max_message_bytes` and `extra`
    /// lines in `[limits]`.
    pub fn start_with(max_message: usize, extra: &str) -> Self {
        // One directory per gateway: tests of one binary may share a process.
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tickgate-hostile-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("secret"), SECRET).expect("secret");
        let config = format!(
            r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[limits]
handshake_timeout_ms = 1000
max_message_bytes = {max_message}
max_connections_per_ip = {PER_IP}
max_requests_per_second = 50.0
request_burst = 100
max_rate_limited = 20
{extra}
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
        let addr = |key: &str| {
            event[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} address"))
                .parse()
                .expect("addr")
        };
        Self {
            child: KillOnDrop(child),
            client: addr("client"),
            admin: addr("admin"),
            dir,
        }
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// Open WebSocket connections, as `/metrics` reports them.
    pub async fn open_connections(&self) -> f64 {
        let (status, body) = http_get(self.admin, "/metrics").await;
        assert_eq!(status, 200);
        body.lines()
            .find_map(|l| l.strip_prefix(r#"tickgate_connections{transport="ws"} "#))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until only the watcher is still connected: every attacker's
    /// connection is closed on the gateway's side too.
    pub async fn wait_for_attackers_gone(&self) {
        wait_until("only the watcher still connected", WAIT, || async {
            self.open_connections().await <= 1.0
        })
        .await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn token(symbols: &[&str], ttl: i64) -> String {
    let exp = now_micros() / 1_000_000 + ttl;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub":"hostile","exp":exp,"symbols":symbols}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The well-behaved client: subscribed to the simulator's first symbols.
pub async fn watcher(addr: SocketAddr) -> Client {
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

/// A gateway, its well-behaved watcher, and the attacks run so far.
pub struct Suite {
    pub gateway: Gateway,
    pub addr: SocketAddr,
    watcher: Client,
    pub attacks: Vec<&'static str>,
}

impl Suite {
    /// Starts the gateway and connects the watcher; fresh data reaches it.
    pub async fn start() -> Self {
        Self::on(Gateway::start()).await
    }

    /// The suite on `gateway`.
    pub async fn on(gateway: Gateway) -> Self {
        let addr = gateway.client;
        let mut watcher = watcher(addr).await;
        assert_fresh(&mut watcher, now_micros(), "start-up").await;
        Self {
            gateway,
            addr,
            watcher,
            attacks: Vec::new(),
        }
    }

    /// Runs one attack (at most 20 s), then checks the gateway is alive and
    /// the watcher still receives updates stamped after the attack began.
    pub async fn attack(
        &mut self,
        name: &'static str,
        body: impl std::future::Future<Output = ()>,
    ) {
        let started = now_micros();
        timeout(Duration::from_secs(20), body)
            .await
            .unwrap_or_else(|_| panic!("attack {name:?} took too long"));
        assert!(self.gateway.alive(), "gateway died after {name:?}");
        assert_fresh(&mut self.watcher, started, name).await;
        self.attacks.push(name);
    }

    /// The watcher receives `n` more updates, each with a quote stamped
    /// after `since` (µs).
    pub async fn assert_watcher_updates(&mut self, n: usize, since: i64, during: &str) {
        for _ in 0..n {
            assert_fresh(&mut self.watcher, since, during).await;
        }
    }

    /// Fresh data still reaches the watcher now.
    pub async fn assert_watcher_fresh(&mut self, after: &str) {
        assert_fresh(&mut self.watcher, now_micros(), after).await;
    }
}

/// Reads the watcher until an update holds a quote stamped after `since`
/// (µs): proof that fresh data still flows to it.
pub async fn assert_fresh(watcher: &mut Client, since: i64, after: &str) {
    let deadline = Instant::now() + WAIT;
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

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CONTINUATION: u8 = 0x0;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One client frame: FIN, RSV bits (0..=7), opcode, payload, masked or not.
pub fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
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

pub fn text(payload: &str) -> Vec<u8> {
    frame(true, 0, TEXT, payload.as_bytes(), true)
}

/// What the gateway did with a raw connection.
#[derive(Debug, Default)]
pub struct Outcome {
    pub texts: Vec<String>,
    pub close_code: Option<u16>,
    /// The stream ended (EOF or reset) or the close frame arrived.
    pub ended: bool,
}

impl Outcome {
    pub fn saw(&self, needle: &str) -> bool {
        self.texts.iter().any(|t| t.contains(needle))
    }
}

/// A TCP connection that has done the HTTP upgrade by hand.
pub struct Raw {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

impl Raw {
    /// Upgrades with a valid token in the header.
    pub async fn open(addr: SocketAddr) -> Self {
        let auth = format!("Authorization: Bearer {}\r\n", token(&["*"], 600));
        Self::open_with(addr, &auth).await.expect("101")
    }

    /// Upgrades with `extra` header lines; `Err(status)` when refused.
    pub async fn open_with(addr: SocketAddr, extra: &str) -> Result<Self, u16> {
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

    pub async fn send(&mut self, bytes: &[u8]) {
        // The gateway may already have closed: a failed write is an outcome too.
        let _ = self.stream.write_all(bytes).await;
    }

    /// Reads server frames for up to `limit`, until a close frame or EOF.
    pub async fn outcome(&mut self, limit: Duration) -> Outcome {
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
    pub async fn expect_close(&mut self, bytes: &[u8], code: u16) {
        self.send(bytes).await;
        let outcome = self.outcome(WAIT).await;
        assert_eq!(outcome.close_code, Some(code), "{outcome:?}");
    }

    /// Sends `bytes`, then expects a text reply containing `needle`, and
    /// that the connection still answers a ping afterwards.
    pub async fn expect_reply(&mut self, bytes: &[u8], needle: &str) {
        self.send(bytes).await;
        let outcome = self.outcome_until(needle).await;
        assert!(outcome.saw(needle), "no {needle:?} in {outcome:?}");
        self.send(&text(r#"{"op":"ping","id":"still"}"#)).await;
        let outcome = self.outcome_until("\"still\"").await;
        assert!(outcome.saw("\"pong\""), "unusable after: {outcome:?}");
    }

    pub async fn outcome_until(&mut self, needle: &str) -> Outcome {
        let deadline = Instant::now() + WAIT;
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
pub fn parse_server_frame(buffer: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
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
pub async fn raw_tcp(addr: SocketAddr, bytes: &[u8], limit: Duration) -> (String, bool) {
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

pub fn status_of(response: &str) -> Option<u16> {
    response.split_whitespace().nth(1)?.parse().ok()
}

/// The first `n` symbols of the simulator's universe.
pub fn universe(n: usize) -> Vec<String> {
    tickgate_feeds::sim::universe()
        .take(n)
        .map(|s| s.to_string())
        .collect()
}

/// Upgrades with a 4 KiB receive buffer, sends `requests`, then reads
/// nothing for `stall` and drops the connection.
pub async fn stalled_reader(addr: SocketAddr, requests: &[serde_json::Value], stall: Duration) {
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
    // The stall is the attack: the gateway's writes back up meanwhile.
    sleep(stall).await;
    drop(stream);
}

/// Turns a stream into one that resets on drop (SO_LINGER 0: the close is
/// an immediate RST, so the drop does not block).
#[allow(deprecated)]
pub fn socket2_linger_reset(stream: TcpStream) -> TcpStream {
    let _ = stream.set_linger(Some(Duration::ZERO));
    stream
}
