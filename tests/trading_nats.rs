//! Trading status across NATS: a TCP upstream served by the test →
//! `tickgate publish` → a real `nats-server` with JetStream → gateway
//! processes → real WebSocket clients. A halt reaches a running gateway's
//! subscribers; a gateway started after the halt learns it from the
//! stream's last message; a resumption follows. Every process is started
//! here and ended by its PID.

// Waiting for a child process or a port from plain (not async) helpers.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Client, KillOnDrop, http_get};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_tickgate");
const WAIT: Duration = Duration::from_secs(15);

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// nats-server with JetStream on a loopback port; killed on drop.
fn nats_server(store: &Path) -> (KillOnDrop, String) {
    let port = free_port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server runs (apt-get install -y nats-server; scripts/test.sh does this)");
    let process = KillOnDrop(child);
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "nats-server listens");
        std::thread::sleep(Duration::from_millis(20));
    }
    (process, format!("nats://127.0.0.1:{port}"))
}

/// A `tickgate` process with `config`; returns it and its `listening` line.
fn tickgate(args: &[&str], config: &Path) -> (KillOnDrop, Value) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tickgate runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let listening: Value = serde_json::from_str(&line).expect("listening line is JSON");
    (KillOnDrop(child), listening)
}

fn addr(listening: &Value, key: &str) -> SocketAddr {
    listening[key]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {listening}"))
}

async fn wait_ready(admin: SocketAddr) {
    let deadline = Instant::now() + WAIT;
    while http_get(admin, "/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn configs(dir: &Path, nats: &str, upstream: SocketAddr) -> (PathBuf, PathBuf) {
    let publish = dir.join("publish.toml");
    std::fs::write(
        &publish,
        format!(
            r#"
[server]
admin_listen = "127.0.0.1:0"

[[feeds]]
name = "upstream"
kind = "tcp"
address = "{upstream}"
backoff_min_ms = 50
backoff_max_ms = 300

[publish]
heartbeat_interval_ms = 200

[publish.nats]
urls = ["{nats}"]
stream = "TRADING_QUOTES"
subject_prefix = "tr.quote"
"#
        ),
    )
    .expect("write");
    let gateway = dir.join("gateway.toml");
    std::fs::write(
        &gateway,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[feeds]]
name = "bus"
kind = "nats"
staleness_ms = 60000

[feeds.nats]
urls = ["{nats}"]
stream = "TRADING_QUOTES"
subject_prefix = "tr.quote"
"#
        ),
    )
    .expect("write");
    (publish, gateway)
}

async fn send(socket: &mut TcpStream, lines: &[Value]) {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    socket.write_all(text.as_bytes()).await.expect("write");
}

fn quote(symbol: &str, bid: f64) -> Value {
    json!({"symbol": symbol, "bid": bid, "ask": bid + 0.02, "ts": tickgate_feeds::now_micros()})
}

/// Every frame up to the update or snapshot showing `symbol` at `bid`.
async fn frames_until(client: &mut Client, symbol: &str, bid: f64) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = client.next_json().await;
        let done = frame["quotes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|q| q["symbol"] == symbol && q["bid"] == bid);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

fn trading_frames(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "trading")
        .cloned()
        .collect()
}

fn trading(state: &str, symbols: &[&str]) -> Value {
    json!({"type": "trading", "state": state, "symbols": symbols})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_travels_through_the_bus_and_a_late_gateway_loads_it_from_the_stream() {
    let dir =
        TempDir(std::env::temp_dir().join(format!("tickgate-trading-nats-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(dir.0.join("store")).expect("temp dir");
    let (_nats, url) = nats_server(&dir.0.join("store"));
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (publish_config, gateway_config) =
        configs(&dir.0, &url, upstream.local_addr().expect("addr"));
    let (_publisher, _) = tickgate(&["publish"], &publish_config);
    let mut feed = tokio::time::timeout(WAIT, upstream.accept())
        .await
        .expect("the publisher connects")
        .expect("accept")
        .0;
    send(&mut feed, &[quote("AAPL", 100.0), quote("MSFT", 200.0)]).await;

    let (_gateway, listening) = tickgate(&[], &gateway_config);
    wait_ready(addr(&listening, "admin")).await;
    let mut client = Client::connect(addr(&listening, "client")).await;
    client
        .send_json(json!({"op": "subscribe", "symbols": ["AAPL", "MSFT"]}))
        .await;
    frames_until(&mut client, "AAPL", 100.0).await;

    send(
        &mut feed,
        &[
            json!({"symbol": "AAPL", "trading": "halted"}),
            quote("AAPL", 101.0),
        ],
    )
    .await;
    let seen = frames_until(&mut client, "AAPL", 101.0).await;
    assert_eq!(trading_frames(&seen), [trading("halted", &["AAPL"])]);

    // A gateway started now loads the halt with the stream's snapshot.
    let (_late_gateway, late_listening) = tickgate(&[], &gateway_config);
    wait_ready(addr(&late_listening, "admin")).await;
    let mut late = Client::connect(addr(&late_listening, "client")).await;
    late.send_json(json!({"op": "subscribe", "symbols": ["AAPL", "MSFT"]}))
        .await;
    assert_eq!(late.next_json().await["type"], "subscribed");
    let snapshot = late.next_json().await;
    assert_eq!(snapshot["type"], "snapshot");
    assert!(
        snapshot["quotes"]
            .as_array()
            .is_some_and(|q| q.iter().any(|q| q["bid"] == 101.0)),
        "{snapshot}"
    );
    assert_eq!(late.next_json().await, trading("halted", &["AAPL"]));

    // Resumed: both gateways' clients hear it, once.
    send(
        &mut feed,
        &[
            json!({"symbol": "AAPL", "trading": "trading"}),
            quote("AAPL", 102.0),
            quote("MSFT", 202.0),
        ],
    )
    .await;
    for client in [&mut client, &mut late] {
        let seen = frames_until(client, "MSFT", 202.0).await;
        assert_eq!(trading_frames(&seen), [trading("trading", &["AAPL"])]);
    }
}
