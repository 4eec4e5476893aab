//! The randomized fault checker (docs/faults.md), in two scenarios.
//!
//! Direct: the real gateway binary with two TCP feeds this test serves (a
//! primary and its backup) and three WebSocket clients that record every
//! frame. A seed draws a schedule of faults — feed drop, feed silence past
//! `staleness_ms`, garbage input (on the feed and from a hostile fourth
//! client), failover to the backup, gateway restart with client resume,
//! client reconnect with resume, client stall.
//!
//! NATS: the same clients on a gateway fed through a real nats-server by
//! two `tickgate publish` processes sharing a lease (one active, one
//! standby); the test serves their upstream. Faults: nats-server killed and
//! restarted, hung (SIGSTOP) then resumed or killed and restarted, the
//! active publisher killed (the standby takes over; the killed one comes
//! back as standby), upstream silence and garbage, and the client and
//! gateway faults above. A publisher that exits by itself (it lost its
//! lease) is restarted, as a supervisor would.
//!
//! Then the run heals, sends final values, and the history checker
//! (tests/checker/history.rs) judges every client's history. Every wait is
//! for an event, bounded by [`WAIT`].
//!
//! A failure prints the seed and the schedule; `TICKGATE_FAULT_SEED=<n>`
//! reruns that one seed, `TICKGATE_FAULT_SEEDS=<from>..<to>` a range
//! (scripts/fault-soak.sh), in whichever scenario's test is selected.

// Client recorders run as tasks on the test's TaskTracker; the gateway is a
// child process waited for from plain code.
#![allow(clippy::disallowed_methods)]

mod common;
#[path = "checker/history.rs"]
mod history;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Nats, Tickgate, metric_value};
use futures_util::{SinkExt, StreamExt};
use history::{Bounds, Event, History, Outage, Quiet, Truth};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::task::TaskTracker;

const SYMBOLS: [&str; 3] = ["AAA", "BBB", "CCC"];
const CLIENTS: usize = 3;
/// Client 0 never stalls: the harness watches it to know a fault took effect.
const OBSERVER: usize = 0;
const STALENESS: Duration = Duration::from_millis(1000);
const FAULTS_PER_RUN: usize = 6;
/// Seeds of the normal test run, chosen to cover every fault between them:
/// seed 1 catches a resume that ignores the epoch, seeds 5 and 6 a reconnect
/// never announced `live` (checked against a deliberately broken gateway);
/// seed 5 also sends garbage.
const CI_SEEDS: [u64; 4] = [1, 2, 5, 6];
/// Seeds of the NATS scenario in the normal test run: between them every
/// fault of that scenario (NATS kill, hang then resume, hang then kill,
/// publisher kill, upstream silence, garbage, gateway restart, client
/// reconnect and stall). Seed 10 once caught a standby that could not take
/// the lease after a NATS restart; their gateway restarts reload the stream
/// while values flow, where seed 5 caught a load that never ended.
const CI_NATS_SEEDS: [u64; 3] = [3, 4, 10];
/// The NATS scenario's stream and subjects.
const STREAM: &str = "FAULTS";
const SUBJECT_PREFIX: &str = "f.quote";
/// The publishers' lease: a killed active one is replaced within this
/// (plus one retry, a third of it).
const LEASE_TTL: Duration = Duration::from_millis(1000);
/// Resends of the current values after a publisher died with them unsent,
/// per wait: a bound on a publisher that keeps dying.
const MAX_RESENDS: u32 = 5;
/// Bound on waiting for any one event; only a broken gateway reaches it.
const WAIT: Duration = Duration::from_secs(20);
const BOUNDS: Bounds = Bounds {
    converge: Duration::from_secs(10),
    live: Duration::from_secs(5),
    status: Duration::from_secs(5),
};

/// Which way quotes reach the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// Two TCP feeds served by the test.
    Direct,
    /// The test's upstream → two leased `tickgate publish` → nats-server.
    Nats,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    FeedDrop,
    FeedSilence,
    Garbage,
    Failover,
    /// Restart, then send this many values before the clients resume, so
    /// the new process's seqs sometimes equal the ones clients hold.
    GatewayRestart(u64),
    ClientReconnect(usize),
    ClientStall(usize),
    /// kill -9 nats-server, then start it again on the same port and store.
    NatsKill,
    /// SIGSTOP nats-server until the clients are told; then SIGCONT, or
    /// (`then_kill`) kill -9 and start it again.
    NatsHang {
        then_kill: bool,
    },
    /// kill -9 the publisher holding the lease; the standby takes over, and
    /// the killed one is started again (as standby) once values flow.
    PublisherKill,
}

