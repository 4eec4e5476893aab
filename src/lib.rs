//! tickgate: a market-data fan-out gateway.
//!
//! Data flows one way through the modules:
//!
//! ```text
//! feeds (tickgate-feeds) ─► ingest ─► store ─► subscriptions ─► outbox ─► connection ─► server
//! ```
//!
//! - [`ingest`]: the single writer of the store; validates ticks, merges
//!   them, marks touched symbols dirty on their subscribers.
//! - [`store`]: latest quote per symbol behind arc-swap, with its JSON
//!   encoded once per tick.
//! - [`subscriptions`]: symbol → interested connections, and the subscribe
//!   rules that keep "snapshot before update" true.
//! - [`outbox`]: per-connection conflation; at most one pending entry per
//!   subscribed symbol.
//! - [`connection`]: one WebSocket: a reader for requests and a writer that
//!   drains the outbox into one frame per wake-up.
//! - [`protocol`]: the client protocol codec, pure.
//! - [`server`]: HTTP on the client and admin listeners, the `/ws` upgrade.
//! - [`watch`]: the `tickgate watch` command-line subscriber.
//! - [`tls`]: the `wss` listener in front of the same service: rustls,
//!   certificate reload, mutual TLS, `tickgate dev-cert`.
//! - [`auth`], [`limits`]: JWT verification and symbol entitlements; the
//!   request rate, per-IP and `Origin` limits checked at the upgrade and on
//!   every client frame (docs/security.md).
//! - [`config`], [`telemetry`], [`shutdown`], [`state`]: settings, every
//!   metric (names, HELP, recording), signals, shared state.
//! - [`loadtest`]: the `tickgate loadtest` client (not used by the gateway).
//! - [`publish`]: the `tickgate publish` role: feeds in, one quote per
//!   symbol out to a NATS JetStream stream that gateway replicas load.

