//! Every metric of the gateway: its name (once, as a constant), its HELP
//! text, the Prometheus recorder, and the small recording functions the
//! rest of the gateway calls (`telemetry::connection_opened(transport)`,
//! `telemetry::ticks_received(feed, n)`, …). Callers count per batch and
//! pass plain numbers; nothing here reads gateway state.
//!
//! Names follow Prometheus conventions: base units, `_total` counters,
//! `_seconds` histograms with explicit buckets. Labels come from closed sets
//! (transport, reason, code, feed): never a symbol, client address or token.
//! Every series whose label values are known is exported at zero from
//! start-up, so alerts see 0 rather than no data. Every metric is described
//! in `docs/metrics.md`. The feed adapters' names live in
//! [`tickgate_feeds::telemetry`], which owns `tickgate_ticks_rejected_total`.
//!
//! The only module of the gateway allowed to call the `metrics` macros
//! (`clippy.toml`): a name or label set written anywhere else would drift
//! from this list and from the docs.
#![allow(clippy::disallowed_macros)]

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tickgate_feeds::FeedState;
pub use tickgate_feeds::telemetry::TICKS_REJECTED;

pub const CONNECTIONS: &str = "tickgate_connections";
pub const CONNECTIONS_OPENED: &str = "tickgate_connections_opened_total";
pub const CONNECTIONS_CLOSED: &str = "tickgate_connections_closed_total";
pub const CONNECTIONS_REFUSED: &str = "tickgate_connections_refused_total";
pub const SUBSCRIPTIONS: &str = "tickgate_subscriptions";
pub const SYMBOLS: &str = "tickgate_symbols";
pub const TICKS_RECEIVED: &str = "tickgate_ticks_received_total";
pub const UPDATES_SENT: &str = "tickgate_updates_sent_total";
pub const FRAMES_SENT: &str = "tickgate_frames_sent_total";
pub const BYTES_SENT: &str = "tickgate_bytes_sent_total";
pub const UPDATES_CONFLATED: &str = "tickgate_updates_conflated_total";
pub const BAD_REQUESTS: &str = "tickgate_client_errors_total";
pub const TICK_TO_SEND: &str = "tickgate_tick_to_send_seconds";
pub const FEED_LAG: &str = "tickgate_feed_lag_seconds";
pub const FEED_UP: &str = "tickgate_feed_up";
pub const FEED_STATE: &str = "tickgate_feed_state";
pub const FEED_LAST_TICK_AGE: &str = "tickgate_feed_last_tick_age_seconds";
pub const BUILD_INFO: &str = "tickgate_build_info";
pub const SLOW_CONSUMERS: &str = "tickgate_slow_consumers";
pub const SLOW_CONSUMER_STEPS: &str = "tickgate_slow_consumer_steps_total";
pub const SLOWED_CONNECTIONS: &str = "tickgate_slowed_connections";
pub const TRADES_SENT: &str = "tickgate_trades_sent_total";
pub const TRADES_LOST: &str = "tickgate_trades_lost_total";
pub const WRITE_QUEUE_BYTES: &str = "tickgate_write_queue_bytes";
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
pub const PROCESS_VIRTUAL_MEMORY: &str = "process_virtual_memory_bytes";
pub const PROCESS_CPU: &str = "process_cpu_seconds_total";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
pub const PROCESS_START_TIME: &str = "process_start_time_seconds";
pub const PROCESS_THREADS: &str = "process_threads";
pub const AUTH_FAILURES: &str = "tickgate_auth_failures_total";
pub const RATE_LIMITED: &str = "tickgate_rate_limited_total";
pub const TLS_HANDSHAKE_FAILURES: &str = "tickgate_tls_handshake_failures_total";
pub const TLS_RELOADS: &str = "tickgate_tls_reloads_total";
pub const AUTH_KEY_RELOADS: &str = "tickgate_auth_key_reloads_total";
pub const TLS_CERTIFICATE_EXPIRY: &str = "tickgate_tls_certificate_expiry_timestamp_seconds";