fn schedule(scenario: Scenario, seed: u64) -> Vec<Fault> {
    let mut rng = SmallRng::seed_from_u64(seed);
    if scenario == Scenario::Nats {
        return (0..FAULTS_PER_RUN)
            .map(|_| match rng.random_range(0..8) {
                0 => Fault::NatsKill,
                1 => Fault::NatsHang {
                    then_kill: rng.random_bool(0.5),
                },
                2 => Fault::PublisherKill,
                3 => Fault::FeedSilence,
                4 => Fault::Garbage,
                5 => Fault::GatewayRestart(rng.random_range(1..=4)),
                6 => Fault::ClientReconnect(rng.random_range(0..CLIENTS)),
                _ => Fault::ClientStall(rng.random_range(1..CLIENTS)),
            })
            .collect();
    }
    (0..FAULTS_PER_RUN)
        .map(|_| match rng.random_range(0..7) {
            0 => Fault::FeedDrop,
            1 => Fault::FeedSilence,
            2 => Fault::Garbage,
            3 => Fault::Failover,
            4 => Fault::GatewayRestart(rng.random_range(1..=4)),
            5 => Fault::ClientReconnect(rng.random_range(0..CLIENTS)),
            _ => Fault::ClientStall(rng.random_range(1..CLIENTS)),
        })
        .collect()
}

fn seeds(ci_seeds: &[u64]) -> Vec<u64> {
    if let Ok(seed) = std::env::var("TICKGATE_FAULT_SEED") {
        return vec![
            seed.trim()
                .parse()
                .expect("TICKGATE_FAULT_SEED is a number"),
        ];
    }
    if let Ok(range) = std::env::var("TICKGATE_FAULT_SEEDS") {
        let (from, to) = range
            .split_once("..")
            .expect("TICKGATE_FAULT_SEEDS is <from>..<to>");
        let from: u64 = from.trim().parse().expect("a number");
        let to: u64 = to.trim().parse().expect("a number");
        return (from..to).collect();
    }
    ci_seeds.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_fault_schedules_keep_every_client_fresh_and_convergent() {
    run_seeds(Scenario::Direct, &CI_SEEDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_nats_fault_schedules_keep_every_client_fresh_and_convergent() {
    run_seeds(Scenario::Nats, &CI_NATS_SEEDS).await;
}

async fn run_seeds(scenario: Scenario, ci_seeds: &[u64]) {
    let mut failed = Vec::new();
    let runs = TaskTracker::new();
    for seed in seeds(ci_seeds) {
        let faults = schedule(scenario, seed);
        // One run per task, so a seed that panics (an event that never
        // came) is reported and the next seed still runs.
        let run = runs.spawn({
            let faults = faults.clone();
            async move { run(scenario, seed, &faults).await }
        });
        let Ok((violations, summary)) = run.await else {
            println!("seed {seed}: FAILED {faults:?} (panicked, see above)");
            failed.push(seed);
            continue;
        };
        if violations.is_empty() {
            println!("seed {seed}: ok {faults:?} ({summary})");
        } else {
            println!("seed {seed}: FAILED {faults:?}");
            for violation in &violations {
                println!("  {violation}");
            }
            failed.push(seed);
        }
    }
    assert!(
        failed.is_empty(),
        "failing seeds {failed:?}; rerun one with TICKGATE_FAULT_SEED=<seed>"
    );
}

/// Prints the seed and schedule if the run panics before the checker does.
struct Reproduce(Scenario, u64, Vec<Fault>);

impl Drop for Reproduce {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "fault run failed: {:?} scenario, TICKGATE_FAULT_SEED={} schedule {:?}",
                self.0, self.1, self.2
            );
        }
    }
}

/// Runs one schedule; returns what the checker found and a one-line
/// summary of what the clients recorded.
async fn run(scenario: Scenario, seed: u64, faults: &[Fault]) -> (Vec<history::Violation>, String) {
    let _reproduce = Reproduce(scenario, seed, faults.to_vec());
    let mut harness = Harness::start(scenario, seed).await;
    harness.send_values().await;
    harness.observer_sees_values().await;
    for &fault in faults {
        harness.inject(fault).await;
        harness.send_values().await;
        harness.observer_sees_values().await;
    }
    // Heal: nobody stalled, final values sent, every client shown them.
    for client in 0..CLIENTS {
        harness.set_stalled(client, false);
    }
    harness.send_values().await;
    let everyone = (0..CLIENTS).collect::<Vec<_>>();
    harness
        .wait_values("every client shows the last values", &everyone)
        .await;
    // After the wait: a resend (a publisher died with the values unsent)
    // moves the time the last values were sent.
    harness.truth.last_sent_at = harness.last_send_at;
    harness.settle().await;
    harness.truth.last_values = SYMBOLS
        .iter()
        .map(|s| ((*s).to_owned(), harness.value as f64))
        .collect();
    harness.stop().await
}

