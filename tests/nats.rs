//! Scale-out through NATS JetStream against a real `nats-server` (the Debian
//! package; `scripts/test.sh` installs it): a TCP upstream served by the
//! test → `tickgate publish` → JetStream → two gateway processes → real
//! WebSocket clients. Faults: nats-server killed and restarted on the same
//! port and store, the publisher killed and restarted. Everything binds
//! 127.0.0.1, every process is started here and ended by its PID.

// Waiting for a child process or a port from plain (not async) helpers.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Client, Nats, Tickgate, http_get};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_tickgate");
const SYMBOLS: [&str; 4] = ["AAPL", "MSFT", "BRK.B", "BTC-USD"];
const WAIT: Duration = Duration::from_secs(15);

/// A scratch directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tickgate-nats-{tag}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

fn publisher_config(dir: &Path, nats: &Nats, upstream: SocketAddr) -> PathBuf {
    write(
        dir,
        "publish.toml",
        &format!(
            r#"
[server]
admin_listen = "127.0.0.1:0"

[[feeds]]
name = "upstream"
kind = "tcp"
address = "{upstream}"
backoff_min_ms = 50
backoff_max_ms = 300
required = true

[publish]
storage = "file"
heartbeat_interval_ms = 200
publish_timeout_ms = 1000
backoff_min_ms = 50
backoff_max_ms = 300

[publish.nats]
urls = ["{url}"]
stream = "TEST_QUOTES"
subject_prefix = "t.quote"
"#,
            url = nats.url()
        ),
    )
}

fn gateway_config(dir: &Path, name: &str, nats: &Nats) -> PathBuf {
    write(
        dir,
        name,
        &format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[feeds]]
name = "bus"
kind = "nats"
required = true
staleness_ms = 1500
backoff_min_ms = 50
backoff_max_ms = 300

[feeds.nats]
urls = ["{url}"]
stream = "TEST_QUOTES"
subject_prefix = "t.quote"
"#,
            url = nats.url()
        ),
    )
}

/// The test's upstream: a TCP listener the publisher connects to; every
/// connection gets the lines sent through [`Upstream::send`].
struct Upstream {
    listener: TcpListener,
    socket: Option<TcpStream>,
}

impl Upstream {
    async fn bind() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
            socket: None,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("addr")
    }

    /// Sends one tick per symbol with prices derived from `round`,
    /// accepting the publisher's (re)connection when needed.
    async fn send_round(&mut self, round: u32) {
        self.send_round_of(&SYMBOLS, round).await;
    }

    /// [`Upstream::send_round`] for any list of symbols.
    async fn send_round_of(&mut self, symbols: &[impl AsRef<str>], round: u32) {
        let mut text = String::new();
        for (i, symbol) in symbols.iter().enumerate() {
            let bid = 100.0 + f64::from(round) + i as f64;
            text.push_str(
                &json!({"symbol": symbol.as_ref(), "bid": bid, "ask": bid + 0.5,
                "bid_size": 10, "ask_size": 20, "ts": tickgate_feeds::now_micros()})
                .to_string(),
            );
            text.push('\n');
        }
        for _ in 0..2 {
            if self.socket.is_none() {
                let (socket, _) = tokio::time::timeout(WAIT, self.listener.accept())
                    .await
                    .expect("the publisher connects to the upstream")
                    .expect("accept");
                self.socket = Some(socket);
            }
            let Some(socket) = self.socket.as_mut() else {
                continue;
            };
            if socket.write_all(text.as_bytes()).await.is_ok() {
                return;
            }
            self.socket = None;
        }
        panic!("cannot deliver round {round} to the publisher");
    }

    /// Forgets the current connection (the publisher was killed).
    fn drop_connection(&mut self) {
        self.socket = None;
    }
}

