//! tickgate: a market-data fan-out gateway.
//!
//! The modules are the pipeline, each the one owner of its state
//! (docs/architecture.md):
//!
//! ```text
//! feeds (tickgate-feeds) ─► ingest ─► fanout (store · subscriptions · outbox) ─► connection ─► server
//!                                                                     ▲             │
//!                                                                     └── session ◄─┘
//! ```
//!
//! - [`ingest`]: the async shell around the fan-out core: applies feed
//!   batches, counts them once per batch, keeps the feed [`board`] and
//!   announces feed states to clients as [`freshness`] decides: one pure
//!   state machine for feed states, which feed serves each symbol, what
//!   clients were told and the replica's first readiness.
//! - [`fanout`]: the pure core: the snapshot store (latest quote per
//!   symbol, JSON encoded once), symbol → subscribers, and per-connection
//!   conflation (at most one pending entry per subscribed symbol). No
//!   `async`, no clock reads, no metrics calls.
//! - [`session`]: everything a connection decides (requests, entitlements,
//!   limits, auth refresh, close decisions), synchronous and without a
//!   socket: a frame and the time in, replies in the mailbox, a close out.
//! - [`connection`]: the driver of one WebSocket: a reader that hands
//!   frames to its session and a writer that drains the outbox into one
//!   frame per wake-up; [`ladder`] decides when a stuck writer is slowed.
//! - [`registry`]: the open connections and the drain schedule.
//! - [`protocol`]: the client wire format, pure.
//! - [`server`]: HTTP on the client and admin listeners, the `/ws` upgrade
//!   and its admission checks; [`admin`] answers the introspection routes.
//! - [`tls`]: the `wss` listener in front of the same service: rustls,
//!   certificate reload, mutual TLS, `tickgate dev-cert`.
//! - [`auth`], [`limits`]: JWT verification and symbol entitlements; the
//!   request rate, per-IP and `Origin` limits checked at the upgrade and on
//!   every client frame (docs/security.md).
//! - [`config`], [`telemetry`], [`shutdown`]: typed settings; every
//!   metric (names, HELP, recording); the two-phase stop every task is
//!   spawned through.
//! - [`publish`]: the `tickgate publish` role: feeds in, one quote per
//!   symbol out to a NATS JetStream stream that gateway replicas load.
//!
//! [`Gateway::start`] creates each owner and hands every task the handles
//! it needs.

pub mod admin;
pub mod auth;
pub mod board;
pub mod config;
pub mod connection;
pub mod fanout;
pub mod freshness;
pub mod ingest;
pub mod ladder;
pub mod limits;
pub mod protocol;
// The `publish` role records through `telemetry` like the gateway, in its
// own process with its own recorder (docs/metrics.md, "NATS scale-out").
pub mod publish;
pub mod registry;
mod reload;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tickgate_feeds::FeedSender;
use tickgate_feeds::sim::{SimConfig, Simulator};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, mpsc};

use crate::board::FeedBoard;
use crate::config::Config;
use crate::fanout::SnapshotStore;
use crate::registry::Connections;
use crate::server::{Listener, Services};
use crate::shutdown::Shutdown;

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
    config: Arc<Config>,
    store: Arc<SnapshotStore>,
    connections: Arc<Connections>,
    shutdown: Shutdown,
    client_addr: SocketAddr,
    admin_addr: SocketAddr,
    tls: Option<(Arc<tls::TlsServer>, SocketAddr)>,
    feed_tx: FeedSender,
}

