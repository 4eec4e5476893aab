//! `tickgate publish`: runs the configured feeds, merges their ticks into one
//! Quote per symbol with the publisher's own `seq`, and publishes each quote
//! (compact JSON, every field) to `<prefix>.<escaped symbol>` on a JetStream
//! stream that keeps one message per subject: the stream is the distributed
//! last-value snapshot every gateway replica loads (docs/nats.md).
//!
//! Owns: the quote map (one entry per symbol), the pending set (symbols whose
//! latest quote is not yet acknowledged by JetStream; at most one entry per
//! symbol, so it is bounded by the universe), the stream's settings and the
//! heartbeat. Hands on: quotes to NATS; `/metrics`, `/healthz`, `/readyz` on
//! the admin listener.
//!
//! Start-up order matters for `seq`: before any feed runs, the publisher
//! loads the stream's last quotes and continues from their `seq`, so a
//! restarted publisher never goes back to 1 (gateways would refuse that as
//! stale).
//!
//! While NATS is away nothing is queued beyond the pending set: a symbol that
//! ticks again replaces its pending quote (counted in
//! `tickgate_publish_superseded_total`), and on reconnect the latest quote of
//! every pending symbol is published.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use indexmap::IndexSet;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use tickgate_feeds::backoff::Backoff;
use tickgate_feeds::nats::{Heartbeat, Link, NatsPlan, NatsSettings};
use tickgate_feeds::parse::JsonScratch;
use tickgate_feeds::sim::{SimConfig, Simulator};
use tickgate_feeds::{FeedEvent, FeedState, Quote, Symbol, TickBatch, now_micros};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::telemetry as gateway_metrics;

/// Counter: quotes acknowledged by JetStream.
pub const PUBLISHED: &str = "tickgate_publish_quotes_total";
/// Counter: pending quotes replaced by a newer quote of the same symbol
/// before they were published (conflation; grows while NATS is away).
pub const SUPERSEDED: &str = "tickgate_publish_superseded_total";
/// Counter: publishes that failed (`reason`: `send`, `ack`); the symbol
/// stays pending and its latest quote is retried.
pub const FAILURES: &str = "tickgate_publish_failures_total";
/// Gauge: symbols whose latest quote is not yet acknowledged.
pub const PENDING: &str = "tickgate_publish_pending_symbols";
/// Gauge: 1 while the publisher is connected to NATS.
pub const NATS_CONNECTED: &str = "tickgate_nats_connected";
/// Gauge: symbols in the publisher's quote map (loaded from the stream or
/// seen on a feed).
pub const SYMBOLS: &str = "tickgate_publish_symbols";

/// Feed events waiting for the publisher loop; a full queue makes feeds wait.
const FEED_QUEUE: usize = 1024;

/// The `[publish]` section: what `tickgate publish` publishes to, and how.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// NATS servers, stream, subject prefix, credentials and TLS; the same
    /// table as a `kind = "nats"` feed's `nats`.
    pub nats: NatsSettings,
    /// Stream storage: `file` (survives a NATS restart) or `memory`.
    pub storage: StreamStorage,
    /// Stream replicas in a NATS cluster (1 to 5; 3 is the usual choice).
    pub replicas: usize,
    /// How often the publisher heartbeat goes out on `<prefix>.$hb`.
    pub heartbeat_interval_ms: u64,
    /// Time JetStream has to acknowledge a publish before it is retried.
    pub publish_timeout_ms: u64,
    /// Most quotes published (and awaiting acknowledgement) at once.
    pub max_in_flight: usize,
    /// Time allowed for one connection attempt to NATS.
    pub connect_timeout_ms: u64,
    /// First reconnect / retry delay; doubles per failure.
    pub backoff_min_ms: u64,
    /// Cap of the reconnect / retry delay.
    pub backoff_max_ms: u64,
}

/// Where the stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStorage {
    File,
    Memory,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            nats: NatsSettings::default(),
            storage: StreamStorage::File,
            replicas: 1,
            heartbeat_interval_ms: 1_000,
            publish_timeout_ms: 2_000,
            max_in_flight: 1_024,
            connect_timeout_ms: 5_000,
            backoff_min_ms: 250,
            backoff_max_ms: 5_000,
        }
    }
}

