//! The open client connections: each one's mailbox (for introspection,
//! feed-status notices and rebalancing), their count, and the drain
//! schedule that spreads closes over the drain window when the gateway
//! stops. Connections register here when they open and leave when they
//! close; nothing else owns this state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::fanout::{ConnId, Mailbox};

/// Every open connection. Cheap to share: hand an `Arc<Connections>` to
/// whoever needs it.
#[derive(Default)]
pub struct Connections {
    open: Mutex<FxHashMap<ConnId, Arc<Mailbox>>>,
    count: AtomicU64,
    next_id: AtomicU64,
    draining: AtomicBool,
    /// Connections open when draining started, and how many have taken a
    /// place in the close schedule so far.
    drain_population: AtomicU64,
    drain_position: AtomicU64,
}

impl Connections {
    /// A new connection id (never 0, never reused).
    pub fn next_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers an open connection.
    pub fn opened(&self, mailbox: &Arc<Mailbox>) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.lock().insert(mailbox.id, Arc::clone(mailbox));
    }

    /// Forgets a closed connection.
    pub fn closed(&self, id: ConnId) {
        if self.lock().remove(&id).is_some() {
            self.count.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Every open connection's mailbox.
    pub fn all(&self) -> Vec<Arc<Mailbox>> {
        self.lock().values().cloned().collect()
    }

    /// The mailbox of connection `id`, if it is open.
    pub fn get(&self, id: ConnId) -> Option<Arc<Mailbox>> {
        self.lock().get(&id).cloned()
    }

    /// Open client connections.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Starts draining (once): from now on [`Connections::is_draining`] is
    /// true and each connection takes its place in the close schedule.
    /// Returns whether this call started it.
    pub fn start_draining(&self) -> bool {
        if self.draining.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.drain_population
            .store(self.count().max(1), Ordering::SeqCst);
        true
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// When, after draining started, the next connection to ask should
    /// close: `window` divided evenly among the connections open at the
    /// time, in the order they ask.
    pub fn drain_delay(&self, window: Duration) -> Duration {
        let population = self.drain_population.load(Ordering::SeqCst).max(1);
        let position = self
            .drain_position
            .fetch_add(1, Ordering::SeqCst)
            .min(population - 1);
        window.mul_f64(position as f64 / population as f64)
    }

    fn lock(&self) -> MutexGuard<'_, FxHashMap<ConnId, Arc<Mailbox>>> {
        // Plain data: a panic elsewhere leaves it consistent.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn mailbox(connections: &Connections) -> Arc<Mailbox> {
        Arc::new(Mailbox::new(connections.next_id(), 8, Instant::now()))
    }

    #[test]
    fn connections_are_counted_once_each() {
        let connections = Connections::default();
        let (a, b) = (mailbox(&connections), mailbox(&connections));
        assert_ne!(a.id, b.id);
        connections.opened(&a);
        connections.opened(&b);
        assert_eq!(connections.count(), 2);
        connections.closed(a.id);
        connections.closed(a.id);
        assert_eq!(connections.count(), 1);
        assert!(connections.get(a.id).is_none());
        assert_eq!(connections.all().len(), 1);
    }

    #[test]
    fn the_drain_window_is_shared_evenly_among_open_connections() {
        let connections = Connections::default();
        for _ in 0..4 {
            connections.opened(&mailbox(&connections));
        }
        assert!(connections.start_draining());
        assert!(!connections.start_draining());
        let window = Duration::from_secs(4);
        let delays: Vec<_> = (0..5).map(|_| connections.drain_delay(window)).collect();
        assert_eq!(
            delays,
            [0, 1, 2, 3, 3].map(Duration::from_secs).to_vec(),
            "a late asker gets the last place, never beyond the window"
        );
    }
}