impl Gateway {
    /// Binds both listeners and starts serving. Listening begins before any
    /// feed has delivered data; `/readyz` says when data flows.
    ///
    /// Each piece of state has one owner created here, and each task gets
    /// the handles it needs: the ingest task is the store's only writer,
    /// connections register in the registry, and every task is spawned
    /// through the shutdown handle so that [`Gateway::shutdown`] can wait
    /// for it.
    pub async fn start(config: Config, feeds: FeedSetup) -> Result<Self, StartError> {
        let metrics = telemetry::install();
        // Keys before anything listens: a gateway that must authenticate
        // never serves without them.
        let auth = auth::Authenticator::from_config(&config.auth)?.map(Arc::new);
        // TLS files first: a bad certificate fails start-up before anything listens.
        let tls_server = match config.tls.listen_addr() {
            Some(addr) => Some((Arc::new(tls::TlsServer::new(&config.tls)?), addr)),
            None => None,
        };
        let client = bind("client", config.server.listen).await?;
        let admin = bind("admin", config.server.admin_listen).await?;
        let client_addr = local_addr("client", &client, config.server.listen)?;
        let admin_addr = local_addr("admin", &admin, config.server.admin_listen)?;
        let tls_listener = match tls_server {
            Some((server, addr)) => {
                let listener = bind("tls", addr).await?;
                let local = local_addr("tls", &listener, addr)?;
                Some((server, listener, local))
            }
            None => None,
        };

        let config = Arc::new(config);
        let shutdown = Shutdown::default();
        let store = Arc::new(
            SnapshotStore::new(config.limits.max_symbols.get())
                .with_epoch(epoch_for(&config, feeds)),
        );
        let board = Arc::new(FeedBoard::default());
        let connections = Arc::new(Connections::default());
        register_series(&config, auth.as_deref(), feeds, tls_listener.is_some());
        let services = Services {
            config: Arc::clone(&config),
            store: Arc::clone(&store),
            feeds: Arc::clone(&board),
            connections: Arc::clone(&connections),
            auth: auth.clone(),
            connection_slots: Arc::new(Semaphore::new(config.limits.max_connections.get())),
            ip_slots: Arc::new(limits::IpSlots::default()),
            shutdown: shutdown.clone(),
            metrics: metrics.clone(),
        };

        let (feed_tx, feed_rx) = mpsc::channel(ingest::FEED_QUEUE);
        let ingest = ingest::Ingest {
            store: Arc::clone(&store),
            feeds: Arc::clone(&board),
            connections: Arc::clone(&connections),
            shutdown: shutdown.clone(),
        };
        shutdown.spawn(ingest::run(ingest, feed_rx));
        shutdown.spawn(server::accept_loop(
            client,
            Listener::Client { transport: "ws" },
            services.clone(),
        ));
        shutdown.spawn(server::accept_loop(
            admin,
            Listener::Admin,
            services.clone(),
        ));
        let tls = match tls_listener {
            Some((server, listener, local)) => {
                if let Err(error) = tls::spawn_reloaders(&server, config.tls.watch, &shutdown) {
                    shutdown.stop();
                    return Err(error.into());
                }
                shutdown.spawn(Arc::clone(&server).accept_loop(listener, services));
                Some((server, local))
            }
            None => None,
        };
        if let Some(authenticator) = &auth {
            watch_auth_keys(authenticator, config.auth.watch, &shutdown)?;
        }
        shutdown.spawn(every_second(shutdown.clone(), {
            let board = Arc::clone(&board);
            move || board.publish_gauges(std::time::Instant::now())
        }));
        // The recorder keeps every histogram sample until it folds them into
        // buckets (at a scrape or here), so a gateway nobody scrapes grew by
        // megabytes a minute under load.
        shutdown.spawn(every_second(shutdown.clone(), move || metrics.run_upkeep()));
        shutdown.spawn(admin::rebalance(
            Arc::clone(&connections),
            config.rebalance.clone(),
            shutdown.clone(),
        ));
        if feeds == FeedSetup::Configured {
            start_feeds(&config, &board, &shutdown, &feed_tx)?;
        }
        Ok(Self {
            config,
            store,
            connections,
            shutdown,
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

    /// The snapshot store, for introspection (read-only use: the ingest
    /// task is its only writer).
    pub fn store(&self) -> &SnapshotStore {
        &self.store
    }

    /// The open client connections, for introspection.
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// Drains and stops: `/readyz` turns 503 and the listeners stop accepting
    /// at once; clients are closed with 1001 spread over
    /// `shutdown.drain_window_ms`; then every task gets `grace_period` to
    /// finish. Returns whether they all did.
    pub async fn shutdown(self, grace_period: Duration) -> bool {
        self.connections.start_draining();
        self.shutdown.begin_drain();
        let window = self.config.shutdown.drain_window;
        let drain_end = tokio::time::Instant::now() + window;
        while self.connections.count() > 0 && tokio::time::Instant::now() < drain_end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(self.feed_tx);
        self.shutdown.wait(grace_period).await
    }
}

/// Reloads the JWT keys when their files change (unless `watch` is off) and
/// on SIGHUP.
fn watch_auth_keys(
    authenticator: &Arc<auth::Authenticator>,
    watch: bool,
    shutdown: &Shutdown,
) -> Result<(), StartError> {
    let files = authenticator.key_files();
    if files.is_empty() {
        return Ok(());
    }
    if watch {
        let watched = Arc::clone(authenticator);
        reload::watch_directories(
            &files,
            "JWT keys",
            shutdown,
            Arc::new(move || watched.reload_if_changed()),
        )
        .map_err(|(path, error)| StartError::Watch {
            path,
            reason: error.to_string(),
        })?;
    }
    let signalled = Arc::clone(authenticator);
    reload::on_sighup(
        "JWT keys",
        shutdown,
        Arc::new(move || {
            let _ = signalled.reload();
        }),
    );
    Ok(())
}

/// Starts the configured feeds, or the simulator when there are none.
fn start_feeds(
    config: &Config,
    board: &FeedBoard,
    shutdown: &Shutdown,
    feed_tx: &FeedSender,
) -> Result<(), StartError> {
    let configs = &config.feeds;
    if configs.is_empty() {
        let sim = &config.simulator;
        let simulator = Simulator::new(SimConfig {
            ticks_per_second: sim.ticks_per_second,
            seed: sim.seed,
            symbols: sim.symbols,
            bursts: sim.bursts,
        });
        board.expect(&[("sim".into(), false)]);
        shutdown.spawn(simulator.run("sim".into(), feed_tx.clone(), shutdown.stop_token()));
        return Ok(());
    }
    let expected: Vec<(Arc<str>, bool)> = configs
        .iter()
        .map(|c| (Arc::from(c.name.as_str()), c.required))
        .collect();
    board.expect(&expected);
    tickgate_feeds::spawn_all(
        configs,
        feed_tx.clone(),
        shutdown.stop_token(),
        shutdown.tracker(),
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
fn register_series(
    config: &Config,
    auth: Option<&auth::Authenticator>,
    feeds: FeedSetup,
    tls: bool,
) {
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
    if let Some(authenticator) = auth
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

fn local_addr(
    listener: &'static str,
    bound: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    bound.local_addr().map_err(|source| StartError::Bind {
        listener,
        addr,
        source,
    })
}

/// Runs `job` once a second until the gateway stops.
async fn every_second(shutdown: Shutdown, job: impl Fn()) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.stopped() => return,
            _ = every.tick() => job(),
        }
    }
}

/// The gateway's epoch (docs/protocol.md, Epochs). A gateway fed only by
/// NATS feeds of one stream holds the publisher's seqs, the same on every
/// replica and after a restart: the stream names its epoch, so a resume can
/// move between replicas. Any other gateway counts seq from its own start
/// and takes a random epoch.
fn epoch_for(config: &Config, feeds: FeedSetup) -> String {
    let stream = |feed: &tickgate_feeds::config::FeedConfig| {
        (feed.kind == tickgate_feeds::config::FeedKind::Nats).then(|| {
            feed.nats.as_ref().map_or_else(
                || tickgate_feeds::config::NatsSettings::default().stream,
                |n| n.stream.clone(),
            )
        })
    };
    if feeds == FeedSetup::Configured && !config.feeds.is_empty() {
        let streams: Option<std::collections::BTreeSet<String>> =
            config.feeds.iter().map(stream).collect();
        if let Some(streams) = streams
            && streams.len() == 1
        {
            let stream = streams.into_iter().next().unwrap_or_default();
            return format!("nats:{stream}");
        }
    }
    random_epoch()
}

/// A fresh random epoch: 64 random bits as 16 hex digits. Every process
/// counts seq from its own start, so two processes must never share one.
fn random_epoch() -> String {
    // Without OS randomness, the start time in nanoseconds still differs
    // between processes on one host.
    let bits = getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos() as u64)
    });
    format!("{bits:016x}")
}