/// Per-connection buffered bytes, from nothing to the 16 MiB write bound.
const QUEUE_BUCKETS: &[f64] = &[
    0.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// Latency buckets from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Every `reason` of `tickgate_connections_closed_total`: the labels of
/// `connection::CloseReason::as_str`.
pub const CLOSE_REASONS: [&str; 12] = [
    "client_closed",
    "shutdown",
    "idle_timeout",
    "message_too_big",
    "protocol_error",
    "write_failed",
    "unauthorized",
    "token_expired",
    "rate_limited",
    "rebalance",
    "operator",
    "slow_consumer",
];

/// Every `reason` of `tickgate_connections_refused_total`.
pub const REFUSE_REASONS: [&str; 5] = [
    "max_connections",
    "draining",
    "max_connections_per_ip",
    "origin",
    "unauthorized",
];

/// Every `reason` of `tickgate_auth_failures_total`: the labels of
/// `auth::AuthError::kind`.
pub const AUTH_FAILURE_REASONS: [&str; 8] = [
    "missing",
    "malformed",
    "algorithm",
    "unknown_key",
    "signature",
    "expired",
    "not_yet_valid",
    "claims",
];

/// Every `code` of `tickgate_client_errors_total`: the labels of
/// `protocol::ErrorCode::as_str`.
pub const ERROR_CODES: [&str; 8] = [
    "bad_request",
    "unknown_op",
    "invalid_symbol",
    "too_many_subscriptions",
    "not_entitled",
    "rate_limited",
    "unauthorized",
    "not_subscribed",
];

/// Every `step` of `tickgate_slow_consumer_steps_total`.
pub const SLOW_CONSUMER_STEP_LABELS: [&str; 3] = ["slowed", "restored", "closed"];

/// Every `reason` of `tickgate_tls_handshake_failures_total`.
pub const TLS_HANDSHAKE_FAILURE_REASONS: [&str; 4] = ["timeout", "protocol", "certificate", "io"];

/// Reasons the gateway itself refuses a tick for (the feed side adds its
/// own, [`tickgate_feeds::telemetry::REJECT_REASONS`]): `tickgate_feeds::TickError::kind`,
/// a full symbol table, and a `seq` not newer than the stored one.
pub const GATEWAY_REJECT_REASONS: [&str; 7] = [
    "missing_symbol",
    "bad_price",
    "bad_size",
    "bad_timestamp",
    "empty",
    "symbol_table_full",
    "stale_seq",
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle. Later
/// calls (several gateways in one test process) share it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(WRITE_QUEUE_BYTES.into()), QUEUE_BUCKETS))
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Someone else installed a recorder: keep a private one so
                // rendering still works.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            describe();
            tickgate_feeds::telemetry::describe();
            register_core_series();
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "revision" => option_env!("TICKGATE_GIT_REVISION").unwrap_or("unknown")).set(1.0);
            handle
        })
        .clone()
}

