//! `tickgate loadtest` against an in-process gateway on port 0, and in
//! Socket.IO mode against the Node.js peer of benches/peers: small and
//! bounded (20 clients, about 2 s each), so it can run in the test command.

use std::process::Command;
use std::time::Duration;

use tickgate::config::Config;
use tickgate::{FeedSetup, Gateway};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const BIN: &str = env!("CARGO_BIN_EXE_tickgate");

fn config() -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("addr");
    config.server.admin_listen = "127.0.0.1:0".parse().expect("addr");
    config
}

async fn loadtest(args: Vec<String>) -> serde_json::Value {
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .arg("loadtest")
            .args(["--json", "--quiet"])
            .args(&args)
            .output()
            .expect("loadtest runs")
    })
    .await
    .expect("joined");
    assert!(
        output.status.success(),
        "loadtest failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_reports_quotes_from_the_simulator_without_errors() {
    let mut config = config();
    config.simulator.ticks_per_second = 2_000.0;
    let gateway = Gateway::start(config, FeedSetup::Configured)
        .await
        .expect("starts");
    let url = format!("ws://{}/ws", gateway.client_addr());
    let report = loadtest(
        [
            "--url",
            &url,
            "--clients",
            "20",
            "--symbols-per-client",
            "20",
            "--universe",
            "50",
            "--symbol-source",
            "simulator",
            "--duration",
            "1500ms",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert_eq!(report["connections"]["subscribed"], 20);
    assert_eq!(report["connections"]["failed"], 0);
    assert!(
        report["delivery"]["received"].as_u64() > Some(0),
        "{report}"
    );
    assert_eq!(report["errors"], serde_json::json!({}));
    assert_eq!(report["delivery"]["seq_regressions"], 0);
    assert!(report["latency_ms"]["p99"].as_f64() > Some(0.0));
    gateway.shutdown(Duration::from_secs(2)).await;
}

/// An in-process gateway fed only by the load tester's TCP feed, and the
/// report of one `loadtest_feeding` run against it with `extra` flags.
async fn fed_gateway_run(extra: &[&str]) -> serde_json::Value {
    let gateway = Gateway::start(config(), FeedSetup::External)
        .await
        .expect("starts");
    // A free port for the load tester's feed listener; the gateway's TCP feed
    // retries until the load tester listens there.
    let feed_addr = free_addr();
    let feed = tickgate_feeds::FeedSpec::parse(&format!("tcp://{feed_addr}")).expect("spec");
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    tickgate_feeds::spawn(&feed, gateway.feed_sender(), stop.clone(), &tracker).expect("feed");
    let url = format!("ws://{}/ws", gateway.client_addr());
    let report = loadtest_feeding(&url, feed_addr, extra).await;
    stop.cancel();
    gateway.shutdown(Duration::from_secs(2)).await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_as_the_tcp_feed_sees_every_latest_quote_delivered() {
    let report = fed_gateway_run(&[]).await;
    assert_eq!(report["connections"]["subscribed"], 20, "{report}");
    assert!(
        report["feed"]["ticks_published"].as_u64() > Some(100),
        "{report}"
    );
    assert_eq!(report["delivery"]["all_latest_delivered"], true, "{report}");
    assert!(report["delivery"]["ratio"].as_f64() > Some(0.5), "{report}");
    assert_eq!(report["errors"], serde_json::json!({}));
}

/// The same run in the binary encoding: the load tester asks for
/// `tickgate.v1.bin`, reads MessagePack frames, and still accounts for every
/// latest quote by seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_in_the_binary_encoding_sees_every_latest_quote_delivered() {
    let report = fed_gateway_run(&["--binary"]).await;
    assert_eq!(report["connections"]["subscribed"], 20, "{report}");
    assert!(
        report["delivery"]["received"].as_u64() > Some(100),
        "{report}"
    );
    assert_eq!(report["delivery"]["all_latest_delivered"], true, "{report}");
    assert_eq!(report["delivery"]["seq_regressions"], 0, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}));
}

