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
pub const FEED_LAST_TICK_AGE: &str = "tickgate_feed_last_tick_age_seconds";
pub const BUILD_INFO: &str = "tickgate_build_info";
pub const TLS_HANDSHAKE_FAILURES: &str = "tickgate_tls_handshake_failures_total";
pub const TLS_RELOADS: &str = "tickgate_tls_reloads_total";
pub const TLS_CERTIFICATE_EXPIRY: &str = "tickgate_tls_certificate_expiry_timestamp_seconds";

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
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Someone else installed a recorder: keep a private one so
                // rendering still works.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            describe();
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
        FEED_LAST_TICK_AGE,
        Unit::Seconds,
        "Seconds since the feed's last tick, by feed."
    );
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "TLS handshakes that failed, by reason (timeout, protocol, certificate, io)."
    );
    describe_counter!(
        TLS_RELOADS,
        "TLS certificate reloads, by result (success, failure); a failure keeps the previous certificate."
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
}
