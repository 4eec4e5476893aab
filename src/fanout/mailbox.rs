//! The [`Outbox`] of one connection shared between the ingest task and the
//! connection, with the wake-ups both sides need and the connection's
//! counters. Nothing here awaits: waiting on the `Notify`s is the
//! connection's job.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use super::drain::{Drain, FeedLiveness};
use super::outbox::{ConnId, Outbox, SubIndex};
use super::store::SymbolId;

/// An [`Outbox`] shared between the ingest task and a connection, with the
/// wake-ups both sides need.
pub struct Mailbox {
    pub id: ConnId,
    outbox: Mutex<Outbox>,
    /// Wakes the writer: something was queued into an empty outbox.
    pub wake: Notify,
    /// Wakes the reader: the writer took the queued control frames.
    pub drained: Notify,
    /// What the connection is doing, for metrics and introspection.
    pub stats: ConnStats,
    /// Set when the gateway asks this connection to close (rebalancing, an
    /// operator via the admin API); the reason decides the close frame.
    kick: std::sync::OnceLock<Kick>,
    /// Notified once, when [`Mailbox::kick`] sets a reason.
    pub kicked: Notify,
    /// Messages written and acknowledged (`{"op":"ack"}`).
    pub acks: AckWindow,
}

/// The messages a connection wrote and those its client acknowledged
/// having read (*extension*, docs/protocol.md "Acknowledgements"). Once a
/// client acknowledges, the writer keeps at most a window of messages
/// unacknowledged and lets the rest conflate in the outbox, so a slow
/// reader gets the latest values instead of a backlog in kernel buffers.
#[derive(Debug, Default)]
pub struct AckWindow {
    sent: AtomicU64,
    acked: AtomicU64,
    on: AtomicBool,
}

impl AckWindow {
    /// The writer wrote `messages` more.
    pub fn wrote(&self, messages: u64) {
        self.sent.fetch_add(messages, Ordering::Relaxed);
    }

    /// Messages written so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The client has read `messages` in all: turns the window on, and
    /// says whether the count moved forward (an older count than one
    /// already given changes nothing). `Err` carries the messages actually
    /// written when the count is higher.
    pub fn ack(&self, messages: u64) -> Result<bool, u64> {
        let sent = self.sent();
        if messages > sent {
            return Err(sent);
        }
        let before = self.acked.fetch_max(messages, Ordering::Relaxed);
        let was_on = self.on.swap(true, Ordering::Relaxed);
        Ok(messages > before || !was_on)
    }

    /// Whether the writer must hold data back: the client acknowledges
    /// and `window` messages (0: no limit) are unacknowledged.
    pub fn full(&self, window: u64) -> bool {
        window > 0
            && self.on.load(Ordering::Relaxed)
            && self
                .sent()
                .saturating_sub(self.acked.load(Ordering::Relaxed))
                >= window
    }
}

/// Why the gateway itself asks a connection to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Shed to rebalance load after scale-out (close 1013, try again later).
    Rebalance,
    /// Closed by an operator through the admin API (close 1008).
    Operator,
}

/// Counters a connection updates as it works; read by `/metrics` and the
/// admin introspection endpoints. Relaxed atomics: figures, not fences.
#[derive(Debug)]
pub struct ConnStats {
    pub opened: Instant,
    /// Milliseconds after `opened` when the write in progress started, plus
    /// one; 0 when the writer is idle.
    writing_since: AtomicU64,
    /// Bytes of the batch being written (0 when idle).
    inflight_bytes: AtomicU64,
    /// Quotes delivered in updates.
    pub updates_sent: AtomicU64,
    /// Ticks this client never saw because newer values replaced them.
    pub conflated: AtomicU64,
    /// Trades delivered, and trades lost to a full trade buffer.
    pub trades_sent: AtomicU64,
    pub trades_lost: AtomicU64,
    /// Slow-consumer ladder: 0 = full rate, 1 to 3 = priority classes
    /// slowed (see [`Outbox::slow_down`]).
    pub ladder_level: AtomicU8,
}