fn describe() {
    describe_gauge!(
        CONNECTIONS,
        "Open client WebSocket connections, by transport."
    );
    describe_counter!(
        CONNECTIONS_OPENED,
        "Client WebSocket connections accepted, by transport."
    );
    describe_counter!(
        CONNECTIONS_CLOSED,
        "Client WebSocket connections closed, by reason."
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Upgrade requests refused before the WebSocket opened, by reason."
    );
    describe_gauge!(
        SUBSCRIPTIONS,
        "Symbol subscriptions held, summed over all connections."
    );
    describe_gauge!(SYMBOLS, "Symbols known to the snapshot store.");
    describe_counter!(TICKS_RECEIVED, "Ticks accepted from feeds, by feed.");
    describe_counter!(
        UPDATES_SENT,
        "Quotes delivered to clients in update frames."
    );
    describe_counter!(FRAMES_SENT, "WebSocket text frames written to clients.");
    describe_counter!(
        BYTES_SENT,
        Unit::Bytes,
        "Payload bytes of frames written to clients."
    );
    describe_counter!(
        UPDATES_CONFLATED,
        "Ticks a client never saw because a newer value of the symbol replaced them."
    );
    describe_counter!(
        BAD_REQUESTS,
        "Error replies sent to clients, by error code."
    );
    describe_histogram!(
        TICK_TO_SEND,
        Unit::Seconds,
        "Time from gateway receipt of the oldest tick in a frame to the frame being written."
    );
    describe_histogram!(
        FEED_LAG,
        Unit::Seconds,
        "Source timestamp to gateway receipt, per tick batch."
    );
    describe_gauge!(FEED_UP, "1 when the feed is live, 0 otherwise, by feed.");
    describe_gauge!(
        FEED_STATE,
        "1 for the state the feed is in (connecting, live, stale, down), 0 for the others, by feed."
    );
    describe_gauge!(
        FEED_LAST_TICK_AGE,
        Unit::Seconds,
        "Seconds since the feed's last tick, by feed."
    );
    describe_counter!(
        AUTH_FAILURES,
        "Tokens refused, by reason (missing, malformed, algorithm, unknown_key, signature, expired, not_yet_valid, claims)."
    );
    describe_counter!(
        RATE_LIMITED,
        "Client frames refused with rate_limited because the connection exceeded its request rate."
    );
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "TLS handshakes that failed, by reason (timeout, protocol, certificate, io)."
    );
    describe_counter!(
        TLS_RELOADS,
        "TLS certificate reloads, by result (success, failure); a failure keeps the previous certificate."
    );
    describe_counter!(
        AUTH_KEY_RELOADS,
        "JWT verification key reloads, by result (success, failure); a failure keeps the previous keys."
    );
    describe_gauge!(
        TLS_CERTIFICATE_EXPIRY,
        Unit::Seconds,
        "End of validity of the served TLS certificate, seconds since the Unix epoch."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; labels carry the version and git revision."
    );
    describe_gauge!(
        SLOW_CONSUMERS,
        "Connections whose socket has not taken a batch for longer than connection.slow_consumer_ms."
    );
    describe_counter!(
        SLOW_CONSUMER_STEPS,
        "Slow-consumer ladder steps taken, by step (slowed: a priority class limited to slow_consumer.reduced_rate_hz; restored: full rate again; closed: closed with 4008)."
    );
    describe_gauge!(
        SLOWED_CONNECTIONS,
        "Connections whose update rate the slow-consumer ladder is limiting right now."
    );
    describe_counter!(
        TRADES_SENT,
        "Trades delivered in trades frames (subscriptions with trades: true)."
    );
    describe_counter!(
        TRADES_LOST,
        "Trades dropped because a connection's trade buffer was full; each loss is announced to its client in a trades_lost message."
    );
    describe_histogram!(
        WRITE_QUEUE_BYTES,
        Unit::Bytes,
        "Bytes buffered for each connection's socket, sampled at every scrape."
    );
    describe_gauge!(
        PROCESS_RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident memory size."
    );
    describe_gauge!(PROCESS_VIRTUAL_MEMORY, Unit::Bytes, "Virtual memory size.");
    describe_counter!(
        PROCESS_CPU,
        Unit::Seconds,
        "User and system CPU time spent."
    );
    describe_gauge!(PROCESS_OPEN_FDS, "Open file descriptors.");
    describe_gauge!(PROCESS_MAX_FDS, "Maximum number of open file descriptors.");
    describe_gauge!(
        PROCESS_START_TIME,
        Unit::Seconds,
        "Start time of the process since the Unix epoch."
    );
    describe_gauge!(PROCESS_THREADS, "Operating-system threads of the process.");
}

/// Makes the series every dashboard reads exist from the first scrape (at
/// zero) instead of appearing with the first event. Adding zero leaves any
/// value already recorded untouched.
fn register_core_series() {
    gauge!(CONNECTIONS, "transport" => "ws").increment(0.0);
    counter!(CONNECTIONS_OPENED, "transport" => "ws").increment(0);
    gauge!(SUBSCRIPTIONS).increment(0.0);
    gauge!(SYMBOLS).increment(0.0);
    gauge!(SLOW_CONSUMERS).increment(0.0);
    gauge!(SLOWED_CONNECTIONS).increment(0.0);
    for reason in CLOSE_REASONS {
        counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(0);
    }
    for reason in REFUSE_REASONS {
        counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(0);
    }
    for reason in AUTH_FAILURE_REASONS {
        counter!(AUTH_FAILURES, "reason" => reason).increment(0);
    }
    for code in ERROR_CODES {
        counter!(BAD_REQUESTS, "code" => code).increment(0);
    }
    for step in SLOW_CONSUMER_STEP_LABELS {
        counter!(SLOW_CONSUMER_STEPS, "step" => step).increment(0);
    }
    for name in [
        UPDATES_SENT,
        FRAMES_SENT,
        BYTES_SENT,
        UPDATES_CONFLATED,
        TRADES_SENT,
        TRADES_LOST,
        RATE_LIMITED,
    ] {
        counter!(name).increment(0);
    }
}

/// Exports the series of the feeds the gateway starts with at zero:
/// received and rejected ticks (every reason) and reconnects.
pub fn register_feeds<'a>(feeds: impl IntoIterator<Item = &'a str>) {
    for feed in feeds {
        counter!(TICKS_RECEIVED, "feed" => feed.to_owned()).increment(0);
        for reason in GATEWAY_REJECT_REASONS {
            ticks_rejected(feed, reason, 0);
        }
        tickgate_feeds::telemetry::register_feed(feed);
    }
}