/// Acknowledging every 4 messages: the gateway holds at most its window
/// unacknowledged, and every latest quote still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_acknowledging_what_it_reads_sees_every_latest_quote_delivered() {
    // Slow readers too: a 2 ms pause after each read of at most 4 KiB.
    let report = fed_gateway_run(&["--ack-every", "4", "--read-pause", "2ms"]).await;
    assert_eq!(report["connections"]["subscribed"], 20, "{report}");
    assert_eq!(report["delivery"]["all_latest_delivered"], true, "{report}");
    assert_eq!(report["delivery"]["seq_regressions"], 0, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}));
}

/// `node` and `npm` on PATH, with the peers' npm packages installed (from the
/// lock file, when missing); `None` only when Node.js or npm is absent.
fn node_peers_ready() -> Option<std::path::PathBuf> {
    let peers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers");
    let has = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has("node") || !has("npm") {
        eprintln!("SKIPPED: node or npm is not installed; the Socket.IO peer needs both");
        return None;
    }
    if !peers.join("node_modules/socket.io").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&peers)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci in benches/peers failed");
    }
    Some(peers)
}

/// A child process killed (by its own handle) when the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A 1.5 s run of 20 clients × 10 of 30 symbols against `url`, the load
/// tester being the server's 500 ticks/s TCP feed at `feed`; `extra` flags
/// come first.
async fn loadtest_feeding(
    url: &str,
    feed: std::net::SocketAddr,
    extra: &[&str],
) -> serde_json::Value {
    let feed = feed.to_string();
    let common = [
        "--url",
        url,
        "--clients",
        "20",
        "--symbols-per-client",
        "10",
        "--universe",
        "30",
        "--feed-listen",
        &feed,
        "--feed-rate",
        "500",
        "--duration",
        "1500ms",
    ];
    loadtest(
        extra
            .iter()
            .chain(&common)
            .map(|a| (*a).to_owned())
            .collect(),
    )
    .await
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_speaks_socket_io_to_the_node_peer_and_answers_its_pings() {
    let Some(peers) = node_peers_ready() else {
        return;
    };
    let (listen, feed) = (free_addr(), free_addr());
    // Pings every 200 ms, 300 ms to answer: a client that never sent `3`
    // would be dropped well within the run.
    let mut peer = Child(
        Command::new("node")
            .arg(peers.join("socketio-server.js"))
            .args([listen.to_string(), feed.to_string()])
            .env("SOCKETIO_PING_INTERVAL_MS", "200")
            .env("SOCKETIO_PING_TIMEOUT_MS", "300")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node starts"),
    );
    let stdout = peer.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    })
    .await
    .expect("joined")
    .expect("peer prints a line");
    assert!(line.contains("listening"), "peer said {line:?}");
    let url = format!("ws://{listen}/socket.io/?EIO=4&transport=websocket");
    let report = loadtest_feeding(&url, feed, &["--mode", "socketio"]).await;
    assert_eq!(report["connections"]["subscribed"], 20, "{report}");
    assert!(
        report["feed"]["ticks_published"].as_u64() > Some(100),
        "{report}"
    );
    assert_eq!(report["delivery"]["all_latest_delivered"], true, "{report}");
    assert_eq!(report["delivery"]["seq_gaps"], 0, "{report}");
    assert_eq!(report["delivery"]["unexpected_quotes"], 0, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    assert_eq!(report["closes_by_code"], serde_json::json!({}), "{report}");
}

#[test]
fn socketio_mode_refuses_a_url_without_the_engine_io_query() {
    let output = Command::new(BIN)
        .args([
            "loadtest",
            "--mode",
            "socketio",
            "--url",
            "ws://127.0.0.1:9/ws",
        ])
        .output()
        .expect("loadtest runs");
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("EIO=4"));
}
