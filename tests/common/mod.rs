//! Helpers shared by the integration tests: a gateway on ephemeral ports, a
//! real WebSocket client, a raw HTTP client, tick builders, and the
//! `tickgate` and `nats-server` processes tests start (`process`).
#![allow(dead_code, unreachable_pub)]

mod process;

#[allow(unused_imports)] // not every test starts processes
pub use process::{Nats, Tickgate, free_port};

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tickgate::config::Config;
use tickgate::{FeedSetup, Gateway};
use tickgate_feeds::{FeedEvent, Symbol, Tick, TickBatch, TickKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

pub const WAIT: Duration = Duration::from_secs(10);

/// A config on ephemeral loopback ports.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("addr");
    config.server.admin_listen = "127.0.0.1:0".parse().expect("addr");
    config
}

/// A gateway with no feed of its own; the test injects ticks.
pub async fn gateway_without_feeds(config: Config) -> Gateway {
    Gateway::start(config, FeedSetup::External)
        .await
        .expect("gateway starts")
}

pub fn sym(s: &str) -> Symbol {
    Symbol::parse(s).expect("valid symbol")
}

pub fn quote_tick(symbol: &str, bid: f64) -> Tick {
    Tick {
        symbol: Some(sym(symbol)),
        kind: TickKind::Quote,
        bid: Some(bid),
        ask: Some(bid + 0.01),
        bid_size: Some(100.0),
        ask_size: Some(200.0),
        ts: Some(tickgate_feeds::now_micros()),
        ..Tick::default()
    }
}

pub async fn inject(gateway: &Gateway, ticks: Vec<Tick>) {
    gateway
        .feed_sender()
        .send(FeedEvent::Ticks(TickBatch {
            feed: "test".into(),
            ticks,
        }))
        .await
        .expect("ingest running");
}