/// Exports the series of the `wss` listener at zero; called when TLS is on.
pub fn register_tls() {
    gauge!(CONNECTIONS, "transport" => "wss").increment(0.0);
    counter!(CONNECTIONS_OPENED, "transport" => "wss").increment(0);
    for reason in TLS_HANDSHAKE_FAILURE_REASONS {
        counter!(TLS_HANDSHAKE_FAILURES, "reason" => reason).increment(0);
    }
    for result in ["success", "failure"] {
        counter!(TLS_RELOADS, "result" => result).increment(0);
    }
}

/// Exports the key reload series at zero; called when JWT keys come from files.
pub fn register_auth_key_reloads() {
    for result in ["success", "failure"] {
        counter!(AUTH_KEY_RELOADS, "result" => result).increment(0);
    }
}

// Clients.

/// A WebSocket connection opened on `transport` (`ws`, `wss`).
pub fn connection_opened(transport: &'static str) {
    gauge!(CONNECTIONS, "transport" => transport).increment(1.0);
    counter!(CONNECTIONS_OPENED, "transport" => transport).increment(1);
}

/// A connection on `transport` closed for `reason` (one of [`CLOSE_REASONS`]).
/// The close is counted before the gauge drops, so a scrape that sees one
/// connection fewer also sees why it closed.
pub fn connection_closed(transport: &'static str, reason: &'static str) {
    counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(1);
    gauge!(CONNECTIONS, "transport" => transport).decrement(1.0);
}

/// An upgrade refused for `reason` (one of [`REFUSE_REASONS`]).
pub fn connection_refused(reason: &'static str) {
    counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(1);
}