async fn wait_ready(admin: SocketAddr, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(admin, "/readyz").await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "{what} never ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A subscribed client and the latest quote it has seen per symbol.
struct Watcher {
    client: Client,
    latest: std::collections::HashMap<String, Value>,
    /// Status messages (feed went stale/down/live) seen so far.
    statuses: Vec<Value>,
    /// The gateway epoch its `subscribed` reply named.
    epoch: Value,
}

impl Watcher {
    async fn subscribe(addr: SocketAddr) -> Self {
        Self::subscribe_to(addr, &SYMBOLS).await
    }

    async fn subscribe_to(addr: SocketAddr, symbols: &[impl AsRef<str>]) -> Self {
        let symbols: Vec<&str> = symbols.iter().map(AsRef::as_ref).collect();
        let mut client = Client::connect(addr).await;
        client
            .send_json(json!({"op": "subscribe", "symbols": symbols, "id": 1}))
            .await;
        let epoch = client.next_of_type("subscribed").await["epoch"].clone();
        Self {
            epoch,
            client,
            latest: Default::default(),
            statuses: Vec::new(),
        }
    }

    /// Reads frames until `done` holds for the latest quotes; asserts that
    /// no symbol's seq ever goes backwards.
    async fn until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            let frame = tokio::time::timeout_at(deadline, self.client.next_json())
                .await
                .unwrap_or_else(|_| {
                    let mut latest: Vec<String> = self
                        .latest
                        .iter()
                        .map(|(symbol, quote)| {
                            format!("{symbol} bid {} seq {}", quote["bid"], quote["seq"])
                        })
                        .collect();
                    latest.sort();
                    latest.truncate(20);
                    panic!("{what}: not reached; latest (first 20 by symbol) {latest:?}")
                });
            match frame["type"].as_str() {
                Some("snapshot" | "update") => {
                    for quote in frame["quotes"].as_array().expect("quotes") {
                        let symbol = quote["symbol"].as_str().expect("symbol").to_owned();
                        let seq = quote["seq"].as_u64().expect("seq");
                        if let Some(previous) = self.latest.get(&symbol) {
                            let before = previous["seq"].as_u64().unwrap_or(0);
                            assert!(seq > before, "{symbol}: seq went from {before} to {seq}");
                        }
                        self.latest.insert(symbol, quote.clone());
                    }
                }
                Some("status") => self.statuses.push(frame),
                _ => {}
            }
        }
    }

    fn bid(&self, symbol: &str) -> Option<f64> {
        self.latest.get(symbol).and_then(|q| q["bid"].as_f64())
    }

    fn seq(&self, symbol: &str) -> u64 {
        self.latest
            .get(symbol)
            .and_then(|q| q["seq"].as_u64())
            .unwrap_or(0)
    }

    fn all_at_round(&self, round: u32) -> bool {
        self.all_of_at_round(&SYMBOLS, round)
    }

    fn all_of_at_round(&self, symbols: &[impl AsRef<str>], round: u32) -> bool {
        symbols
            .iter()
            .enumerate()
            .all(|(i, s)| self.bid(s.as_ref()) == Some(100.0 + f64::from(round) + i as f64))
    }
}

