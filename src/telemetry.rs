//! Every metric of the gateway and of `tickgate publish`: its name (once, as
//! a constant), its HELP text, the Prometheus recorder, and the small
//! recording functions the rest of the gateway calls (`telemetry::connection_opened(transport)`,
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

// The submodules below inherit the allowance above: they are this module.
mod describe;
mod process;
mod record;
mod register;

use std::sync::OnceLock;

use metrics::gauge;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
pub use tickgate_feeds::telemetry::TICKS_REJECTED;

pub use self::process::observe_process;
pub use self::record::*;
pub use self::register::{register_auth_key_reloads, register_feeds, register_tls};

pub const CONNECTIONS: &str = "tickgate_connections";
pub const CONNECTIONS_OPENED: &str = "tickgate_connections_opened_total";
pub const CONNECTIONS_CLOSED: &str = "tickgate_connections_closed_total";
pub const CONNECTIONS_REFUSED: &str = "tickgate_connections_refused_total";
pub const SUBSCRIPTIONS: &str = "tickgate_subscriptions";
pub const SYMBOLS: &str = "tickgate_symbols";
/// Gauge: distinct symbols clients wait for that no feed has published.
pub const INTEREST_SYMBOLS: &str = "tickgate_interest_symbols";
/// Counter: requested symbols refused, by `reason` ([`SYMBOL_REFUSE_REASONS`]).
pub const SYMBOLS_REFUSED: &str = "tickgate_symbols_refused_total";
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
/// Counter: `status` messages sent on a freshness transition, by `state`.
pub const STATUS_MESSAGES: &str = "tickgate_status_messages_total";
/// The `state` label of [`STATUS_MESSAGES`], a closed set.
pub const STATUS_STATES: [&str; 3] = ["live", "stale", "down"];
/// Venue events (halts, resumptions, trade corrections and cancels), by
/// `kind` and `outcome` ([`crate::fanout::VENUE_EVENT_KINDS`],
/// [`crate::fanout::VENUE_EVENT_OUTCOMES`]).
pub const VENUE_EVENTS: &str = "tickgate_venue_events_total";
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
// `tickgate publish`, recorded in its own process (docs/nats.md).
/// Counter: quotes acknowledged by JetStream.
pub const PUBLISH_QUOTES: &str = "tickgate_publish_quotes_total";
/// Counter: pending quotes replaced by a newer quote of the same symbol
/// before they were published (conflation; grows while NATS is away).
pub const PUBLISH_SUPERSEDED: &str = "tickgate_publish_superseded_total";
/// Counter: publishes that failed (`reason`: `send`, `ack`); the symbol
/// stays pending and its latest quote is retried.
pub const PUBLISH_FAILURES: &str = "tickgate_publish_failures_total";
/// Gauge: symbols whose latest quote is not yet acknowledged.
pub const PUBLISH_PENDING: &str = "tickgate_publish_pending_symbols";
/// Gauge: symbols in the publisher's quote map (loaded from the stream or
/// seen on a feed).
pub const PUBLISH_SYMBOLS: &str = "tickgate_publish_symbols";
/// Gauge: 1 while the publisher is connected to NATS.
pub const NATS_CONNECTED: &str = "tickgate_nats_connected";
/// Gauge: 1 while this publisher publishes (holds the lease when
/// `publish.lease` is on), 0 while it stands by.
pub const PUBLISH_ACTIVE: &str = "tickgate_publish_active";

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

/// Every `reason` of `tickgate_symbols_refused_total`: malformed, not
/// covered by the token, over the connection's subscription limit, new
/// while `limits.max_interest` symbols are already waited for, or in a
/// request past the connection's symbol budget.
pub const SYMBOL_REFUSE_REASONS: [&str; 5] = [
    "invalid",
    "not_entitled",
    "over_limit",
    "interest_full",
    "symbol_budget",
];

/// Every `reason` of `tickgate_connections_refused_total`: the admission
/// checks, then `server::handshake::HandshakeError::kind` and the request
/// head limit.
pub const REFUSE_REASONS: [&str; 12] = [
    "max_connections",
    "draining",
    "max_connections_per_ip",
    "origin",
    "unauthorized",
    "method",
    "http_version",
    "missing_host",
    "not_websocket",
    "websocket_version",
    "bad_key",
    "request_head_too_large",
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
/// own, [`tickgate_feeds::telemetry::REJECT_REASONS`]): the closed set the
/// fan-out step reports its refusals in.
pub use crate::fanout::REJECT_REASONS as GATEWAY_REJECT_REASONS;

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
            describe::describe();
            tickgate_feeds::telemetry::describe();
            register::register_core_series();
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "revision" => option_env!("TICKGATE_GIT_REVISION").unwrap_or("unknown")).set(1.0);
            handle
        })
        .clone()
}