/// A token refused, or a connection ended by expiry, for `reason` (one of
/// [`AUTH_FAILURE_REASONS`]).
pub fn auth_failure(reason: &'static str) {
    counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

/// A client frame refused because its connection exceeded its request rate.
pub fn rate_limited() {
    counter!(RATE_LIMITED).increment(1);
}

/// An error reply sent to a client, by protocol error `code` (one of
/// [`ERROR_CODES`]).
pub fn bad_request(code: &'static str) {
    counter!(BAD_REQUESTS, "code" => code).increment(1);
}

/// `n` symbol subscriptions taken.
pub fn subscriptions_added(n: usize) {
    gauge!(SUBSCRIPTIONS).increment(n as f64);
}

/// `n` symbol subscriptions dropped.
pub fn subscriptions_removed(n: usize) {
    gauge!(SUBSCRIPTIONS).decrement(n as f64);
}

/// The store now knows `n` symbols.
pub fn symbols(n: usize) {
    gauge!(SYMBOLS).set(n as f64);
}

// Delivery.

/// The delivery counters one connection's writer adds to after every write.
/// Fetched once per connection: each handle is then two atomics per use.
pub struct DeliveryHandles {
    pub updates: Counter,
    pub frames: Counter,
    pub bytes: Counter,
    pub conflated: Counter,
    pub trades_sent: Counter,
    /// `tickgate_tick_to_send_seconds`.
    pub latency: Histogram,
}

/// The handles of [`DeliveryHandles`].
pub fn delivery_handles() -> DeliveryHandles {
    DeliveryHandles {
        updates: counter!(UPDATES_SENT),
        frames: counter!(FRAMES_SENT),
        bytes: counter!(BYTES_SENT),
        conflated: counter!(UPDATES_CONFLATED),
        trades_sent: counter!(TRADES_SENT),
        latency: histogram!(TICK_TO_SEND),
    }
}

/// One step of the slow-consumer ladder (one of [`SLOW_CONSUMER_STEP_LABELS`]).
pub fn slow_consumer_step(step: &'static str) {
    counter!(SLOW_CONSUMER_STEPS, "step" => step).increment(1);
}

/// `n` trades dropped because a connection's trade buffer was full.
pub fn trades_lost(n: u64) {
    counter!(TRADES_LOST).increment(n);
}

/// What the admin listener samples at every scrape, walked by its caller.
pub fn connections_sampled(
    slow_consumers: usize,
    slowed_connections: usize,
    write_queue_bytes: impl IntoIterator<Item = u64>,
) {
    let queue = histogram!(WRITE_QUEUE_BYTES);
    for bytes in write_queue_bytes {
        queue.record(bytes as f64);
    }
    gauge!(SLOW_CONSUMERS).set(slow_consumers as f64);
    gauge!(SLOWED_CONNECTIONS).set(slowed_connections as f64);
}

// Feeds.

/// `n` ticks of `feed` accepted into the store (counted once per batch).
pub fn ticks_received(feed: &str, n: u64) {
    counter!(TICKS_RECEIVED, "feed" => feed.to_owned()).increment(n);
}

/// `n` ticks of `feed` refused for `reason` (one of
/// [`GATEWAY_REJECT_REASONS`]), counted once per batch and reason.
pub fn ticks_rejected(feed: &str, reason: &'static str, n: u64) {
    tickgate_feeds::telemetry::ticks_rejected(feed, reason, n);
}

/// `tickgate_feed_lag_seconds` of one feed, fetched once per batch.
pub struct FeedLag(Histogram);

impl FeedLag {
    /// The lag histogram of `feed`.
    pub fn of(feed: &str) -> Self {
        Self(histogram!(FEED_LAG, "feed" => feed.to_owned()))
    }

    /// One tick whose source timestamp was `micros` before its receipt.
    pub fn record_micros(&self, micros: u64) {
        self.0.record(micros as f64 / 1e6);
    }
}

/// Publishes `tickgate_feed_up`, `tickgate_feed_state` (one series per
/// state) and, once it has ticked, `tickgate_feed_last_tick_age_seconds`.
pub fn feed_status(feed: &str, state: FeedState, last_tick_age: Option<Duration>) {
    let up = if state == FeedState::Live { 1.0 } else { 0.0 };
    gauge!(FEED_UP, "feed" => feed.to_owned()).set(up);
    for each in [
        FeedState::Connecting,
        FeedState::Live,
        FeedState::Stale,
        FeedState::Down,
    ] {
        let now = if each == state { 1.0 } else { 0.0 };
        gauge!(FEED_STATE, "feed" => feed.to_owned(), "state" => each.as_str()).set(now);
    }
    if let Some(age) = last_tick_age {
        gauge!(FEED_LAST_TICK_AGE, "feed" => feed.to_owned()).set(age.as_secs_f64());
    }
}

// TLS and keys.

/// A TLS handshake failed for `reason` (one of [`TLS_HANDSHAKE_FAILURE_REASONS`]).
pub fn tls_handshake_failed(reason: &'static str) {
    counter!(TLS_HANDSHAKE_FAILURES, "reason" => reason).increment(1);
}

/// A certificate reload finished; `ok` is false when the old one stays.
pub fn tls_reloaded(ok: bool) {
    counter!(TLS_RELOADS, "result" => result_label(ok)).increment(1);
}

/// The served certificate is valid until `not_after` (Unix seconds).
pub fn tls_certificate_expiry(not_after: i64) {
    gauge!(TLS_CERTIFICATE_EXPIRY).set(not_after as f64);
}

/// A JWT key reload finished; `ok` is false when the old keys stay.
pub fn auth_keys_reloaded(ok: bool) {
    counter!(AUTH_KEY_RELOADS, "result" => result_label(ok)).increment(1);
}

fn result_label(ok: bool) -> &'static str {
    if ok { "success" } else { "failure" }
}

/// Linux process figures from /proc; silently absent elsewhere.
pub fn observe_process() {
    #[cfg(target_os = "linux")]
    {
        // Clock ticks per second and page size are 100 and 4096 on every
        // Linux platform tickgate targets (x86_64, aarch64).
        const TICKS: f64 = 100.0;
        const PAGE: f64 = 4096.0;
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesized command name, which may hold spaces.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
            let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
            if let (Some(utime), Some(stime)) = (field(14), field(15)) {
                counter!(PROCESS_CPU).absolute(((utime + stime) / TICKS) as u64);
            }
            if let Some(threads) = field(20) {
                gauge!(PROCESS_THREADS).set(threads);
            }
            if let Some(vsize) = field(23) {
                gauge!(PROCESS_VIRTUAL_MEMORY).set(vsize);
            }
            if let Some(rss) = field(24) {
                gauge!(PROCESS_RESIDENT_MEMORY).set(rss * PAGE);
            }
            if let (Some(start), Some(boot)) = (field(22), boot_time()) {
                gauge!(PROCESS_START_TIME).set(boot + start / TICKS);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            gauge!(PROCESS_OPEN_FDS).set(dir.count() as f64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits")
            && let Some(line) = limits.lines().find(|l| l.starts_with("Max open files"))
            && let Some(soft) = line
                .split_whitespace()
                .nth(3)
                .and_then(|v| v.parse::<f64>().ok())
        {
            gauge!(PROCESS_MAX_FDS).set(soft);
        }
    }
}

#[cfg(target_os = "linux")]
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}
