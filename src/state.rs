//! What every task of a running gateway shares: configuration, the snapshot
//! store, feed status and the shutdown signal.

use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::ingest::FeedBoard;
use crate::outbox::{ConnId, Mailbox};
use crate::store::SnapshotStore;

/// Shared by the servers, connections and the ingest task.
pub struct AppState {
    pub config: Config,
    pub store: SnapshotStore,
    pub feeds: FeedBoard,
    /// Cancelled when the gateway stops: listeners stop accepting and
    /// connections close with 1001.
    pub shutdown: CancellationToken,
    /// Every spawned task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// One permit per open client connection (`limits.max_connections`).
    pub connection_slots: Arc<Semaphore>,
    /// Cancelled when draining starts: listeners stop accepting and each
    /// connection schedules its close within the drain window.
    pub drain: CancellationToken,
    /// Connections open when draining started, and how many have taken a
    /// place in the close schedule so far.
    drain_population: AtomicU64,
    drain_position: AtomicU64,
    open_connections: AtomicU64,
    /// Every open connection's mailbox, for metrics and introspection.
    connections: Mutex<FxHashMap<ConnId, Arc<Mailbox>>>,
    draining: AtomicBool,
    next_connection: AtomicU64,
    /// Token verification; `None` when `auth.mode = "off"`.
    pub authenticator: Option<Authenticator>,
    /// Open connections per client IP (`limits.max_connections_per_ip`).
    pub ip_slots: crate::limits::IpSlots,
}

impl AppState {
    /// Fresh state for `config`.
    pub fn new(config: Config) -> Self {
        Self {
            store: SnapshotStore::new(config.limits.max_symbols.get()),
            feeds: FeedBoard::default(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            connection_slots: Arc::new(Semaphore::new(config.limits.max_connections.get())),
            drain: CancellationToken::new(),
            drain_population: AtomicU64::new(0),
            drain_position: AtomicU64::new(0),
            open_connections: AtomicU64::new(0),
            connections: Mutex::new(FxHashMap::default()),
            draining: AtomicBool::new(false),
            next_connection: AtomicU64::new(1),
            authenticator: None,
            ip_slots: crate::limits::IpSlots::default(),
            config,
        }
    }

    /// Verifies client tokens with `authenticator` (`None`: auth off).
    pub fn with_authenticator(mut self, authenticator: Option<Authenticator>) -> Self {
        self.authenticator = authenticator;
        self
    }

    /// A new connection id.
    pub fn next_connection_id(&self) -> ConnId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Starts draining: `/readyz` answers 503 from now on, listeners stop
    /// accepting, connections schedule their close.
    pub fn start_draining(&self) {
        if !self.draining.swap(true, Ordering::SeqCst) {
            self.drain_population.store(
                self.open_connections.load(Ordering::SeqCst).max(1),
                Ordering::SeqCst,
            );
            self.drain.cancel();
        }
    }

    /// When, after draining started, this connection should close: the
    /// drain window divided evenly among the connections open at the time.
    pub fn drain_delay(&self) -> std::time::Duration {
        let window = self.config.shutdown.drain_window;
        let population = self.drain_population.load(Ordering::SeqCst).max(1);
        let position = self
            .drain_position
            .fetch_add(1, Ordering::SeqCst)
            .min(population - 1);
        window.mul_f64(position as f64 / population as f64)
    }

    /// Registers an open connection.
    pub fn connection_opened(&self, mailbox: &Arc<Mailbox>) {
        self.open_connections.fetch_add(1, Ordering::SeqCst);
        self.registry().insert(mailbox.id, Arc::clone(mailbox));
    }

    /// Forgets a closed connection.
    pub fn connection_closed(&self, id: ConnId) {
        self.open_connections.fetch_sub(1, Ordering::SeqCst);
        self.registry().remove(&id);
    }

    /// Every open connection's mailbox.
    pub fn connections(&self) -> Vec<Arc<Mailbox>> {
        self.registry().values().cloned().collect()
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, FxHashMap<ConnId, Arc<Mailbox>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open client connections.
    pub fn open_connections(&self) -> u64 {
        self.open_connections.load(Ordering::SeqCst)
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Why the gateway is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.is_draining() {
            return Some("draining".into());
        }
        if let Some(feed) = self.feeds.not_ready() {
            return Some(feed);
        }
        if self.store.ticks_applied() == 0 {
            return Some("no data received from any feed yet".into());
        }
        None
    }
}