/// Polls `condition` every few milliseconds until it holds; panics naming
/// `what` if it still does not after `deadline`. The way to wait for
/// something to have happened: no fixed sleep, and a loaded machine only
/// makes it slower, never wrong.
pub async fn wait_until(what: &str, deadline: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + deadline;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < give_up,
            "{what}: still not the case after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the store holds `seq` for `symbol` (the ingest task is async).
pub async fn wait_for_seq(gateway: &Gateway, symbol: &str, seq: u64) {
    wait_until(&format!("{symbol} reaches seq {seq}"), WAIT, || {
        std::future::ready(latest_seq(gateway, symbol).unwrap_or(0) >= seq)
    })
    .await;
}

// ---- the gateway's inside, seen only through these helpers ---------------
// Tests that must look past the protocol do it here, so a change to the
// gateway's internal layout touches this one place.

/// The `seq` of the latest quote the store holds for `symbol`, if any.
pub fn latest_seq(gateway: &Gateway, symbol: &str) -> Option<u64> {
    gateway
        .store()
        .get(&sym(symbol))
        .and_then(|slot| slot.latest())
        .map(|snapshot| snapshot.quote.seq)
}

/// The latest quote the store holds for `symbol`, as the protocol's JSON.
pub fn latest_quote_json(gateway: &Gateway, symbol: &str) -> Option<String> {
    gateway
        .store()
        .get(&sym(symbol))
        .and_then(|slot| slot.latest())
        .map(|snapshot| snapshot.json.clone())
}

/// How many connections are subscribed to `symbol` (0 if it is unknown).
pub fn subscriber_count(gateway: &Gateway, symbol: &str) -> usize {
    gateway.store().get(&sym(symbol)).map_or(0, |slot| {
        tickgate::fanout::subscriptions::lock_subscribers(&slot).len()
    })
}

/// Client connections the gateway counts as open.
pub fn open_connections(gateway: &Gateway) -> u64 {
    gateway.connections().count()
}

pub struct Client {
    pub ws: WebSocketStream<TcpStream>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        Self::handshake(stream, addr).await
    }

    /// A client whose socket receive buffer is tiny, so the gateway's writes
    /// block quickly once it stops reading.
    pub async fn connect_small_buffer(addr: SocketAddr) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let stream = socket.connect(addr).await.expect("tcp connect");
        Self::handshake(stream, addr).await
    }

    async fn handshake(stream: TcpStream, addr: SocketAddr) -> Self {
        let (ws, response) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
            .await
            .expect("websocket handshake");
        assert_eq!(response.status(), 101);
        Self { ws }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send(&value.to_string()).await;
    }

    /// Next frame of any kind.
    pub async fn next_message(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.next_message_unbounded())
            .await
            .expect("a frame within the wait")
    }

    /// Next frame of any kind; the caller bounds the wait.
    async fn next_message_unbounded(&mut self) -> Message {
        self.ws
            .next()
            .await
            .expect("stream open")
            .expect("no websocket error")
    }

    /// Next JSON text frame, skipping heartbeats; at most [`WAIT`] in all.
    pub async fn next_json(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.next_json_unbounded())
            .await
            .expect("a JSON frame within the wait")
    }

    /// Next JSON text frame, skipping heartbeats; at most `limit` in all.
    /// For the few replies that are slow by nature in a debug build.
    pub async fn next_json_within(&mut self, limit: Duration) -> Value {
        tokio::time::timeout(limit, self.next_json_unbounded())
            .await
            .expect("a JSON frame within the limit")
    }

    async fn next_json_unbounded(&mut self) -> Value {
        loop {
            match self.next_message_unbounded().await {
                Message::Text(text) => {
                    let value: Value =
                        serde_json::from_str(text.as_str()).expect("server sends JSON");
                    if value["type"] != "heartbeat" {
                        return value;
                    }
                }
                Message::Close(frame) => panic!("unexpected close: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Next JSON frame of the given type, skipping others (heartbeats,
    /// updates); at most [`WAIT`] in all.
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let value = tokio::time::timeout_at(deadline, self.next_json_unbounded())
                .await
                .unwrap_or_else(|_| panic!("no {kind} frame within the wait"));
            if value["type"] == kind {
                return value;
            }
        }
    }

    /// Reads until the server closes; returns its close frame.
    pub async fn expect_close(&mut self) -> Option<CloseFrame> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("close within the wait");
            match next {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Proves the connection still works: ping gets its pong.
    pub async fn assert_usable(&mut self) {
        self.send(r#"{"op":"ping","id":"alive"}"#).await;
        let pong = self.next_of_type("pong").await;
        assert_eq!(pong["id"], "alive");
    }
}

/// Quotes of a snapshot or update frame as (symbol, seq) pairs.
pub fn quotes(frame: &Value) -> Vec<(String, u64)> {
    frame["quotes"]
        .as_array()
        .expect("quotes array")
        .iter()
        .map(|q| {
            (
                q["symbol"].as_str().expect("symbol").to_owned(),
                q["seq"].as_u64().expect("seq"),
            )
        })
        .collect()
}

/// A minimal HTTP/1.1 GET; returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// Sends raw request bytes; returns (status, body). Reads one response
/// (headers, then `Content-Length` bytes), so keep-alive connections work.
pub async fn http_raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let read_response = async {
        let mut chunk = [0u8; 8192];
        loop {
            let text = String::from_utf8_lossy(&response).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return text;
                }
            }
            let n = stream.read(&mut chunk).await.expect("read");
            if n == 0 {
                return String::from_utf8_lossy(&response).into_owned();
            }
            response.extend_from_slice(&chunk[..n]);
        }
    };
    let text = tokio::time::timeout(WAIT, read_response)
        .await
        .expect("response within the wait");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Current value of one Prometheus series on `admin`'s `/metrics` (0 when
/// absent). `series` is the name with its labels, as the line starts.
pub async fn metric_value(admin: SocketAddr, series: &str) -> f64 {
    let (status, body) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Starts the binary on ephemeral ports; returns it with (client, admin).
pub fn spawn_binary(args: &[&str]) -> (KillOnDrop, std::net::SocketAddr, std::net::SocketAddr) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tickgate"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("listening line");
    let event: serde_json::Value = serde_json::from_str(&line).expect("listening line is JSON");
    assert_eq!(event["event"], "listening");
    let client = event["client"]
        .as_str()
        .expect("client")
        .parse()
        .expect("addr");
    let admin = event["admin"]
        .as_str()
        .expect("admin")
        .parse()
        .expect("addr");
    (KillOnDrop(child), client, admin)
}

/// Kills the child process when dropped, so a failing test never leaves a
/// gateway running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Resident memory of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