impl ConnStats {
    fn new(opened: Instant) -> Self {
        Self {
            opened,
            writing_since: AtomicU64::new(0),
            inflight_bytes: AtomicU64::new(0),
            updates_sent: AtomicU64::new(0),
            conflated: AtomicU64::new(0),
            trades_sent: AtomicU64::new(0),
            trades_lost: AtomicU64::new(0),
            ladder_level: AtomicU8::new(0),
        }
    }

    /// A write of `bytes` starts at `now`.
    pub fn write_started(&self, bytes: usize, now: Instant) {
        let since = now.saturating_duration_since(self.opened).as_millis() as u64 + 1;
        self.writing_since.store(since, Ordering::Relaxed);
        self.inflight_bytes.store(bytes as u64, Ordering::Relaxed);
    }

    /// The write finished (the socket took everything).
    pub fn write_finished(&self) {
        self.writing_since.store(0, Ordering::Relaxed);
        self.inflight_bytes.store(0, Ordering::Relaxed);
    }

    /// How long the current write has been blocked at `now`, if one is in
    /// progress.
    pub fn blocked_for(&self, now: Instant) -> Option<std::time::Duration> {
        let since = self.writing_since.load(Ordering::Relaxed);
        (since > 0).then(|| {
            now.saturating_duration_since(self.opened)
                .saturating_sub(std::time::Duration::from_millis(since - 1))
        })
    }

    /// Bytes queued for this client's socket right now.
    pub fn inflight_bytes(&self) -> u64 {
        self.inflight_bytes.load(Ordering::Relaxed)
    }
}

impl Mailbox {
    /// An empty mailbox for connection `id`, opened at `opened`, holding at
    /// most `trade_buffer` waiting trades.
    pub fn new(id: ConnId, trade_buffer: usize, opened: Instant) -> Self {
        Self {
            id,
            outbox: Mutex::new(Outbox::new(trade_buffer)),
            wake: Notify::new(),
            drained: Notify::new(),
            stats: ConnStats::new(opened),
            kick: std::sync::OnceLock::new(),
            kicked: Notify::new(),
            acks: AckWindow::default(),
        }
    }

    /// Asks the connection to close; the first reason given wins.
    pub fn kick(&self, why: Kick) {
        if self.kick.set(why).is_ok() {
            self.kicked.notify_one();
        }
    }

    /// Why the gateway asked this connection to close, if it did. The
    /// connection waits on [`Mailbox::kicked`] and then reads this.
    pub fn kick_reason(&self) -> Option<Kick> {
        self.kick.get().copied()
    }