/// A feed this test serves: the gateway connects out to `listener`.
struct FeedSide {
    listener: TcpListener,
    socket: Option<TcpStream>,
}

impl FeedSide {
    async fn accept(&mut self) {
        let (socket, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the gateway connects to its feed")
            .expect("accept");
        self.socket = Some(socket);
    }

    /// Whether the connection is still open: the peer (a publisher) never
    /// writes, so a read that would block means open, end of stream closed.
    fn open(&self) -> bool {
        let Some(socket) = &self.socket else {
            return false;
        };
        let mut byte = [0u8; 64];
        match socket.try_read(&mut byte) {
            Ok(read) => read > 0,
            Err(error) => error.kind() == std::io::ErrorKind::WouldBlock,
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        if let Some(socket) = &mut self.socket {
            if socket.write_all(bytes).await.is_err() {
                self.socket = None;
            }
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Mode {
    stalled: bool,
    reconnects: u64,
    stop: bool,
}

/// The NATS scenario's processes besides the gateway.
struct NatsSide {
    nats: Nats,
    publisher_config: PathBuf,
    /// `None` while killed on purpose (not restarted by [`Harness::supervise`]).
    publishers: [Option<Tickgate>; 2],
    /// Publishers found exited by themselves (lease lost): their unsent
    /// values are lost, so the harness resends the current ones.
    deaths: u64,
}

struct Harness {
    seed: u64,
    start: Instant,
    dir: PathBuf,
    gateway_config: PathBuf,
    gateway: Tickgate,
    /// Direct: the gateway's primary feed. NATS: the publishers' upstream
    /// (the active publisher connects to it).
    primary: FeedSide,
    /// Direct only: the primary's backup.
    backup: FeedSide,
    nats: Option<NatsSide>,
    /// `NatsSide::deaths` when the current values were last sent.
    sent_deaths: u64,
    /// The feeds' value counter: every send gives every symbol the next
    /// value, so a value's size is its place in the feed's order.
    value: u64,
    last_send_at: Duration,
    truth: Truth,
    histories: Vec<Arc<Mutex<History>>>,
    modes: Vec<watch::Sender<Mode>>,
    address: watch::Sender<SocketAddr>,
    tasks: TaskTracker,
}

impl Harness {
    async fn start(scenario: Scenario, seed: u64) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tickgate-faults-{scenario:?}-{}-{seed}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let primary = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let backup = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let feed = |name: &str, listener: &TcpListener, extra: &str| {
            format!(
                "[[feeds]]\nname = \"{name}\"\nkind = \"tcp\"\naddress = \"{}\"\nstaleness_ms = {}\nbackoff_min_ms = 50\nbackoff_max_ms = 200\nmax_message_bytes = 4096\n{extra}\n",
                listener.local_addr().expect("addr"),
                STALENESS.as_millis()
            )
        };
        let mut primary = FeedSide {
            listener: primary,
            socket: None,
        };
        let mut nats = None;
        let gateway_config = dir.join("gateway.toml");
        match scenario {
            Scenario::Direct => {
                let config = format!(
                    "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n{}\n{}",
                    feed("main", &primary.listener, ""),
                    feed("spare", &backup, "backup_for = \"main\"")
                );
                std::fs::write(&gateway_config, config).expect("write config");
            }
            Scenario::Nats => {
                let server = Nats::start(&dir.join("store"));
                let bus = format!(
                    "urls = [\"{}\"]\nstream = \"{STREAM}\"\nsubject_prefix = \"{SUBJECT_PREFIX}\"\n",
                    server.url()
                );
                let publisher = format!(
                    "[server]\nadmin_listen = \"127.0.0.1:0\"\n\n{}required = true\n\n[publish]\nstorage = \"file\"\nheartbeat_interval_ms = 200\npublish_timeout_ms = 1000\nbackoff_min_ms = 50\nbackoff_max_ms = 300\nlease = true\nlease_ttl_ms = {}\n\n[publish.nats]\n{bus}",
                    feed("upstream", &primary.listener, ""),
                    LEASE_TTL.as_millis()
                );
                let publisher_config = dir.join("publish.toml");
                std::fs::write(&publisher_config, publisher).expect("write config");
                let config = format!(
                    "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n[[feeds]]\nname = \"bus\"\nkind = \"nats\"\nstaleness_ms = {}\nbackoff_min_ms = 50\nbackoff_max_ms = 200\n\n[feeds.nats]\n{bus}",
                    STALENESS.as_millis()
                );
                std::fs::write(&gateway_config, config).expect("write config");
                // The first publisher takes the lease (it connects to the
                // upstream only once active); the second stands by.
                let first = Tickgate::spawn(&["publish"], &publisher_config);
                primary.accept().await;
                let second = Tickgate::spawn(&["publish"], &publisher_config);
                nats = Some(NatsSide {
                    nats: server,
                    publisher_config,
                    publishers: [Some(first), Some(second)],
                    deaths: 0,
                });
            }
        }
        let gateway = Tickgate::spawn(&[], &gateway_config);
        let (address, _) = watch::channel(gateway.addr("client"));
        let mut harness = Self {
            seed,
            start: Instant::now(),
            dir,
            gateway_config,
            gateway,
            primary,
            backup: FeedSide {
                listener: backup,
                socket: None,
            },
            nats,
            sent_deaths: 0,
            value: 0,
            last_send_at: Duration::ZERO,
            truth: Truth::default(),
            histories: Vec::new(),
            modes: Vec::new(),
            address,
            tasks: TaskTracker::new(),
        };
        if harness.nats.is_none() {
            harness.primary.accept().await;
            harness.backup.accept().await;
        }
        for _ in 0..CLIENTS {
            let history = Arc::new(Mutex::new(History::default()));
            let (mode, mode_rx) = watch::channel(Mode::default());
            harness.tasks.spawn(record(
                harness.start,
                harness.address.subscribe(),
                mode_rx,
                Arc::clone(&history),
            ));
            harness.histories.push(history);
            harness.modes.push(mode);
        }
        harness
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The next value of every symbol, to both feeds.
    async fn send_values(&mut self) {
        self.value += 1;
        self.send_current().await;
    }

    /// The current value of every symbol, to both feeds (NATS: to the
    /// active publisher, waiting for it to connect when it changed).
    async fn send_current(&mut self) {
        let mut lines = String::new();
        for symbol in SYMBOLS {
            lines.push_str(&feed_line(symbol, self.value as f64));
        }
        self.upstream_connected().await;
        self.last_send_at = self.now();
        self.sent_deaths = self.nats.as_ref().map_or(0, |n| n.deaths);
        self.primary.write(lines.as_bytes()).await;
        self.backup.write(lines.as_bytes()).await;
    }

    /// NATS: restarts a publisher that exited by itself, as a supervisor
    /// would (it lost its lease and comes back as standby).
    fn supervise(&mut self) {
        let Some(side) = &mut self.nats else {
            return;
        };
        for slot in &mut side.publishers {
            let Some(publisher) = slot else {
                continue;
            };
            if publisher.exited() {
                side.deaths += 1;
                *slot = Some(Tickgate::spawn(&["publish"], &side.publisher_config));
            }
        }
    }

    /// NATS: the active publisher's upstream connection is open; accepts
    /// the next one when it is not (the active publisher changed).
    async fn upstream_connected(&mut self) {
        if self.nats.is_none() {
            return;
        }
        let give_up = Instant::now() + WAIT;
        loop {
            self.supervise();
            if self.primary.open() {
                return;
            }
            self.primary.socket = None;
            let accepted =
                tokio::time::timeout(Duration::from_millis(200), self.primary.listener.accept())
                    .await;
            if let Ok(Ok((socket, _))) = accepted {
                self.primary.socket = Some(socket);
            }
            assert!(
                Instant::now() < give_up,
                "seed {}: no active publisher connected to the upstream within {WAIT:?}",
                self.seed
            );
        }
    }

    async fn observer_sees_values(&mut self) {
        self.wait_values("the observer shows the latest values", &[OBSERVER])
            .await;
    }

    /// Waits until every client in `clients` shows the current values.
    /// NATS: a publisher that died by itself since they were sent may
    /// have taken them along, unpublished; then they are sent again (the
    /// same values, as an upstream repeats itself after a reconnect).
    async fn wait_values(&mut self, what: &str, clients: &[usize]) {
        let value = self.value as f64;
        let mut give_up = Instant::now() + WAIT;
        let mut resends = 0;
        loop {
            let done = clients
                .iter()
                .all(|&c| shows_value(&self.histories[c].lock().expect("history lock"), value));
            if done {
                return;
            }
            if Instant::now() >= give_up {
                let behind: Vec<String> = clients
                    .iter()
                    .filter(|&&c| {
                        !shows_value(&self.histories[c].lock().expect("history lock"), value)
                    })
                    .map(|&c| format!("client {c}:\n{}", self.last_frames(c)))
                    .collect();
                panic!(
                    "seed {}: {what}: not the case after {WAIT:?} (value {value}, {resends} resends, {} publisher deaths); behind:\n{}",
                    self.seed,
                    self.nats.as_ref().map_or(0, |n| n.deaths),
                    behind.join("\n")
                );
            }
            self.supervise();
            let deaths = self.nats.as_ref().map_or(0, |n| n.deaths);
            if deaths != self.sent_deaths && resends < MAX_RESENDS {
                resends += 1;
                self.send_current().await;
                give_up = Instant::now() + WAIT;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn observer_sees_status(&self, state: &str, since: Duration) {
        self.wait_for(&format!("the observer is told {state}"), &[OBSERVER], |h| {
            h.events.iter().any(|e| match e {
                Event::Received { at, frame } => {
                    *at >= since && frame["type"] == "status" && frame["state"] == state
                }
                Event::Sent { .. } => false,
            })
        })
        .await;
    }

    /// Waits until the observer believes every symbol is not `live`: told
    /// one of `states` (since `since`, or before and not told `live`
    /// since: a restarted NATS-fed gateway says `down` to a resuming
    /// client until its reload is complete, and a fault meanwhile changes
    /// nothing it has to say).
    async fn observer_believes_any(&self, states: &[&str], since: Duration) {
        let end = Duration::from_secs(3600);
        self.wait_for(
            &format!("the observer believes {states:?}"),
            &[OBSERVER],
            |h| {
                let told = h.events.iter().any(|e| match e {
                    Event::Received { at, frame } => {
                        *at >= since
                            && frame["type"] == "status"
                            && states.iter().any(|s| frame["state"] == *s)
                    }
                    Event::Sent { .. } => false,
                });
                told || SYMBOLS
                    .iter()
                    .all(|s| states.contains(&history::belief(h, s, end).as_str()))
            },
        )
        .await;
    }

    /// Waits until `condition` holds for every client in `clients`.
    async fn wait_for(&self, what: &str, clients: &[usize], condition: impl Fn(&History) -> bool) {
        let give_up = Instant::now() + WAIT;
        loop {
            let done = clients
                .iter()
                .all(|&c| condition(&self.histories[c].lock().expect("history lock")));
            if done {
                return;
            }
            assert!(
                Instant::now() < give_up,
                "seed {}: {what}: not the case after {WAIT:?}; the observer's last frames: {}",
                self.seed,
                self.last_frames(OBSERVER)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Keeps recording until every client believes every symbol `live`,
    /// or until the last `live` deadline the checker judges has passed
    /// (every outage and blind window ended before now): a history cut
    /// short would blame a `live` that was on its way. A NATS-fed gateway
    /// that was restarted, for one, serves its reloaded quotes (and says
    /// `down` to a resuming client) before it reports the load complete.
    async fn settle(&self) {
        let until = Instant::now() + BOUNDS.live + Duration::from_millis(100);
        let end = Duration::from_secs(3600);
        while Instant::now() < until {
            let live = self.histories.iter().all(|h| {
                let h = h.lock().expect("history lock");
                SYMBOLS
                    .iter()
                    .all(|s| history::belief(&h, s, end) == "live")
            });
            if live {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The last few frames a client received, to tell why a wait failed.
    fn last_frames(&self, client: usize) -> String {
        let history = self.histories[client].lock().expect("history lock");
        let mut frames: Vec<String> = history
            .events
            .iter()
            .rev()
            .take(8)
            .map(|e| match e {
                Event::Received { at, frame } => format!("{at:?} {frame}"),
                Event::Sent { at, frame } => format!("{at:?} sent {frame}"),
            })
            .collect();
        frames.reverse();
        frames.join("\n")
    }

    fn set_stalled(&self, client: usize, stalled: bool) {
        self.modes[client].send_modify(|m| m.stalled = stalled);
    }

    fn outage(&mut self, from: Duration, window: Duration) {
        self.outage_until(from, window, self.now());
    }

    fn outage_until(&mut self, from: Duration, window: Duration, to: Duration) {
        self.truth.outages.push(Outage {
            symbols: SYMBOLS.iter().map(|s| (*s).to_owned()).collect(),
            from,
            to,
            window,
        });
    }

    async fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::FeedDrop => {
                let from = self.now();
                self.primary.socket = None;
                self.backup.socket = None;
                self.observer_sees_status("down", from).await;
                self.primary.accept().await;
                self.backup.accept().await;
                self.outage(from, Duration::ZERO);
                // the harness sends next, right after `to`
            }
            Fault::FeedSilence => {
                let from = self.last_send_at;
                self.observer_sees_status("stale", from).await;
                self.outage(from, STALENESS);
                self.send_values().await;
                self.observer_sees_status("live", from).await;
            }
            Fault::Garbage => {
                let oversize = format!("{{\"symbol\":\"AAA\",\"bid\":{}}}\n", "9".repeat(5000));
                let garbage: [&[u8]; 6] = [
                    b"{not json\n",
                    b"\xff\xfe\x00\x01binary\n",
                    b"[1,2,3]\n",
                    b"{\"symbol\":\"\",\"bid\":1}\n",
                    b"{\"symbol\":\"AAA\",\"bid\":\"high\"}\n",
                    oversize.as_bytes(),
                ];
                for bytes in garbage {
                    self.primary.write(bytes).await;
                }
                let addr = *self.address.borrow();
                hostile_client(addr).await;
            }
            Fault::Failover => {
                let from = self.now();
                self.primary.socket = None;
                self.observer_sees_status("down", from).await;
                self.outage(from, Duration::ZERO);
                self.send_values().await;
                self.observer_sees_values().await;
                self.primary.accept().await;
            }
            Fault::GatewayRestart(values) => {
                self.gateway.stop();
                self.gateway = Tickgate::spawn(&[], &self.gateway_config);
                let client_addr = self.gateway.addr("client");
                if self.nats.is_none() {
                    self.primary.socket = None;
                    self.backup.socket = None;
                    self.primary.accept().await;
                    self.backup.accept().await;
                }
                for _ in 0..values {
                    self.send_values().await;
                }
                probe(client_addr, self.value as f64).await;
                let from = self.now();
                self.address.send_replace(client_addr);
                self.wait_resumed(from, &(0..CLIENTS).collect::<Vec<_>>())
                    .await;
            }
            Fault::ClientReconnect(client) => {
                let from = self.now();
                self.modes[client].send_modify(|m| m.reconnects += 1);
                self.wait_resumed(from, &[client]).await;
            }
            Fault::ClientStall(client) => {
                self.set_stalled(client, true);
                for _ in 0..50 {
                    self.send_values().await;
                }
                self.observer_sees_values().await;
                self.set_stalled(client, false);
            }
            Fault::NatsKill => {
                let from = self.now();
                self.nats_side().nats.kill();
                self.observer_believes_any(&["down"], from).await;
                self.nats_side().nats.restart();
                self.outage(from, Duration::ZERO);
            }
            Fault::NatsHang { then_kill } => {
                let from = self.now();
                self.nats_side().nats.hang();
                // Heartbeats stop: `stale` after `staleness_ms`, or `down`
                // if the gateway's client notices first.
                self.observer_believes_any(&["stale", "down"], from).await;
                let side = self.nats_side();
                if then_kill {
                    side.nats.kill();
                    side.nats.restart();
                } else {
                    side.nats.resume();
                }
                self.outage(from, STALENESS);
            }
            Fault::PublisherKill => {
                let active = self.active_publisher().await;
                let from = self.now();
                if let Some(mut publisher) = self.nats_side().publishers[active].take() {
                    publisher.stop();
                }
                self.primary.socket = None;
                // The standby takes the lease once it runs out, connects to
                // the upstream, and the values flow through it.
                self.send_values().await;
                self.observer_sees_values().await;
                self.outage_until(from, STALENESS, self.last_send_at);
                let side = self.nats_side();
                side.publishers[active] =
                    Some(Tickgate::spawn(&["publish"], &side.publisher_config));
            }
        }
    }

    fn nats_side(&mut self) -> &mut NatsSide {
        self.nats
            .as_mut()
            .expect("a NATS fault in the NATS scenario")
    }

    /// The publisher holding the lease: the one (and only one) whose
    /// `tickgate_publish_active` is 1.
    async fn active_publisher(&mut self) -> usize {
        let give_up = Instant::now() + WAIT;
        loop {
            self.supervise();
            let mut active = Vec::new();
            for (index, publisher) in self.nats_side().publishers.iter().enumerate() {
                let Some(publisher) = publisher else {
                    continue;
                };
                let admin = publisher.addr("admin");
                // In a task: a publisher exiting meanwhile fails the request,
                // not the run.
                let value =
                    tokio::spawn(
                        async move { metric_value(admin, "tickgate_publish_active").await },
                    )
                    .await;
                if value.is_ok_and(|v| v == 1.0) {
                    active.push(index);
                }
            }
            if let [index] = active[..] {
                return index;
            }
            assert!(
                Instant::now() < give_up,
                "seed {}: not exactly one active publisher after {WAIT:?}: {active:?}",
                self.seed
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The feeds are quiet and the gateway holds `self.value` (the observer
    /// or a probe has seen it): a resume now has a known right answer.
    async fn wait_resumed(&mut self, from: Duration, clients: &[usize]) {
        self.wait_for("the resume is answered", clients, |h| {
            h.events.iter().any(|e| match e {
                Event::Received { at, frame } => *at >= from && frame["type"] == "snapshot",
                Event::Sent { .. } => false,
            })
        })
        .await;
        self.truth.quiet.push(Quiet {
            from,
            to: self.now(),
            values: SYMBOLS
                .iter()
                .map(|s| ((*s).to_owned(), self.value as f64))
                .collect(),
        });
    }

    async fn stop(self) -> (Vec<history::Violation>, String) {
        for mode in &self.modes {
            mode.send_modify(|m| m.stop = true);
        }
        self.tasks.close();
        let _ = tokio::time::timeout(WAIT, self.tasks.wait()).await;
        let histories: Vec<History> = self
            .histories
            .iter()
            .map(|h| h.lock().expect("history lock").clone())
            .collect();
        let summary = histories
            .iter()
            .map(|h| {
                let statuses = h
                    .events
                    .iter()
                    .filter(
                        |e| matches!(e, Event::Received { frame, .. } if frame["type"] == "status"),
                    )
                    .count();
                format!("{} frames, {statuses} statuses", h.events.len())
            })
            .collect::<Vec<_>>()
            .join("; ");
        let violations = history::check(&histories, &self.truth, BOUNDS);
        let mut shown = Vec::new();
        for violation in &violations {
            if !shown.contains(&violation.client) {
                shown.push(violation.client);
                println!(
                    "seed {}: client {} statuses and subscriptions:\n{}",
                    self.seed,
                    violation.client,
                    timeline(&histories[violation.client])
                );
            }
        }
        if !violations.is_empty() {
            println!("seed {}: outages {:?}", self.seed, self.truth.outages);
        }
        (violations, summary)
    }
}

/// Ends the gateway this run started (also when the run panics) and its
/// recording clients.
impl Drop for Harness {
    fn drop(&mut self) {
        for mode in &self.modes {
            mode.send_modify(|m| m.stop = true);
        }
        // The gateway, publishers and nats-server end with their handles.
        self.gateway.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a client sent and every frame but quotes it received, one a line,
/// with the first quote value of snapshots: enough to see why a status or
/// resume rule broke.
fn timeline(history: &History) -> String {
    let mut lines = Vec::new();
    for event in &history.events {
        match event {
            Event::Sent { at, frame } => lines.push(format!("  {at:?} sent {frame}")),
            Event::Received { at, frame } => match frame["type"].as_str() {
                Some("update") => {}
                Some("snapshot") => lines.push(format!(
                    "  {at:?} snapshot resumed={} {:?}",
                    frame["resumed"],
                    history::quotes_of(frame)
                )),
                _ => lines.push(format!("  {at:?} {frame}")),
            },
        }
    }
    lines.join("\n")
}

fn feed_line(symbol: &str, value: f64) -> String {
    format!(
        "{}\n",
        json!({"symbol": symbol, "bid": value, "ask": value + 0.5, "ts": tickgate_feeds::now_micros()})
    )
}

/// The client's latest quote of every symbol carries at least `value`.
fn shows_value(history: &History, value: f64) -> bool {
    let mut latest: BTreeMap<String, f64> = BTreeMap::new();
    for event in &history.events {
        if let Event::Received { frame, .. } = event {
            for (symbol, _, v) in history::quotes_of(frame) {
                latest.insert(symbol, v);
            }
        }
    }
    SYMBOLS
        .iter()
        .all(|s| latest.get(*s).is_some_and(|v| *v >= value))
}

/// A fourth client that sends only garbage: broken JSON, an unknown op, an
/// invalid symbol, a binary frame and an oversized frame. Whatever the
/// gateway answers (errors, a close) concerns this client alone; the
/// recording clients must keep receiving.
async fn hostile_client(addr: SocketAddr) {
    let stream = TcpStream::connect(addr)
        .await
        .expect("the hostile client connects");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
        .await
        .expect("the hostile client's handshake");
    let frames = [
        Message::text("{not json"),
        Message::text(r#"{"op":"launch","id":1}"#),
        Message::text(r#"{"op":"subscribe","symbols":["??", ""],"id":2}"#),
        Message::binary(vec![0xff_u8, 0x00, 0xfe]),
        Message::text("x".repeat(1 << 20)),
    ];
    let mut sent = 0;
    for frame in frames {
        if ws.send(frame).await.is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent >= 3, "the gateway took the first frames");
    let _ = ws.close(None).await;
}

/// Waits until a fresh subscription at `addr` shows `value` for every
/// symbol: the restarted gateway holds the feeds' latest values.
async fn probe(addr: SocketAddr, value: f64) {
    let stream = TcpStream::connect(addr).await.expect("probe connects");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
        .await
        .expect("probe handshake");
    let subscribe = json!({"op": "subscribe", "symbols": SYMBOLS}).to_string();
    ws.send(Message::text(subscribe))
        .await
        .expect("probe sends");
    let mut history = History::default();
    let deadline = Instant::now() + WAIT;
    while !shows_value(&history, value) {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the restarted gateway serves the latest values");
        let Some(Ok(Message::Text(text))) = next else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
        history.events.push(Event::Received {
            at: Duration::ZERO,
            frame,
        });
    }
    let _ = ws.close(None).await;
}

/// One recording client: subscribes to every symbol, records every frame
/// (heartbeats aside) with its receive time, stops reading while stalled,
/// and after a lost connection (or when told to) reconnects to the current
/// gateway address with a `resume` of the seqs it holds and their epoch.
async fn record(
    start: Instant,
    mut address: watch::Receiver<SocketAddr>,
    mut mode: watch::Receiver<Mode>,
    history: Arc<Mutex<History>>,
) {
    let mut held: BTreeMap<String, u64> = BTreeMap::new();
    let mut epoch: Option<String> = None;
    let mut blind_since: Option<Duration> = None;
    let reconnects = mode.borrow().reconnects;
    let mut reconnects = reconnects;
    loop {
        if mode.borrow().stop {
            return;
        }
        let addr = *address.borrow_and_update();
        let connected = match TcpStream::connect(addr).await {
            Ok(stream) => tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
                .await
                .ok(),
            Err(_) => None,
        };
        let Some((mut ws, _)) = connected else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut subscribe = json!({"op": "subscribe", "symbols": SYMBOLS});
        if let Some(epoch) = &epoch {
            subscribe["resume"] = json!(held);
            subscribe["epoch"] = json!(epoch);
        }
        history
            .lock()
            .expect("history lock")
            .events
            .push(Event::Sent {
                at: start.elapsed(),
                frame: subscribe.clone(),
            });
        if ws.send(Message::text(subscribe.to_string())).await.is_err() {
            continue;
        }
        loop {
            // Every change of mode is acted on here, where it is marked
            // seen: a reconnect asked for while a frame was being handled
            // must not be swallowed by the next look at the mode.
            let now = *mode.borrow_and_update();
            if now.stop {
                return;
            }
            if now.reconnects != reconnects {
                reconnects = now.reconnects;
                let _ = ws.close(None).await;
                break;
            }
            if now.stalled {
                let from = start.elapsed();
                let _ = mode.wait_for(|m| !m.stalled || m.stop).await;
                history
                    .lock()
                    .expect("history lock")
                    .blind
                    .push((from, start.elapsed()));
                continue;
            }
            let message = tokio::select! {
                message = ws.next() => message,
                changed = mode.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break,
            };
            let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if frame["type"] == "heartbeat" {
                continue;
            }
            let at = start.elapsed();
            if frame["type"] == "subscribed" {
                epoch = frame["epoch"].as_str().map(str::to_owned);
            }
            for (symbol, seq, _) in history::quotes_of(&frame) {
                held.insert(symbol, seq);
            }
            let mut history = history.lock().expect("history lock");
            if frame["type"] == "snapshot" {
                if let Some(from) = blind_since.take() {
                    history.blind.push((from, at));
                }
            }
            history.events.push(Event::Received { at, frame });
        }
        blind_since.get_or_insert(start.elapsed());
    }
}
