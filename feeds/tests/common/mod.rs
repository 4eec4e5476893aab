//! Shared test harness: fixture loading, a feed runtime with a bounded wait
//! on every event, local upstream servers on 127.0.0.1 port 0, and a global
//! metrics recorder to read counters back.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tickgate_feeds::{FeedConfig, FeedEvent, FeedKind, FeedState, Tick};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

pub fn fixture_lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(fixture(name))
        .expect("fixture readable")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// A config with short timers suited to tests.
pub fn quick(name: &str, kind: FeedKind) -> FeedConfig {
    let mut config = FeedConfig::new(name, kind);
    config.staleness_ms = 300;
    config.connect_timeout_ms = 500;
    config.backoff_min_ms = 20;
    config.backoff_max_ms = 100;
    config
}

/// Feeds running into a channel the test reads.
pub struct Harness {
    pub rx: mpsc::Receiver<FeedEvent>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    /// Every event received so far, in order.
    pub seen: Vec<FeedEvent>,
}

impl Harness {
    pub fn start(configs: &[FeedConfig]) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        tickgate_feeds::spawn_all(configs, tx, shutdown.clone(), &tracker)
            .unwrap_or_else(|errors| panic!("config refused: {errors:?}"));
        Self {
            rx,
            shutdown,
            tracker,
            seen: Vec::new(),
        }
    }

    pub async fn next(&mut self) -> FeedEvent {
        let event = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("an event within the wait")
            .expect("feed channel open");
        self.seen.push(event.clone());
        event
    }

    /// Collects ticks until at least `n` arrived.
    pub async fn ticks(&mut self, n: usize) -> Vec<Tick> {
        let mut ticks = Vec::new();
        while ticks.len() < n {
            if let FeedEvent::Ticks(batch) = self.next().await {
                ticks.extend(batch.ticks);
            }
        }
        ticks
    }

    /// Waits for `feed` to report `state`; returns the ticks seen meanwhile.
    pub async fn until_state(&mut self, feed: &str, want: FeedState) -> Vec<Tick> {
        let mut ticks = Vec::new();
        loop {
            match self.next().await {
                FeedEvent::State { feed: f, state } if &*f == feed && state == want => {
                    return ticks;
                }
                FeedEvent::Ticks(batch) => ticks.extend(batch.ticks),
                FeedEvent::State { .. } | FeedEvent::Venue(_) => {}
            }
        }
    }

    /// The states `feed` reported so far, in order.
    pub fn states(&self, feed: &str) -> Vec<FeedState> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                FeedEvent::State { feed: f, state } if &**f == feed => Some(*state),
                _ => None,
            })
            .collect()
    }

    /// Cancels everything and checks every task ends promptly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(2), self.tracker.wait())
            .await
            .expect("feed tasks exit promptly on cancellation");
    }
}

pub async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    (listener, address)
}

pub async fn accept(listener: &TcpListener) -> TcpStream {
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("a connection within the wait")
        .expect("accept");
    stream
}

pub async fn accept_ws(listener: &TcpListener) -> WebSocketStream<TcpStream> {
    let stream = accept(listener).await;
    tokio_tungstenite::accept_async(stream)
        .await
        .expect("websocket handshake")
}

/// Reads the next text message a WebSocket client sent.
pub async fn read_text<S>(ws: &mut WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message within the wait")
            .expect("stream open")
            .expect("valid frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return text.to_string();
        }
    }
}

/// A process-wide debugging recorder (installed once per test binary).
pub fn recorder() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("first recorder install");
        snapshotter
    })
}

/// Counter totals so far. The debugging recorder's snapshot drains
/// counters, so every snapshot is folded in here first.
type Totals = Mutex<HashMap<(String, Vec<(String, String)>), u64>>;

fn totals() -> &'static Totals {
    static TOTALS: OnceLock<Totals> = OnceLock::new();
    TOTALS.get_or_init(Default::default)
}

/// The value of counter `name` with exactly these labels.
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut totals = totals().lock().expect("totals lock");
    for (key, _, _, value) in recorder().snapshot().into_vec() {
        let DebugValue::Counter(n) = value else {
            continue;
        };
        let key = key.key();
        let mut pairs: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        pairs.sort();
        *totals.entry((key.name().to_string(), pairs)).or_default() += n;
    }
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    totals.get(&(name.to_string(), want)).copied().unwrap_or(0)
}

/// Ticks of the generic fixture decoded independently with serde_json.
pub fn expected_generic_ticks() -> Vec<Tick> {
    let mut ticks = Vec::new();
    for line in fixture_lines("generic.jsonl") {
        let value: serde_json::Value = serde_json::from_str(&line).expect("fixture is JSON");
        let items = match value {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        };
        for item in items {
            let f = |k: &str| item.get(k).and_then(serde_json::Value::as_f64);
            let symbol = item["symbol"].as_str().expect("symbol");
            let mut tick = Tick {
                symbol: tickgate_feeds::Symbol::parse(symbol).ok(),
                bid: f("bid"),
                ask: f("ask"),
                bid_size: f("bid_size"),
                ask_size: f("ask_size"),
                last: f("last"),
                last_size: f("last_size"),
                volume: f("volume"),
                open: f("open"),
                high: f("high"),
                low: f("low"),
                prev_close: f("prev_close"),
                ts: item.get("ts").and_then(serde_json::Value::as_u64),
                ..Tick::default()
            };
            // The runner stamps each tick with its session (midnight UTC by
            // default for these kinds).
            tick.session = tick
                .ts
                .and_then(|ts| tickgate_feeds::model::SessionClock::utc_midnight().session_of(ts));
            let trade = match item.get("kind").and_then(|k| k.as_str()) {
                Some(kind) => kind == "trade",
                None => tick.last.is_some() && tick.bid.is_none() && tick.ask.is_none(),
            };
            if trade {
                tick.kind = tickgate_feeds::TickKind::Trade;
            }
            ticks.push(tick);
        }
    }
    ticks
}