    /// Locks the outbox. Never hold the guard across an await.
    pub fn lock(&self) -> MutexGuard<'_, Outbox> {
        // A panic while holding this lock leaves plain data behind; keep going.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the subscription at `index` (symbol `id`) dirty and wakes the
    /// writer if needed: the fan-out's path, without hashing the symbol.
    pub fn mark_dirty_at(&self, index: SubIndex, id: SymbolId) {
        let wake = self.lock().mark_dirty_at(index, id);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Queues a change of `id`'s trading status if the client does not hold
    /// it yet (see [`Outbox::sync_trading`]), waking the writer if needed.
    pub fn sync_trading(&self, index: SubIndex, id: SymbolId) {
        let wake = self.lock().sync_trading(index, id);
        if wake {
            self.wake.notify_one();
        }
    }

    /// [`Mailbox::mark_dirty_at`] without the wake-up: returns whether the
    /// writer needs one, which the caller gives with [`Mailbox::wake_writer`]
    /// once its whole fan-out pass is marked, so the pass shares one frame.
    pub fn mark_dirty_deferred(&self, index: SubIndex, id: SymbolId) -> bool {
        self.lock().mark_dirty_at(index, id)
    }

    /// Wakes the writer (after [`Mailbox::mark_dirty_deferred`]).
    pub fn wake_writer(&self) {
        self.wake.notify_one();
    }

    /// Queues a trade of `id` if this connection wants it, waking the writer
    /// if needed. Returns whether the full buffer dropped its oldest trade;
    /// the drop is counted here at once (`trades_lost`), so a client that
    /// stopped reading shows its losses before the announcement reaches it.
    pub fn push_trade(&self, index: SubIndex, id: SymbolId, trade: &Arc<str>) -> bool {
        let push = self.lock().push_trade(index, id, trade);
        if push.dropped {
            self.stats.trades_lost.fetch_add(1, Ordering::Relaxed);
        }
        if push.wake {
            self.wake.notify_one();
        }
        push.dropped
    }

    /// Queues replies (in order) and wakes the writer if needed.
    pub fn push_control(&self, frames: impl IntoIterator<Item = String>) {
        let mut wake = false;
        {
            let mut outbox = self.lock();
            for frame in frames {
                wake |= outbox.push_control(frame);
            }
        }
        if wake {
            self.wake.notify_one();
        }
    }

    /// Takes everything owed (see [`Outbox::drain`]) and lets a waiting reader
    /// go on.
    pub fn drain(&self, now: Instant) -> Drain {
        self.drain_with(now, &mut FeedLiveness::all_live())
    }

    /// [`Mailbox::drain`], with the `stale` flag of meta quotes read from
    /// `feeds` (see [`Outbox::drain_with`]).
    pub fn drain_with(&self, now: Instant, feeds: &mut FeedLiveness<'_>) -> Drain {
        let drain = self.lock().drain_with(now, feeds);
        if !drain.control.is_empty() {
            self.drained.notify_one();
        }
        drain
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::task::{Context, Wake, Waker};

    use tickgate_feeds::{Symbol, Tick};

    use super::*;
    use crate::fanout::subscriptions::{self, SubscribeLimits};
    use crate::fanout::{Delivery, Fanout, SnapshotStore};

    /// A writer's waker that notes how many symbols were pending when it
    /// was woken.
    struct Watch {
        mailbox: Arc<Mailbox>,
        pending_at_wake: Mutex<Vec<usize>>,
    }

    impl Wake for Watch {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            let pending = self.mailbox.lock().pending();
            self.pending_at_wake
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(pending);
        }
    }

    #[test]
    fn the_writer_is_woken_once_its_whole_batch_is_marked() {
        let names: Vec<String> = (0..20).map(|i| format!("S{i:02}")).collect();
        let symbols: Vec<Symbol> = names
            .iter()
            .map(|s| Symbol::parse(s).expect("symbol"))
            .collect();
        let store = SnapshotStore::new(100);
        for symbol in &symbols {
            store.get_or_create(*symbol).expect("room");
        }
        let mailbox = Arc::new(Mailbox::new(1, 16, Instant::now()));
        subscriptions::subscribe(
            &store,
            &mailbox,
            &symbols,
            SubscribeLimits {
                per_connection: 100,
                interest: 100,
            },
            Delivery::default(),
            &Default::default(),
            |_| Vec::new(),
        );
        mailbox.drain(Instant::now());

        // The writer waits for its wake-up, as the connection's does.
        let watch = Arc::new(Watch {
            mailbox: Arc::clone(&mailbox),
            pending_at_wake: Mutex::new(Vec::new()),
        });
        let waker = Waker::from(Arc::clone(&watch));
        let mut notified = std::pin::pin!(mailbox.wake.notified());
        assert!(
            notified
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );

        let ticks: Vec<Tick> = symbols
            .iter()
            .map(|symbol| Tick {
                symbol: Some(*symbol),
                bid: Some(1.0),
                ..Tick::default()
            })
            .collect();
        Fanout::default().apply(&store, 0, &ticks, 1_764_000_000_000_000);
        assert_eq!(
            *watch
                .pending_at_wake
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            [symbols.len()],
            "one wake-up, with the whole batch pending"
        );
    }
}