impl PublishConfig {
    /// Every problem, each naming its key (`publish.…`).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(errors) = self.nats.validate() {
            problems.extend(
                errors
                    .into_iter()
                    .map(|(key, problem)| format!("publish.{key} {problem}")),
            );
        }
        let mut check = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_owned());
            }
        };
        check(
            (1..=5).contains(&self.replicas),
            "publish.replicas must be between 1 and 5",
        );
        check(
            (50..=60_000).contains(&self.heartbeat_interval_ms),
            "publish.heartbeat_interval_ms must be between 50 and 60000",
        );
        check(
            self.publish_timeout_ms >= 100,
            "publish.publish_timeout_ms must be at least 100",
        );
        check(
            (1..=100_000).contains(&self.max_in_flight),
            "publish.max_in_flight must be between 1 and 100000",
        );
        check(
            self.connect_timeout_ms >= 100,
            "publish.connect_timeout_ms must be at least 100",
        );
        check(
            self.backoff_min_ms >= 1 && self.backoff_min_ms <= self.backoff_max_ms,
            "publish.backoff_min_ms must be at least 1 and not exceed publish.backoff_max_ms",
        );
        problems
    }
}

/// Why the publisher could not start.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot listen on {addr} (admin): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid [publish] section: {0}")]
    Config(String),
    #[error("cannot start feeds: {0}")]
    Feeds(String),
    #[error("cannot connect to NATS: {0}")]
    Nats(String),
}

/// What `/readyz` reports: connected, stream loaded, upstream live.
#[derive(Debug, Default)]
struct Readiness {
    connected: AtomicBool,
    loaded: AtomicBool,
    upstream_live: AtomicBool,
}

impl Readiness {
    fn not_ready(&self) -> Option<&'static str> {
        if !self.loaded.load(Ordering::Relaxed) {
            Some("the stream's last quotes are not loaded yet")
        } else if !self.connected.load(Ordering::Relaxed) {
            Some("not connected to NATS")
        } else if !self.upstream_live.load(Ordering::Relaxed) {
            Some("upstream feeds are not live")
        } else {
            None
        }
    }
}

/// A bound publisher, ready to [`Publisher::run`].
pub struct Publisher {
    config: Config,
    plan: NatsPlan,
    admin: TcpListener,
    admin_addr: SocketAddr,
}

