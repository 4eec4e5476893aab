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

// The submodules below inherit the allowance above: they are this module.
mod describe;
mod names;
mod process;
mod record;
mod register;

use std::sync::OnceLock;

use metrics::gauge;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use self::names::*;
pub use self::process::observe_process;
pub use self::record::*;
pub use self::register::{register_auth_key_reloads, register_feeds, register_tls};

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
