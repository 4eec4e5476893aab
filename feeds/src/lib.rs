//! tickgate-feeds: the normalized market-data model and the upstream feed
//! adapters that produce it.
//!
//! Adapters turn upstream messages into [`Tick`]s and hand them on in
//! [`TickBatch`]es over a bounded channel: when the gateway falls behind, the
//! adapter waits rather than buffering without limit. Nothing here knows about
//! clients.
//!
//! - [`model`]: `Symbol`, `Tick`, `Quote` and the merge rule.
//! - [`sim`]: the embedded simulator, the default feed.
//! - [`parse`]: what every parser shares — [`ParseError`] (its `kind()` is the
//!   `reason` label), the [`Decoded`](parse::Decoded) output, simd-json scratch.
//! - [`json`]: the generic ingest format (docs/feeds.md).
//! - [`venue`]: Polygon, Alpaca, Coinbase and Binance formats and handshakes.
//! - [`config`]: the `[[feeds]]` table ([`FeedConfig`]) and its validation.
//! - [`spec`]: `--feed SPEC` parsing into a [`FeedConfig`].
//! - [`transport`]: bounded line reading, WebSocket/TLS client connections.
//! - `runner`: connect, read, decode, filter, send; staleness and reconnects.
//! - [`failover`]: gates a backup feed on its primary's state.
//! - [`nats`]: the JetStream bus between `tickgate publish` and gateway
//!   replicas: subject scheme, wire format, and the `nats` feed.
//! - [`backoff`], [`telemetry`]: reconnect delays; every metric of the crate.
//!
//! Entry point: [`spawn_all`] starts every configured feed (wiring failover
//! gates); [`spawn`] starts one.

pub mod backoff;
pub mod config;
pub mod failover;
pub mod json;
pub mod model;
pub mod nats;
pub mod parse;
mod runner;
pub mod sim;
pub mod spec;
pub mod telemetry;
pub mod transport;
pub mod venue;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{FeedConfig, FeedConfigError, FeedKind, FeedPlan, SourcePlan, validate_all};
pub use model::{
    Cleared, Quote, Symbol, SymbolError, Tick, TickError, TickKind, TradingStatus, VenueEvent,
};
pub use parse::ParseError;
pub use spec::{FeedSpec, FeedSpecError};

/// Ticks from one feed, in the order the feed produced them.
#[derive(Debug, Clone)]
pub struct TickBatch {
    /// The configured feed name (a bounded metric label).
    pub feed: Arc<str>,
    pub ticks: Vec<Tick>,
}

/// Venue events (halts, resumptions, corrections, cancels) from one feed,
/// in the order the feed produced them. Sent after the [`TickBatch`] of the
/// ticks that preceded them, before the one of the ticks that followed.
#[derive(Debug, Clone)]
pub struct VenueBatch {
    /// The configured feed name.
    pub feed: Arc<str>,
    pub events: Vec<VenueEvent>,
}

/// What a feed hands the gateway: ticks, venue events, or a change of its
/// own state.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// Ticks in the order the feed produced them.
    Ticks(TickBatch),
    /// Halts, resumptions, trade corrections and cancels.
    Venue(VenueBatch),
    /// The feed's connection state changed.
    State { feed: Arc<str>, state: FeedState },
}

/// Where a feed stands, as reported to `/readyz`, metrics and clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedState {
    /// Connecting or reconnecting; no data yet on this connection.
    Connecting,
    /// Delivering data.
    Live,
    /// Connected but silent for longer than its staleness window.
    Stale,
    /// Disconnected; retrying with backoff.
    Down,
}

impl FeedState {
    /// Stable lowercase name used in status messages and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Stale => "stale",
            Self::Down => "down",
        }
    }
}