pub mod admin;
pub mod auth;
pub mod config;
pub mod connection;
pub mod ingest;
pub mod ladder;
pub mod limits;
// A client program, not part of the gateway: its plain generator threads
// sleep, and its own runtime's tasks end with the run.
#[allow(clippy::disallowed_methods)]
pub mod loadtest;
pub mod outbox;
pub mod protocol;
// The `publish` role runs in its own process with its own recorder and
// metrics (docs/metrics.md, "NATS scale-out"); it does not share the
// gateway's telemetry module or task tracker yet.
#[allow(clippy::disallowed_macros, clippy::disallowed_methods)]
pub mod publish;
mod reload;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod subscriptions;
pub mod telemetry;
pub mod tls;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tickgate_feeds::FeedSender;
use tickgate_feeds::sim::{SimConfig, Simulator};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::server::Listener;
use crate::state::AppState;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A feed cannot be started (a TLS CA file, a handshake, a setting).
    #[error("cannot start feeds: {0}")]
    Feeds(String),
    /// The TLS certificate, key or client CA bundle cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The `[auth]` keys cannot be read or parsed.
    #[error(transparent)]
    Auth(#[from] auth::KeyError),
    /// The directory of a key file cannot be watched for changes.
    #[error("cannot watch {} for JWT key changes: {reason} (set auth.watch = false to rely on SIGHUP)", path.display())]
    Watch {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// Which feeds a gateway starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedSetup {
    /// The `[[feeds]]` of the configuration, or the `[simulator]` feed when
    /// none are configured (the default).
    Configured,
    /// None: ticks arrive only through [`Gateway::feed_sender`].
    External,
}

/// A running gateway. Dropping it does not stop it; call
/// [`Gateway::shutdown`].
pub struct Gateway {
    state: Arc<AppState>,
    client_addr: SocketAddr,
    admin_addr: SocketAddr,
    tls: Option<(Arc<tls::TlsServer>, SocketAddr)>,
    feed_tx: FeedSender,
}

impl Gateway {
    /// Binds both listeners and starts serving. Listening begins before any
    /// feed has delivered data; `/readyz` says when data flows.
    pub async fn start(config: Config, feeds: FeedSetup) -> Result<Self, StartError> {
        let metrics = telemetry::install();
        // Keys before anything listens: a gateway that must authenticate
        // never serves without them.
        let authenticator = auth::Authenticator::from_config(&config.auth)?;
        // TLS files first: a bad certificate fails start-up before anything listens.
        let tls_server = match config.tls.listen_addr() {
            Some(addr) => Some((Arc::new(tls::TlsServer::new(&config.tls)?), addr)),
            None => None,
        };
        let client = bind("client", config.server.listen).await?;
        let admin = bind("admin", config.server.admin_listen).await?;
        let client_addr = client.local_addr().map_err(|source| StartError::Bind {
            listener: "client",
            addr: config.server.listen,
            source,
        })?;
        let admin_addr = admin.local_addr().map_err(|source| StartError::Bind {
            listener: "admin",
            addr: config.server.admin_listen,
            source,
        })?;
        let tls_listener = match tls_server {
            Some((server, addr)) => {
                let listener = bind("tls", addr).await?;
                let local = listener.local_addr().map_err(|source| StartError::Bind {
                    listener: "tls",
                    addr,
                    source,
                })?;
                Some((server, listener, local))
            }
            None => None,
        };
        let state = Arc::new(AppState::new(config).with_authenticator(authenticator));
        register_series(&state, feeds, tls_listener.is_some());
        let (feed_tx, feed_rx) = mpsc::channel(ingest::FEED_QUEUE);
        state
            .tracker
            .spawn(ingest::run(Arc::clone(&state), feed_rx));
        state.tracker.spawn(server::accept_loop(
            client,
            Listener::Client { transport: "ws" },
            Arc::clone(&state),
            metrics.clone(),
        ));
        state.tracker.spawn(server::accept_loop(
            admin,
            Listener::Admin,
            Arc::clone(&state),
            metrics.clone(),
        ));
        let tls = match tls_listener {
            Some((server, listener, local)) => {
                if let Err(error) = tls::spawn_reloaders(&server, state.config.tls.watch, &state) {
                    state.drain.cancel();
                    state.shutdown.cancel();
                    return Err(error.into());
                }
                state.tracker.spawn(Arc::clone(&server).accept_loop(
                    listener,
                    Arc::clone(&state),
                    metrics.clone(),
                ));
                Some((server, local))
            }
            None => None,
        };
        if let Some(authenticator) = &state.authenticator {
            let files = authenticator.key_files();
            if !files.is_empty() {
                if state.config.auth.watch {
                    let watched = Arc::clone(&state);
                    reload::watch_directories(
                        &files,
                        "JWT keys",
                        &state,
                        Arc::new(move || {
                            if let Some(auth) = &watched.authenticator {
                                auth.reload_if_changed();
                            }
                        }),
                    )
                    .map_err(|(path, error)| StartError::Watch {
                        path,
                        reason: error.to_string(),
                    })?;
                }
                let signalled = Arc::clone(&state);
                reload::on_sighup(
                    "JWT keys",
                    &state,
                    Arc::new(move || {
                        if let Some(auth) = &signalled.authenticator {
                            let _ = auth.reload();
                        }
                    }),
                );
            }
        }
        state.tracker.spawn(publish_feed_gauges(Arc::clone(&state)));
        state
            .tracker
            .spawn(metrics_upkeep(Arc::clone(&state), metrics.clone()));
        state.tracker.spawn(admin::rebalance(Arc::clone(&state)));
        if feeds == FeedSetup::Configured {
            start_feeds(&state, &feed_tx)?;
        }
        Ok(Self {
            state,
            client_addr,
            admin_addr,
            tls,
            feed_tx,
        })
    }

    /// Address of the client listener (`/ws`, `/`).
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Address of the TLS (`wss`) listener, when TLS is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|(_, addr)| *addr)
    }

    /// The TLS listener's certificate store, when TLS is configured:
    /// [`tls::TlsServer::reload`] is what SIGHUP does.
    pub fn tls(&self) -> Option<&Arc<tls::TlsServer>> {
        self.tls.as_ref().map(|(server, _)| server)
    }

    /// A sender for feeding ticks in directly (embedding, tests).
    pub fn feed_sender(&self) -> FeedSender {
        self.feed_tx.clone()
    }

    /// The shared state, for introspection.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Drains and stops: `/readyz` turns 503 and the listeners stop accepting
    /// at once; clients are closed with 1001 spread over
    /// `shutdown.drain_window_ms`; then every task gets `grace_period` to
    /// finish. Returns whether they all did.
    pub async fn shutdown(self, grace_period: Duration) -> bool {
        self.state.start_draining();
        let window = self.state.config.shutdown.drain_window;
        let drain_end = tokio::time::Instant::now() + window;
        while self.state.open_connections() > 0 && tokio::time::Instant::now() < drain_end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.state.shutdown.cancel();
        self.state.tracker.close();
        drop(self.feed_tx);
        tokio::time::timeout(grace_period, self.state.tracker.wait())
            .await
            .is_ok()
    }
}

