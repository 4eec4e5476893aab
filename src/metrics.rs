//! Metric names, their descriptions and the Prometheus recorder.
//!
//! Names follow Prometheus conventions: base units, `_total` counters,
//! `_seconds` histograms with explicit buckets. Labels come from closed sets
//! (transport, reason, code, feed): never a symbol, client address or token.
//! Every metric is described in `docs/metrics.md`.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const CONNECTIONS: &str = "tickgate_connections";
pub const CONNECTIONS_OPENED: &str = "tickgate_connections_opened_total";
pub const CONNECTIONS_CLOSED: &str = "tickgate_connections_closed_total";
pub const CONNECTIONS_REFUSED: &str = "tickgate_connections_refused_total";
pub const SUBSCRIPTIONS: &str = "tickgate_subscriptions";
pub const SYMBOLS: &str = "tickgate_symbols";
pub const TICKS_RECEIVED: &str = "tickgate_ticks_received_total";
pub const TICKS_REJECTED: &str = "tickgate_ticks_rejected_total";
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
            tickgate_feeds::metrics::describe();
            register_core_series();
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "revision" => option_env!("TICKGATE_GIT_REVISION").unwrap_or("unknown")).set(1.0);
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
    describe_counter!(TICKS_REJECTED, "Ticks refused, by feed and reason.");
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
    metrics::gauge!(CONNECTIONS, "transport" => "ws").increment(0.0);
    metrics::gauge!(SUBSCRIPTIONS).increment(0.0);
    metrics::gauge!(SLOW_CONSUMERS).increment(0.0);
    metrics::gauge!(SLOWED_CONNECTIONS).increment(0.0);
    for step in ["slowed", "restored", "closed"] {
        metrics::counter!(SLOW_CONSUMER_STEPS, "step" => step).increment(0);
    }
    metrics::counter!(TRADES_SENT).increment(0);
    metrics::counter!(TRADES_LOST).increment(0);
    for counter in [UPDATES_SENT, FRAMES_SENT, BYTES_SENT, UPDATES_CONFLATED] {
        metrics::counter!(counter).increment(0);
    }
    metrics::counter!(CONNECTIONS_OPENED, "transport" => "ws").increment(0);
    metrics::counter!(RATE_LIMITED).increment(0);
}

/// Samples what is only known by walking state: slow consumers, per-connection
/// buffered bytes, process figures. Called on every scrape.
pub fn observe(
    connections: &crate::registry::Connections,
    feeds: &crate::board::FeedBoard,
    config: &crate::config::Config,
) {
    let threshold = std::time::Duration::from_millis(config.connection.slow_consumer_ms);
    let now = std::time::Instant::now();
    let queue = metrics::histogram!(WRITE_QUEUE_BYTES);
    let mut slow = 0u64;
    let mut slowed = 0u64;
    for mailbox in connections.all() {
        if mailbox
            .stats
            .blocked_for(now)
            .is_some_and(|d| d >= threshold)
        {
            slow += 1;
        }
        if mailbox
            .stats
            .ladder_level
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            slowed += 1;
        }
        queue.record(mailbox.stats.inflight_bytes() as f64);
    }
    metrics::gauge!(SLOW_CONSUMERS).set(slow as f64);
    metrics::gauge!(SLOWED_CONNECTIONS).set(slowed as f64);
    feeds.publish_gauges();
    observe_process();
}

/// Linux process figures from /proc; silently absent elsewhere.
fn observe_process() {
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
                metrics::counter!(PROCESS_CPU).absolute(((utime + stime) / TICKS) as u64);
            }
            if let Some(threads) = field(20) {
                metrics::gauge!(PROCESS_THREADS).set(threads);
            }
            if let Some(vsize) = field(23) {
                metrics::gauge!(PROCESS_VIRTUAL_MEMORY).set(vsize);
            }
            if let Some(rss) = field(24) {
                metrics::gauge!(PROCESS_RESIDENT_MEMORY).set(rss * PAGE);
            }
            if let (Some(start), Some(boot)) = (field(22), boot_time()) {
                metrics::gauge!(PROCESS_START_TIME).set(boot + start / TICKS);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            metrics::gauge!(PROCESS_OPEN_FDS).set(dir.count() as f64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits")
            && let Some(line) = limits.lines().find(|l| l.starts_with("Max open files"))
            && let Some(soft) = line
                .split_whitespace()
                .nth(3)
                .and_then(|v| v.parse::<f64>().ok())
        {
            metrics::gauge!(PROCESS_MAX_FDS).set(soft);
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