/// The bounded channel every feed writes into. A full channel makes the feed
/// wait: the gateway never buffers ticks without limit.
pub type FeedSender = tokio::sync::mpsc::Sender<FeedEvent>;

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Starts every feed in `configs`, wiring each `backup_for` feed through a
/// [`failover`] gate in front of its primary. Everything is validated (and
/// TLS set up) before anything starts; every problem is returned at once.
pub fn spawn_all(
    configs: &[FeedConfig],
    sink: FeedSender,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), Vec<FeedConfigError>> {
    let plans = config::validate_all(configs)?;
    let prepared = prepare_all(plans)?;
    let mut gates: HashMap<Arc<str>, failover::Failover> = HashMap::new();
    for (plan, _) in &prepared {
        if let Some(primary) = &plan.backup_for {
            gates.entry(Arc::clone(primary)).or_insert_with(|| {
                failover::failover(Arc::clone(primary), sink.clone(), shutdown.clone(), tracker)
            });
        }
    }
    for (plan, tls) in prepared {
        let sender = match (&plan.backup_for, gates.get(&plan.name)) {
            (Some(primary), _) => gates.get(primary).map(|g| g.backup.clone()),
            (None, Some(gate)) => Some(gate.primary.clone()),
            (None, None) => None,
        }
        .unwrap_or_else(|| sink.clone());
        start(plan, tls, sender, shutdown.clone(), tracker);
    }
    Ok(())
}

/// Starts one feed straight into `sink` (a `backup_for` setting is not
/// wired here: use [`spawn_all`] or [`failover::failover`]).
pub fn spawn(
    config: &FeedConfig,
    sink: FeedSender,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), Vec<FeedConfigError>> {
    let plan = config.validate()?;
    for (plan, tls) in prepare_all(vec![plan])? {
        start(plan, tls, sink.clone(), shutdown.clone(), tracker);
    }
    Ok(())
}

type TlsConfig = Option<Arc<rustls::ClientConfig>>;

/// Builds the TLS client config of every `wss://` feed.
fn prepare_all(plans: Vec<FeedPlan>) -> Result<Vec<(FeedPlan, TlsConfig)>, Vec<FeedConfigError>> {
    let mut errors = Vec::new();
    let mut prepared = Vec::new();
    for plan in plans {
        let tls = match &plan.source {
            SourcePlan::Ws { url, ca_file, .. } if url.scheme_str() == Some("wss") => {
                match transport::tls_client_config(ca_file.as_deref()) {
                    Ok(config) => Some(config),
                    Err(error) => {
                        errors.push(FeedConfigError::Invalid {
                            feed: plan.name.to_string(),
                            key: "ca_file",
                            problem: error.to_string(),
                        });
                        None
                    }
                }
            }
            _ => None,
        };
        prepared.push((plan, tls));
    }
    if errors.is_empty() {
        Ok(prepared)
    } else {
        Err(errors)
    }
}

fn start(
    plan: FeedPlan,
    tls: TlsConfig,
    sink: FeedSender,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    match plan.source.clone() {
        SourcePlan::Sim(sim_config) => {
            let simulator = sim::Simulator::new(sim_config);
            if plan.filter.is_empty() && plan.prefix.is_none() {
                tracker.spawn(simulator.run(Arc::clone(&plan.name), sink, shutdown));
                return;
            }
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            tracker.spawn(simulator.run(Arc::clone(&plan.name), tx, shutdown.clone()));
            let pipeline = runner::Pipeline::new(&plan, None, sink, shutdown);
            tracker.spawn(runner::run_forwarded(rx, pipeline));
        }
        SourcePlan::Tcp { address, format } => {
            let pipeline = runner::Pipeline::new(&plan, format, sink, shutdown);
            let endpoint = runner::Endpoint::Tcp { address };
            tracker.spawn(runner::run_connected(plan, endpoint, pipeline));
        }
        SourcePlan::Ws {
            url,
            handshake,
            format,
            ..
        } => {
            let pipeline = runner::Pipeline::new(&plan, format, sink, shutdown);
            let endpoint = runner::Endpoint::Ws {
                url,
                handshake,
                tls,
            };
            tracker.spawn(runner::run_connected(plan, endpoint, pipeline));
        }
        SourcePlan::Replay {
            path,
            speed,
            looped,
            restamp,
            format,
        } => {
            let pipeline = runner::Pipeline::new(&plan, format, sink, shutdown);
            let replay = runner::Replay {
                path,
                speed,
                looped,
                restamp,
            };
            tracker.spawn(runner::run_replay(plan, replay, pipeline));
        }
        SourcePlan::Nats(nats_plan) => {
            let pipeline = runner::Pipeline::new(&plan, None, sink, shutdown);
            tracker.spawn(nats::run(plan, nats_plan, pipeline));
        }
    }
}