/// Starts the configured feeds, or the simulator when there are none.
fn start_feeds(state: &Arc<AppState>, feed_tx: &FeedSender) -> Result<(), StartError> {
    let configs = &state.config.feeds;
    if configs.is_empty() {
        let sim = &state.config.simulator;
        let simulator = Simulator::new(SimConfig {
            ticks_per_second: sim.ticks_per_second,
            seed: sim.seed,
            symbols: sim.symbols,
            bursts: sim.bursts,
        });
        state.feeds.expect(&[("sim".into(), false)]);
        state
            .tracker
            .spawn(simulator.run("sim".into(), feed_tx.clone(), state.shutdown.clone()));
        return Ok(());
    }
    let expected: Vec<(Arc<str>, bool)> = configs
        .iter()
        .map(|c| (Arc::from(c.name.as_str()), c.required))
        .collect();
    state.feeds.expect(&expected);
    tickgate_feeds::spawn_all(
        configs,
        feed_tx.clone(),
        state.shutdown.clone(),
        &state.tracker,
    )
    .map_err(|errors| {
        StartError::Feeds(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Exports the series of this gateway's feeds and listeners at zero, so
/// alerts see 0 rather than no data before the first event.
fn register_series(state: &AppState, feeds: FeedSetup, tls: bool) {
    let config = &state.config;
    if config.feeds.is_empty() {
        if feeds == FeedSetup::Configured {
            telemetry::register_feeds(["sim"]);
        }
    } else {
        telemetry::register_feeds(config.feeds.iter().map(|feed| feed.name.as_str()));
    }
    if tls {
        telemetry::register_tls();
    }
    if let Some(authenticator) = &state.authenticator
        && !authenticator.key_files().is_empty()
    {
        telemetry::register_auth_key_reloads();
    }
}

/// Pending connections the kernel queues per listener, as asked; the kernel
/// caps it at `net.core.somaxconn` (4096 by default). A reconnect storm of
/// thousands of clients overflows a short queue, and a dropped SYN is
/// retried only after 1 s and 3 s, so asking for more lets an operator who
/// raises `somaxconn` get it without a new build.
const LISTEN_BACKLOG: u32 = 65_535;

async fn bind(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    bind().map_err(|source| StartError::Bind {
        listener,
        addr,
        source,
    })
}

/// Folds the histogram samples recorded since the last pass into their
/// buckets. The recorder keeps every sample until then (or until a scrape),
/// so a gateway nobody scrapes grew by megabytes a minute under load.
async fn metrics_upkeep(
    state: Arc<AppState>,
    handle: metrics_exporter_prometheus::PrometheusHandle,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = every.tick() => handle.run_upkeep(),
        }
    }
}

async fn publish_feed_gauges(state: Arc<AppState>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = every.tick() => state.feeds.publish_gauges(),
        }
    }
}
