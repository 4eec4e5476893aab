//! What every task of a running gateway shares: configuration, the snapshot
//! store, feed status and the shutdown signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::ingest::FeedBoard;
use crate::outbox::ConnId;
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
    draining: AtomicBool,
    next_connection: AtomicU64,
}

impl AppState {
    /// Fresh state for `config`.
    pub fn new(config: Config) -> Self {
        Self {
            store: SnapshotStore::new(config.limits.max_symbols),
            feeds: FeedBoard::default(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            connection_slots: Arc::new(Semaphore::new(config.limits.max_connections)),
            draining: AtomicBool::new(false),
            next_connection: AtomicU64::new(1),
            config,
        }
    }

    /// A new connection id.
    pub fn next_connection_id(&self) -> ConnId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks the gateway as draining: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Why the gateway is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.is_draining() {
            return Some("draining");
        }
        if self.store.ticks_applied() == 0 {
            return Some("no data received from any feed yet");
        }
        None
    }
}