/// Quotes without the fields that legitimately differ between replicas
/// (none should: this compares everything).
fn same_quotes(a: &Watcher, b: &Watcher) {
    for symbol in SYMBOLS {
        assert_eq!(
            a.latest.get(symbol),
            b.latest.get(symbol),
            "{symbol}: two replicas disagree"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_snapshot_and_survive_nats_and_publisher_restarts() {
    let dir = TempDir::new("scenario");
    let store = dir.0.join("store");
    let mut nats = Nats::start(&store);
    let mut upstream = Upstream::bind().await;
    let publisher_toml = publisher_config(&dir.0, &nats, upstream.addr());
    let publisher = Tickgate::spawn(&["publish"], &publisher_toml);
    assert_eq!(publisher.listening["role"], "publish");

    // Round 1 reaches the stream before any gateway exists.
    upstream.send_round(1).await;
    wait_ready(publisher.addr("admin"), "publisher").await;

    let gateway_a = Tickgate::spawn(&[], &gateway_config(&dir.0, "a.toml", &nats));
    let gateway_b = Tickgate::spawn(&[], &gateway_config(&dir.0, "b.toml", &nats));
    wait_ready(gateway_a.addr("admin"), "gateway a").await;
    wait_ready(gateway_b.addr("admin"), "gateway b").await;

    // Ready means the full snapshot is loaded: a client's first snapshot
    // already holds every symbol, identical on both replicas.
    let mut a = Watcher::subscribe(gateway_a.addr("client")).await;
    let mut b = Watcher::subscribe(gateway_b.addr("client")).await;
    a.until("a: snapshot", |w| w.all_at_round(1)).await;
    b.until("b: snapshot", |w| w.all_at_round(1)).await;
    same_quotes(&a, &b);
    assert_eq!(
        a.latest["BRK.B"]["symbol"], "BRK.B",
        "dots survive escaping"
    );

    // Live updates arrive identically.
    for round in 2..=4 {
        upstream.send_round(round).await;
    }
    a.until("a: round 4", |w| w.all_at_round(4)).await;
    b.until("b: round 4", |w| w.all_at_round(4)).await;
    same_quotes(&a, &b);
    let seq_before_faults = a.seq("AAPL");
    assert!(seq_before_faults >= 4, "publisher seq: {seq_before_faults}");

    // A late gateway serves the full, current snapshot.
    let gateway_c = Tickgate::spawn(&[], &gateway_config(&dir.0, "c.toml", &nats));
    wait_ready(gateway_c.addr("admin"), "gateway c").await;
    let mut c = Watcher::subscribe(gateway_c.addr("client")).await;
    c.until("c: snapshot", |w| w.all_at_round(4)).await;
    same_quotes(&a, &c);

    // Resume works across processes, because seq comes from the publisher:
    // a client of gateway a that reconnects to gateway c with the seqs it
    // holds gets only what changed since (here one symbol it holds an older
    // seq of) and the resume flag.
    let stale = SYMBOLS[0];
    let held: serde_json::Map<String, Value> = SYMBOLS
        .iter()
        .map(|s| {
            let seq = a.seq(s) - u64::from(*s == stale);
            ((*s).to_owned(), json!(seq))
        })
        .collect();
    let mut resumed = Client::connect(gateway_c.addr("client")).await;
    resumed
        .send_json(
            json!({"op": "subscribe", "symbols": SYMBOLS, "resume": held,
            "epoch": a.epoch, "id": 2}),
        )
        .await;
    // Fed by one stream, every replica is in that stream's epoch.
    let epoch = resumed.next_of_type("subscribed").await["epoch"].clone();
    assert_eq!(epoch, json!("nats:TEST_QUOTES"));
    assert_eq!(epoch, a.epoch);
    let snapshot = resumed.next_of_type("snapshot").await;
    assert_eq!(snapshot["resumed"], true, "{snapshot}");
    assert_eq!(snapshot["unchanged"], SYMBOLS.len() - 1, "{snapshot}");
    assert_eq!(
        common::quotes(&snapshot),
        vec![(stale.to_owned(), a.seq(stale))],
        "only the changed symbol, at gateway a's seq"
    );
    gateway_c.kill();

    // NATS dies hard: gateways keep serving and stay ready, tell clients
    // the feed is down, and the publisher holds the latest quote per
    // symbol meanwhile.
    nats.kill();
    a.until("a: told the feed is down", |w| {
        w.statuses.iter().any(|s| s["state"] == "down")
    })
    .await;
    let (status, body) = http_get(gateway_a.addr("admin"), "/readyz").await;
    assert_eq!(
        status, 200,
        "a replica that was ready stays in its Service while NATS is away: {body}"
    );
    for round in 5..=7 {
        upstream.send_round(round).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    nats.restart();
    // Both converge on round 7 without seq going backwards (checked in `until`).
    a.until("a: round 7 after NATS restart", |w| w.all_at_round(7))
        .await;
    b.until("b: round 7 after NATS restart", |w| w.all_at_round(7))
        .await;
    same_quotes(&a, &b);
    wait_ready(gateway_a.addr("admin"), "gateway a after NATS restart").await;

    // The publisher crashes: clients are told the feed went stale; a new
    // publisher continues from the stream's seq, so its quotes are accepted.
    let seq_at_crash = a.seq("AAPL");
    publisher.kill();
    upstream.drop_connection();
    a.until("a: told the feed is stale", |w| {
        w.statuses.iter().any(|s| s["state"] == "stale")
    })
    .await;
    let publisher = Tickgate::spawn(&["publish"], &publisher_toml);
    upstream.send_round(8).await;
    wait_ready(publisher.addr("admin"), "restarted publisher").await;
    a.until("a: round 8 from the new publisher", |w| w.all_at_round(8))
        .await;
    b.until("b: round 8 from the new publisher", |w| w.all_at_round(8))
        .await;
    same_quotes(&a, &b);
    assert!(
        a.seq("AAPL") > seq_at_crash,
        "seq continued: {} after {seq_at_crash}",
        a.seq("AAPL")
    );
    assert!(
        a.statuses.iter().any(|s| s["state"] == "live"),
        "clients were told the feed recovered: {:?}",
        a.statuses
    );

    // A replica restarted under load comes back with the same view.
    gateway_b.kill();
    let gateway_b = Tickgate::spawn(&[], &gateway_config(&dir.0, "b2.toml", &nats));
    upstream.send_round(9).await;
    wait_ready(gateway_b.addr("admin"), "restarted gateway b").await;
    let mut b = Watcher::subscribe(gateway_b.addr("client")).await;
    a.until("a: round 9", |w| w.all_at_round(9)).await;
    b.until("b: round 9 after its restart", |w| w.all_at_round(9))
        .await;
    same_quotes(&a, &b);

    let (_, metrics) = http_get(publisher.addr("admin"), "/metrics").await;
    assert!(
        metrics.contains("tickgate_publish_quotes_total"),
        "{metrics}"
    );
    gateway_a.kill();
    gateway_b.kill();
    publisher.kill();
    nats.kill();
}

/// NATS hangs with publishes in flight, then is killed and restarted: the
/// publisher gives up on the unacknowledged batch after one publish timeout
/// (not one per quote in flight), says so on `/readyz`, and once NATS is back
/// every symbol's latest quote reaches clients. Before acknowledgements were
/// awaited together with a deadline each, this batch held the publisher for
/// one timeout per quote (here 200 s) with `/readyz` at 200 throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_nats_costs_the_publisher_one_timeout_not_one_per_quote_in_flight() {
    let dir = TempDir::new("hang");
    let mut nats = Nats::start(&dir.0.join("store"));
    let mut upstream = Upstream::bind().await;
    let publisher = Tickgate::spawn(
        &["publish"],
        &publisher_config(&dir.0, &nats, upstream.addr()),
    );
    let symbols: Vec<String> = (0..200).map(|i| format!("H{i:03}")).collect();
    upstream.send_round_of(&symbols, 1).await;
    wait_ready(publisher.addr("admin"), "publisher").await;
    let gateway = Tickgate::spawn(&[], &gateway_config(&dir.0, "g.toml", &nats));
    wait_ready(gateway.addr("admin"), "gateway").await;
    let mut watcher = Watcher::subscribe_to(gateway.addr("client"), &symbols).await;
    watcher
        .until("round 1", |w| w.all_of_at_round(&symbols, 1))
        .await;

    nats.hang();
    upstream.send_round_of(&symbols, 2).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(publisher.addr("admin"), "/readyz").await;
        if status == 503 && body.contains("not acknowledging") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the publisher never noticed that NATS stopped acknowledging: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    nats.kill();
    nats.restart();
    upstream.send_round_of(&symbols, 3).await;
    let back = Instant::now();
    watcher
        .until("every symbol current after NATS returned", |w| {
            w.all_of_at_round(&symbols, 3)
        })
        .await;
    eprintln!(
        "all {} symbols current {:?} after NATS returned",
        symbols.len(),
        back.elapsed()
    );
    wait_ready(publisher.addr("admin"), "publisher after NATS returned").await;
    gateway.kill();
    publisher.kill();
    nats.kill();
}

/// Two publishers with `publish.lease`: one publishes, the other stands by
/// (ready, not connected to the upstream, `tickgate_publish_active 0`). When
/// the active one is killed, the standby takes the lease once it runs out,
/// continues every symbol's seq from the stream, and clients keep receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_publisher_takes_over_when_the_active_one_dies() {
    let dir = TempDir::new("lease");
    let nats = Nats::start(&dir.0.join("store"));
    let mut upstream = Upstream::bind().await;
    let single =
        std::fs::read_to_string(publisher_config(&dir.0, &nats, upstream.addr())).expect("config");
    let leased = write(
        &dir.0,
        "publish-leased.toml",
        &single.replace(
            "[publish]\n",
            "[publish]\nlease = true\nlease_ttl_ms = 1000\n",
        ),
    );
    let first = Tickgate::spawn(&["publish"], &leased);
    upstream.send_round(1).await;
    wait_ready(first.addr("admin"), "the first publisher").await;
    let second = Tickgate::spawn(&["publish"], &leased);
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(second.addr("admin"), "/readyz").await;
        if status == 200 {
            assert!(body.contains("standby"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "the standby never ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, metrics) = http_get(second.addr("admin"), "/metrics").await;
    assert!(metrics.contains("tickgate_publish_active 0"), "{metrics}");
    let (_, metrics) = http_get(first.addr("admin"), "/metrics").await;
    assert!(metrics.contains("tickgate_publish_active 1"), "{metrics}");

    let gateway = Tickgate::spawn(&[], &gateway_config(&dir.0, "g.toml", &nats));
    wait_ready(gateway.addr("admin"), "gateway").await;
    let mut watcher = Watcher::subscribe(gateway.addr("client")).await;
    watcher.until("round 1", |w| w.all_at_round(1)).await;
    let seq_before = watcher.latest[SYMBOLS[0]]["seq"].as_u64().expect("seq");

    first.kill();
    upstream.drop_connection();
    // Accepted only once the standby is active: it starts its feeds then.
    upstream.send_round(2).await;
    watcher
        .until("round 2 through the standby", |w| w.all_at_round(2))
        .await;
    let seq_after = watcher.latest[SYMBOLS[0]]["seq"].as_u64().expect("seq");
    assert!(
        seq_after > seq_before,
        "seq continues: {seq_before} then {seq_after}"
    );
    let (_, metrics) = http_get(second.addr("admin"), "/metrics").await;
    assert!(metrics.contains("tickgate_publish_active 1"), "{metrics}");
    gateway.kill();
    second.kill();
}

#[test]
fn the_example_configs_pass_check_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (args, file) in [
        (
            vec!["publish", "--check-config"],
            "config/publish.example.toml",
        ),
        (vec!["--check-config"], "config/gateway-nats.example.toml"),
        (vec!["--check-config"], "config/publish.example.toml"),
    ] {
        let output = Command::new(BIN)
            .args(&args)
            .arg("--config")
            .arg(root.join(file))
            .output()
            .expect("tickgate runs");
        assert!(
            output.status.success(),
            "{args:?} {file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn a_bad_publish_section_names_its_keys() {
    let dir = TempDir::new("badconfig");
    let path = write(
        &dir.0,
        "bad.toml",
        "[publish]\nreplicas = 9\n[publish.nats]\nstream = \"a.b\"\nsubject_prefix = \"md.>\"\n",
    );
    let output = Command::new(BIN)
        .args(["publish", "--check-config", "--config"])
        .arg(&path)
        .output()
        .expect("tickgate runs");
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in [
        "publish.replicas",
        "publish.nats.stream",
        "publish.nats.subject_prefix",
    ] {
        assert!(stderr.contains(key), "{key} missing: {stderr}");
    }
}

/// The stream refuses the publisher's quotes (here: a maximum message size
/// that fits a heartbeat but no quote) while NATS itself stays up, so
/// heartbeats still arrive: they must say `live: false`, and gateways tell
/// clients `stale` rather than go on presenting old quotes as current. Once
/// the stream accepts quotes again the pending ones are acknowledged, and
/// clients get them and `live`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_say_not_live_while_the_stream_refuses_quotes() {
    let dir = TempDir::new("refused");
    let nats = Nats::start(&dir.0.join("store"));
    let mut upstream = Upstream::bind().await;
    let publisher = Tickgate::spawn(
        &["publish"],
        &publisher_config(&dir.0, &nats, upstream.addr()),
    );
    upstream.send_round(1).await;
    wait_ready(publisher.addr("admin"), "publisher").await;
    let gateway = Tickgate::spawn(&[], &gateway_config(&dir.0, "g.toml", &nats));
    wait_ready(gateway.addr("admin"), "gateway").await;
    let mut watcher = Watcher::subscribe(gateway.addr("client")).await;
    watcher.until("round 1", |w| w.all_at_round(1)).await;

    let set_max_message_size = async |bytes: i32| {
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let jetstream = async_nats::jetstream::new(client);
        let mut stream = jetstream
            .get_stream("TEST_QUOTES")
            .await
            .expect("the stream");
        let mut config = stream.info().await.expect("stream info").config.clone();
        config.max_message_size = bytes;
        jetstream
            .update_stream(config)
            .await
            .expect("update the stream");
    };
    // A heartbeat is about 40 bytes, a quote well over 100.
    set_max_message_size(80).await;
    let before = watcher.statuses.len();
    upstream.send_round(2).await;
    watcher
        .until("told stale while quotes are refused", |w| {
            w.statuses[before..].iter().any(|s| s["state"] == "stale")
        })
        .await;
    assert!(
        watcher.all_at_round(1),
        "no quote of round 2 got through the refusing stream"
    );
    let (status, body) = http_get(publisher.addr("admin"), "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not acknowledging"), "{body}");

    set_max_message_size(-1).await;
    watcher
        .until("round 2 once the stream accepts quotes", |w| {
            w.all_at_round(2) && w.statuses.last().is_some_and(|s| s["state"] == "live")
        })
        .await;
    wait_ready(publisher.addr("admin"), "publisher once acknowledged").await;
    gateway.kill();
    publisher.kill();
}

/// The lease bucket is kept in memory, so a NATS restart loses it. A
/// standby that had opened it before must open it again (creating it) to
/// take the lease, or no publisher is ever active again once the active one
/// dies. (The randomized fault checker found this: NATS killed, then the
/// active publisher killed; the standby retried its create on the lost
/// bucket forever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_after_a_nats_restart_lost_the_lease_bucket() {
    let dir = TempDir::new("lease-restart");
    let mut nats = Nats::start(&dir.0.join("store"));
    let mut upstream = Upstream::bind().await;
    let single =
        std::fs::read_to_string(publisher_config(&dir.0, &nats, upstream.addr())).expect("config");
    let leased = write(
        &dir.0,
        "publish-leased.toml",
        &single.replace(
            "[publish]\n",
            "[publish]\nlease = true\nlease_ttl_ms = 1000\n",
        ),
    );
    let first = Tickgate::spawn(&["publish"], &leased);
    upstream.send_round(1).await;
    wait_ready(first.addr("admin"), "the first publisher").await;
    let second = Tickgate::spawn(&["publish"], &leased);
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(second.addr("admin"), "/readyz").await;
        if status == 200 && body.contains("standby") {
            break;
        }
        assert!(Instant::now() < deadline, "the standby never ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gateway = Tickgate::spawn(&[], &gateway_config(&dir.0, "g.toml", &nats));
    wait_ready(gateway.addr("admin"), "gateway").await;
    let mut watcher = Watcher::subscribe(gateway.addr("client")).await;
    watcher.until("round 1", |w| w.all_at_round(1)).await;

    nats.kill();
    nats.restart();
    first.kill();
    upstream.drop_connection();
    // Accepted only once the second publisher holds the lease.
    upstream.send_round(2).await;
    watcher
        .until("round 2 through the second publisher", |w| {
            w.all_at_round(2)
        })
        .await;
    let (_, metrics) = http_get(second.addr("admin"), "/metrics").await;
    assert!(metrics.contains("tickgate_publish_active 1"), "{metrics}");
    gateway.kill();
    second.kill();
    nats.kill();
}

/// A gateway that starts while quotes are being published loads the stream
/// and reports `live` (and so becomes ready). Its load used to end only when
/// nats-server's count of pending messages reached zero; with messages
/// arriving during the load, nats-server 2.9 can go on counting one too
/// many for good, and the gateway then served quotes while telling clients
/// `down`, never `live`, and never became ready. (The randomized fault
/// checker found this: a gateway restarted while values were sent.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_while_quotes_flow_finishes_its_load() {
    let dir = TempDir::new("busyload");
    let nats = Nats::start(&dir.0.join("store"));
    let mut upstream = Upstream::bind().await;
    let publisher = Tickgate::spawn(
        &["publish"],
        &publisher_config(&dir.0, &nats, upstream.addr()),
    );
    upstream.send_round(1).await;
    wait_ready(publisher.addr("admin"), "publisher").await;
    for attempt in 0..5 {
        let gateway = Tickgate::spawn(&[], &gateway_config(&dir.0, "g.toml", &nats));
        // Quotes flow while the gateway opens its consumer and loads.
        let first = 2 + attempt * 100;
        for round in first..first + 100 {
            upstream.send_round(round).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        wait_ready(gateway.addr("admin"), "a gateway started while quotes flow").await;
        let mut watcher = Watcher::subscribe(gateway.addr("client")).await;
        watcher
            .until("the last round", |w| w.all_at_round(first + 99))
            .await;
        assert!(
            watcher.statuses.iter().all(|s| s["state"] != "down"),
            "a gateway that is ready and current does not say down: {:?}",
            watcher.statuses
        );
        gateway.kill();
    }
    publisher.kill();
}