impl Publisher {
    /// Validates `[publish]` and binds the admin listener.
    pub async fn bind(config: Config) -> Result<Self, PublishError> {
        let plan = config.publish.nats.validate().map_err(|problems| {
            PublishError::Config(
                problems
                    .iter()
                    .map(|(key, problem)| format!("publish.{key} {problem}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let addr = config.server.admin_listen;
        let admin = TcpListener::bind(addr)
            .await
            .map_err(|source| PublishError::Bind { addr, source })?;
        let admin_addr = admin
            .local_addr()
            .map_err(|source| PublishError::Bind { addr, source })?;
        Ok(Self {
            config,
            plan,
            admin,
            admin_addr,
        })
    }

    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Runs until `shutdown` is cancelled; then publishes what is pending
    /// (bounded by the publish timeout) and stops the feeds.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), PublishError> {
        let handle = gateway_metrics::install();
        describe();
        let readiness = Arc::new(Readiness::default());
        let tracker = TaskTracker::new();
        tracker.spawn(serve_admin(
            self.admin,
            handle,
            Arc::clone(&readiness),
            shutdown.clone(),
        ));
        let publish = &self.config.publish;
        let (client, link) = self
            .plan
            .connect(
                "tickgate publish",
                Duration::from_millis(publish.connect_timeout_ms),
                Duration::from_millis(publish.backoff_min_ms),
                Duration::from_millis(publish.backoff_max_ms),
            )
            .await
            .map_err(PublishError::Nats)?;
        let mut context = jetstream::new(client.clone());
        context.set_timeout(Duration::from_millis(publish.publish_timeout_ms));
        let mut state = PublishState {
            config: publish.clone(),
            plan: self.plan.clone(),
            client,
            context,
            link,
            readiness: Arc::clone(&readiness),
            quotes: HashMap::new(),
            pending: IndexSet::new(),
            backoff: Backoff::new(
                Duration::from_millis(publish.backoff_min_ms),
                Duration::from_millis(publish.backoff_max_ms),
                now_micros(),
            ),
        };
        let result = async {
            if !state.load(&shutdown).await {
                return Ok(());
            }
            let (tx, rx) = mpsc::channel(FEED_QUEUE);
            let required = start_feeds(&self.config, tx, &shutdown, &tracker)?;
            state.run(rx, required, &shutdown).await;
            Ok(())
        }
        .await;
        shutdown.cancel();
        tracker.close();
        let _ = timeout(Duration::from_secs(5), tracker.wait()).await;
        result
    }
}

/// Starts `[[feeds]]` (or the `[simulator]` feed when there are none);
/// returns the names of the feeds `/readyz` waits for (all of them when none
/// is marked `required`: then any one live feed will do).
fn start_feeds(
    config: &Config,
    tx: mpsc::Sender<FeedEvent>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<Upstream, PublishError> {
    if config.feeds.is_empty() {
        let sim = &config.simulator;
        let simulator = Simulator::new(SimConfig {
            ticks_per_second: sim.ticks_per_second,
            seed: sim.seed,
            symbols: sim.symbols,
            bursts: sim.bursts,
        });
        tracker.spawn(simulator.run("sim".into(), tx, shutdown.clone()));
        return Ok(Upstream::new(Vec::new()));
    }
    tickgate_feeds::spawn_all(&config.feeds, tx, shutdown.clone(), tracker).map_err(|errors| {
        PublishError::Feeds(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let required = config
        .feeds
        .iter()
        .filter(|f| f.required)
        .map(|f| Arc::from(f.name.as_str()))
        .collect();
    Ok(Upstream::new(required))
}

/// The states of the publisher's own feeds. Live when every required feed
/// is live, or (none required) when any feed is.
struct Upstream {
    required: Vec<Arc<str>>,
    states: HashMap<Arc<str>, FeedState>,
}

impl Upstream {
    fn new(required: Vec<Arc<str>>) -> Self {
        Self {
            required,
            states: HashMap::new(),
        }
    }

    fn live(&self) -> bool {
        let is_live = |name: &Arc<str>| self.states.get(name) == Some(&FeedState::Live);
        if self.required.is_empty() {
            self.states.values().any(|s| *s == FeedState::Live)
        } else {
            self.required.iter().all(is_live)
        }
    }
}

/// One unit of NATS work the loop waits for; at most one runs at a time, so
/// a symbol's quotes reach the stream in `seq` order.
type Job = Pin<Box<dyn Future<Output = JobDone> + Send>>;

enum JobDone {
    /// A batch finished: how many were acknowledged, which symbols failed.
    Published {
        acked: u64,
        failed: Vec<Symbol>,
        error: Option<(&'static str, String)>,
    },
    /// The stream was checked (and created when missing: `Ok(true)`).
    Stream(Result<bool, String>),
}

struct PublishState {
    config: PublishConfig,
    plan: NatsPlan,
    client: async_nats::Client,
    context: jetstream::Context,
    link: watch::Receiver<Link>,
    readiness: Arc<Readiness>,
    /// Latest quote per symbol; one entry per symbol ever seen.
    quotes: HashMap<Symbol, Quote>,
    /// Symbols whose latest quote is not acknowledged yet, oldest change
    /// first. At most one entry per symbol: a newer tick replaces the
    /// pending quote, it does not queue behind it.
    pending: IndexSet<Symbol>,
    backoff: Backoff,
}

impl PublishState {
    /// Connects, makes sure the stream exists with our settings, and loads
    /// its last quotes into `quotes`; retries with backoff until done.
    /// False when shutdown came first.
    async fn load(&mut self, shutdown: &CancellationToken) -> bool {
        loop {
            let connected = tokio::select! {
                _ = shutdown.cancelled() => return false,
                up = self.link.wait_for(|l| l.connected) => up.is_ok(),
            };
            if !connected {
                return false;
            }
            self.readiness.connected.store(true, Ordering::Relaxed);
            let attempt = async {
                ensure_stream(&self.context, &self.plan, &self.config).await?;
                load_quotes(&self.context, &self.plan).await
            };
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return false,
                outcome = attempt => outcome,
            };
            match outcome {
                Ok(quotes) => {
                    info!(
                        stream = %self.plan.stream,
                        symbols = quotes.len(),
                        "loaded the stream's last quotes; seq continues from them"
                    );
                    self.quotes = quotes;
                    metrics::gauge!(SYMBOLS).set(self.quotes.len() as f64);
                    self.readiness.loaded.store(true, Ordering::Relaxed);
                    self.backoff.reset();
                    return true;
                }
                Err(error) => {
                    warn!("cannot load the stream yet: {error}");
                    let delay = self.backoff.next_delay();
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// The publish loop: apply ticks, publish pending quotes one batch at a
    /// time, heartbeat, recheck the stream after every reconnect.
    async fn run(
        &mut self,
        mut events: mpsc::Receiver<FeedEvent>,
        mut upstream: Upstream,
        shutdown: &CancellationToken,
    ) {
        let heartbeat_every = Duration::from_millis(self.config.heartbeat_interval_ms);
        let mut heartbeat_at = Instant::now();
        let mut job: Option<Job> = None;
        let mut retry_at: Option<Instant> = None;
        let mut generation = self.link.borrow().generation;
        let mut stream_checked = true;
        let mut scratch_superseded = 0u64;
        loop {
            let link = *self.link.borrow();
            self.readiness
                .connected
                .store(link.connected, Ordering::Relaxed);
            metrics::gauge!(NATS_CONNECTED).set(if link.connected { 1.0 } else { 0.0 });
            if link.generation != generation {
                generation = link.generation;
                stream_checked = false;
            }
            let may_start = link.connected && job.is_none() && retry_at.is_none();
            if may_start && !stream_checked {
                stream_checked = true;
                let (context, plan, config) =
                    (self.context.clone(), self.plan.clone(), self.config.clone());
                job = Some(Box::pin(async move {
                    JobDone::Stream(ensure_stream(&context, &plan, &config).await)
                }));
            } else if may_start && !self.pending.is_empty() {
                job = Some(self.next_batch());
            }
            metrics::gauge!(PENDING).set(self.pending.len() as f64);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Some(FeedEvent::Ticks(batch)) => {
                        scratch_superseded += self.apply(&batch);
                        if scratch_superseded > 0 {
                            metrics::counter!(SUPERSEDED).increment(std::mem::take(&mut scratch_superseded));
                        }
                    }
                    Some(FeedEvent::State { feed, state }) => {
                        info!(feed = &*feed, state = state.as_str(), "feed state");
                        metrics::gauge!(gateway_metrics::FEED_UP, "feed" => feed.to_string())
                            .set(if state == FeedState::Live { 1.0 } else { 0.0 });
                        upstream.states.insert(feed, state);
                        self.readiness.upstream_live.store(upstream.live(), Ordering::Relaxed);
                    }
                    None => break,
                },
                done = async { job.as_mut().expect("guarded by the if").await }, if job.is_some() => {
                    job = None;
                    if self.finish(done) {
                        self.backoff.reset();
                    } else {
                        retry_at = Some(Instant::now() + self.backoff.next_delay());
                    }
                }
                _ = sleep_until(retry_at.unwrap_or(heartbeat_at)), if retry_at.is_some() => {
                    retry_at = None;
                }
                _ = sleep_until(heartbeat_at) => {
                    heartbeat_at = Instant::now() + heartbeat_every;
                    if link.connected {
                        self.heartbeat(upstream.live()).await;
                    }
                }
                _ = self.link.changed() => {}
            }
        }
        self.final_flush().await;
    }

    /// Merges a batch into the quotes; returns how many pending quotes it
    /// superseded.
    fn apply(&mut self, batch: &TickBatch) -> u64 {
        let now = now_micros();
        let mut superseded = 0;
        let mut accepted = 0u64;
        let mut rejected: HashMap<&'static str, u64> = HashMap::new();
        for tick in &batch.ticks {
            let symbol = match tick.validate(now) {
                Ok(symbol) => symbol,
                Err(error) => {
                    *rejected.entry(error.kind()).or_default() += 1;
                    continue;
                }
            };
            let quote = self
                .quotes
                .entry(symbol)
                .or_insert_with(|| Quote::new(symbol));
            if !quote.apply(tick, now) {
                *rejected.entry("stale_seq").or_default() += 1;
                continue;
            }
            accepted += 1;
            if !self.pending.insert(symbol) {
                superseded += 1;
            }
        }
        let feed = batch.feed.to_string();
        if accepted > 0 {
            metrics::counter!(gateway_metrics::TICKS_RECEIVED, "feed" => feed.clone())
                .increment(accepted);
        }
        for (reason, count) in rejected {
            metrics::counter!(gateway_metrics::TICKS_REJECTED, "feed" => feed.clone(), "reason" => reason)
                .increment(count);
        }
        metrics::gauge!(SYMBOLS).set(self.quotes.len() as f64);
        superseded
    }

    /// Takes up to `max_in_flight` pending symbols (oldest first) and
    /// publishes their latest quotes. They leave `pending` now; a failure
    /// puts them back.
    fn next_batch(&mut self) -> Job {
        let take = self.pending.len().min(self.config.max_in_flight);
        let mut batch = Vec::with_capacity(take);
        for symbol in self.pending.drain(..take) {
            let Some(quote) = self.quotes.get(&symbol) else {
                continue;
            };
            let Ok(payload) = serde_json::to_vec(quote) else {
                continue;
            };
            let subject = tickgate_feeds::nats::subject_for(&self.plan.subject_prefix, &symbol);
            batch.push((symbol, subject, Bytes::from(payload)));
        }
        let context = self.context.clone();
        Box::pin(publish_batch(context, batch))
    }

    /// Handles a finished job; false when it failed (back off before the next).
    fn finish(&mut self, done: JobDone) -> bool {
        match done {
            JobDone::Published {
                acked,
                failed,
                error,
            } => {
                metrics::counter!(PUBLISHED).increment(acked);
                if let Some((reason, error)) = error {
                    metrics::counter!(FAILURES, "reason" => reason).increment(failed.len() as u64);
                    warn!(
                        failed = failed.len(),
                        "publishing to NATS failed; the latest quotes stay pending: {error}"
                    );
                    // Failed symbols go back in front: they are the oldest changes.
                    let newer: Vec<Symbol> = self.pending.drain(..).collect();
                    self.pending.extend(failed);
                    self.pending.extend(newer);
                    return false;
                }
                true
            }
            JobDone::Stream(Ok(created)) => {
                if created {
                    // The stream was lost (memory storage, deleted): republish
                    // every quote so new gateways see the whole universe.
                    warn!(
                        stream = %self.plan.stream,
                        symbols = self.quotes.len(),
                        "stream was missing and has been recreated; republishing every quote"
                    );
                    let all: Vec<Symbol> = self.quotes.keys().copied().collect();
                    self.pending.extend(all);
                }
                true
            }
            JobDone::Stream(Err(error)) => {
                warn!("checking the stream after a reconnect failed: {error}");
                false
            }
        }
    }

    async fn heartbeat(&self, live: bool) {
        let beat = Heartbeat {
            ts: now_micros(),
            live,
        };
        let Ok(payload) = serde_json::to_vec(&beat) else {
            return;
        };
        if let Err(error) = self
            .client
            .publish(self.plan.heartbeat_subject(), Bytes::from(payload))
            .await
        {
            debug!("heartbeat not sent: {error}");
        }
    }

    /// On shutdown: one last attempt at what is pending, bounded in time.
    async fn final_flush(&mut self) {
        if self.pending.is_empty() || !self.link.borrow().connected {
            return;
        }
        let count = self.pending.len();
        let bound = Duration::from_millis(self.config.publish_timeout_ms);
        while !self.pending.is_empty() {
            let job = self.next_batch();
            match timeout(bound, job).await {
                Ok(done) => {
                    if !self.finish(done) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        info!(
            published = count - self.pending.len(),
            left = self.pending.len(),
            "final publish before exit"
        );
    }
}

/// Publishes every quote of the batch, then awaits all acknowledgements.
async fn publish_batch(
    context: jetstream::Context,
    batch: Vec<(Symbol, String, Bytes)>,
) -> JobDone {
    let mut acks = Vec::with_capacity(batch.len());
    let mut failed = Vec::new();
    let mut error = None;
    for (symbol, subject, payload) in batch {
        if error.is_some() {
            failed.push(symbol);
            continue;
        }
        match context.publish(subject, payload).await {
            Ok(ack) => acks.push((symbol, ack)),
            Err(e) => {
                error = Some(("send", e.to_string()));
                failed.push(symbol);
            }
        }
    }
    let mut acked = 0;
    for (symbol, ack) in acks {
        match ack.await {
            Ok(_) => acked += 1,
            Err(e) => {
                error.get_or_insert(("ack", e.to_string()));
                failed.push(symbol);
            }
        }
    }
    JobDone::Published {
        acked,
        failed,
        error,
    }
}

/// The stream the publisher writes: `<prefix>.>`, one message per subject.
fn stream_config(plan: &NatsPlan, config: &PublishConfig) -> stream::Config {
    stream::Config {
        name: plan.stream.clone(),
        description: Some("tickgate: last quote per symbol".into()),
        subjects: vec![plan.filter_subject()],
        max_messages_per_subject: 1,
        discard: stream::DiscardPolicy::Old,
        storage: match config.storage {
            StreamStorage::File => stream::StorageType::File,
            StreamStorage::Memory => stream::StorageType::Memory,
        },
        num_replicas: config.replicas,
        allow_direct: true,
        ..stream::Config::default()
    }
}

/// Creates the stream when missing (`Ok(true)`), or brings an existing one
/// to our settings. A storage type cannot change in place: that is an error
/// naming both.
async fn ensure_stream(
    context: &jetstream::Context,
    plan: &NatsPlan,
    config: &PublishConfig,
) -> Result<bool, String> {
    let wanted = stream_config(plan, config);
    match context.get_stream(&plan.stream).await {
        Ok(mut existing) => {
            let info = existing
                .info()
                .await
                .map_err(|e| format!("stream {} info: {e}", plan.stream))?;
            let have = &info.config;
            if have.storage != wanted.storage {
                return Err(format!(
                    "stream {} uses {:?} storage but publish.storage asks for {:?}; delete the stream or change the setting",
                    plan.stream, have.storage, wanted.storage
                ));
            }
            if have.subjects != wanted.subjects
                || have.max_messages_per_subject != 1
                || have.num_replicas != wanted.num_replicas
            {
                let mut updated = have.clone();
                updated.subjects = wanted.subjects.clone();
                updated.max_messages_per_subject = 1;
                updated.num_replicas = wanted.num_replicas;
                context
                    .update_stream(updated)
                    .await
                    .map_err(|e| format!("updating stream {}: {e}", plan.stream))?;
                info!(stream = %plan.stream, "stream settings updated");
            }
            Ok(false)
        }
        Err(error)
            if matches!(
                error.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref e)
                    if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            context
                .create_stream(wanted)
                .await
                .map_err(|e| format!("creating stream {}: {e}", plan.stream))?;
            info!(stream = %plan.stream, "stream created");
            Ok(true)
        }
        Err(error) => Err(format!("stream {}: {error}", plan.stream)),
    }
}

/// Reads the last quote of every subject of the stream.
async fn load_quotes(
    context: &jetstream::Context,
    plan: &NatsPlan,
) -> Result<HashMap<Symbol, Quote>, String> {
    let (mut messages, mut remaining) =
        tickgate_feeds::nats::open_last_per_subject(context, plan).await?;
    let mut quotes = HashMap::new();
    let mut scratch = JsonScratch::default();
    let now = now_micros();
    while remaining > 0 {
        let message = match timeout(Duration::from_secs(10), messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => return Err(format!("loading: {error}")),
            Ok(None) => return Err("loading: the consumer ended".into()),
            Err(_) => return Err("loading: no message for 10 s".into()),
        };
        remaining = message.info().map_or(0, |info| info.pending);
        let mut payload = message.payload.to_vec();
        let Ok(tick) = tickgate_feeds::nats::decode_quote(&mut scratch, &mut payload) else {
            continue;
        };
        let Some(symbol) = tick.symbol else { continue };
        quotes
            .entry(symbol)
            .or_insert_with(|| Quote::new(symbol))
            .apply(&tick, now);
    }
    Ok(quotes)
}

type Body = Full<Bytes>;

/// `/metrics`, `/healthz`, `/readyz` for the publisher.
async fn serve_admin(
    listener: TcpListener,
    handle: PrometheusHandle,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) {
    let mut upkeep = tokio::time::interval(Duration::from_secs(5));
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = upkeep.tick() => {
                handle.run_upkeep();
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        let handle = handle.clone();
        let readiness = Arc::clone(&readiness);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = admin_route(request.uri().path(), &handle, &readiness);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn admin_route(path: &str, handle: &PrometheusHandle, readiness: &Readiness) -> Response<Body> {
    let (status, body, content_type) = match path {
        "/healthz" => (StatusCode::OK, "ok\n".to_owned(), "text/plain"),
        "/readyz" => match readiness.not_ready() {
            None => (StatusCode::OK, "ready\n".to_owned(), "text/plain"),
            Some(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
                "text/plain",
            ),
        },
        "/metrics" => (
            StatusCode::OK,
            handle.render(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "not found\n".to_owned(),
            "text/plain",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn describe() {
    metrics::describe_counter!(PUBLISHED, "Quotes acknowledged by JetStream.");
    metrics::describe_counter!(
        SUPERSEDED,
        "Pending quotes replaced by a newer quote of the same symbol before being published."
    );
    metrics::describe_counter!(
        FAILURES,
        "Quote publishes that failed and stay pending for retry, by reason."
    );
    metrics::describe_gauge!(
        PENDING,
        "Symbols whose latest quote is not yet acknowledged by JetStream."
    );
    metrics::describe_gauge!(NATS_CONNECTED, "1 while connected to NATS.");
    metrics::describe_gauge!(SYMBOLS, "Symbols in the publisher's quote map.");
}
