//! Per-connection conflation: what a connection still owes its client.
//!
//! The ingest task marks symbols dirty here; the connection's writer drains
//! the outbox whenever its socket can take more. The outbox holds at most one
//! pending entry per subscribed symbol, so its size is bounded by the
//! subscription count however slowly the client reads: a newer tick simply
//! leaves the entry dirty, and the writer reads the *latest* snapshot when it
//! finally sends. Trades, which are events and never conflate, wait in a
//! bounded queue whose overflow is announced ([`super::trades`]). Nothing
//! here awaits and nothing reads the clock: `now` is a parameter.
//! [`Mailbox`](super::mailbox::Mailbox) adds the lock and the wake-up.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use tickgate_feeds::{Symbol, TradingStatus};

use super::delivery::{Delivery, Priority, Slowdown};
use super::store::{Slot, Snapshot, SymbolId};
pub use super::trades::SubIndex;
use super::trades::TradeQueue;

/// Identifies a connection for the lifetime of the process.
pub type ConnId = u64;

/// Control frames (acks, snapshots, errors) a connection may have queued
/// before its reader stops reading requests: a client that floods requests
/// without reading replies stalls itself, not the gateway.
pub const MAX_CONTROL_FRAMES: usize = 32;

/// Trades a connection may have waiting unless configured otherwise
/// (`connection.trade_buffer`).
pub const DEFAULT_TRADE_BUFFER: usize = 1024;

pub(super) struct Subscription {
    pub(super) slot: Arc<Slot>,
    /// Highest seq this client has been sent (0 before any data).
    pub(super) last_seq: u64,
    /// Whether `id` is already in `Outbox::dirty`.
    pub(super) dirty: bool,
    pub(super) delivery: Delivery,
    /// When the last update of this symbol went out.
    pub(super) last_sent_at: Option<Instant>,
    /// The quote this client holds (delta mode only): deltas are computed
    /// against it.
    pub(super) last_sent: Option<Arc<Snapshot>>,
    /// Trades of this symbol waiting in `Outbox::trades`.
    pub(super) trades_queued: u32,
    /// The drain that last looked at this symbol (see `Outbox::epoch`).
    pub(super) seen_in: u64,
    /// Rank for the slow-consumer ladder.
    pub(super) priority: Priority,
    /// The trading status this client holds once `trading_pending` is
    /// written (`Trading` until told otherwise).
    pub(super) trading_told: TradingStatus,
    /// Trading status changes not yet written, oldest first: at most two
    /// (a halt and a resume, or the reverse); a third change folds the three
    /// into one, so the client still ends on the venue's latest word and
    /// never sees changes out of order.
    pub(super) trading_pending: [Option<TradingStatus>; 2],
}

/// How a connection's subscriptions are delivered, counted per option.
#[derive(Debug, Default, serde::Serialize)]
pub struct ModeCounts {
    pub rate_capped: usize,
    pub delta: usize,
    pub meta: usize,
    pub trades: usize,
    pub visible: usize,
    pub background: usize,
}

/// What queueing a trade did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TradePush {
    /// The outbox was empty: the writer needs a wake-up.
    pub wake: bool,
    /// The buffer was full and its oldest trade was dropped.
    pub dropped: bool,
}

/// The pending state of one connection. See the module docs.
pub struct Outbox {
    /// Subscriptions in a slab: a removed one leaves a hole for the next.
    pub(super) subs: Vec<Option<Subscription>>,
    /// Free holes of `subs`.
    pub(super) free: Vec<SubIndex>,
    /// Symbol → its index in `subs`.
    pub(super) by_id: FxHashMap<SymbolId, SubIndex>,
    /// Subscriptions changed since the last drain; at most one entry each.
    pub(super) dirty: Vec<SubIndex>,
    /// Dirty subscriptions held back by a rate cap or the ladder until their
    /// next slot. Kept apart from `dirty`, so a change of another symbol
    /// still wakes the writer.
    pub(super) waiting: Vec<SubIndex>,
    /// At most [`MAX_CONTROL_FRAMES`] frames in normal operation (the reader
    /// waits when full).
    pub(super) control: VecDeque<String>,
    /// Trades waiting, oldest first, each encoded once for every
    /// connection; at most `connection.trade_buffer`.
    pub(super) trades: TradeQueue,
    pub(super) slowdown: Slowdown,
    /// The client ranked its symbols (a `priority` request or option): it
    /// takes part in step 2 of the ladder. Others keep the contract
    /// behaviour, conflation only.
    pub(super) ranked: bool,
    /// Counts drains, so one drain never sends a symbol twice.
    pub(super) epoch: u64,
    /// Subscriptions with a trading status change pending; at most one
    /// entry each.
    pub(super) trading_dirty: Vec<SubIndex>,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new(DEFAULT_TRADE_BUFFER)
    }
}

impl Outbox {
    /// An empty outbox holding at most `trade_capacity` waiting trades.
    pub fn new(trade_capacity: usize) -> Self {
        Self {
            subs: Vec::new(),
            free: Vec::new(),
            by_id: FxHashMap::default(),
            dirty: Vec::new(),
            waiting: Vec::new(),
            control: VecDeque::new(),
            trades: TradeQueue::new(trade_capacity),
            slowdown: Slowdown::default(),
            ranked: false,
            epoch: 0,
            trading_dirty: Vec::new(),
        }
    }

    fn sub(&self, id: SymbolId) -> Option<&Subscription> {
        let index = *self.by_id.get(&id)?;
        self.subs[index as usize].as_ref()
    }

    fn sub_mut(&mut self, id: SymbolId) -> Option<&mut Subscription> {
        let index = *self.by_id.get(&id)?;
        self.subs[index as usize].as_mut()
    }

    fn live(&self) -> impl Iterator<Item = &Subscription> {
        self.subs.iter().flatten()
    }

    /// Where symbol `id` lives in this outbox, if subscribed.
    pub fn index_of(&self, id: SymbolId) -> Option<SubIndex> {
        self.by_id.get(&id).copied()
    }

    /// Records that `id` changed. Returns true when the outbox went from empty
    /// to non-empty (the writer needs a wake-up). Symbols this connection is
    /// not subscribed to are ignored.
    pub fn mark_dirty(&mut self, id: SymbolId) -> bool {
        match self.index_of(id) {
            Some(index) => self.mark_dirty_at(index, id),
            None => false,
        }
    }

    /// [`Outbox::mark_dirty`] for the subscription at `index`, which a
    /// subscriber set recorded for symbol `id`. An index that no longer
    /// holds `id` (the client unsubscribed meanwhile) is ignored.
    pub fn mark_dirty_at(&mut self, index: SubIndex, id: SymbolId) -> bool {
        let was_empty = self.is_empty();
        let Some(Some(sub)) = self.subs.get_mut(index as usize) else {
            return false;
        };
        if sub.dirty || sub.slot.id != id {
            return false;
        }
        sub.dirty = true;
        self.dirty.push(index);
        was_empty
    }

    /// Queues a trade (its JSON, shared) of the subscription at `index`,
    /// which a subscriber set recorded for symbol `id`, if this connection
    /// asked for the symbol's trades. A full queue drops its oldest trade and
    /// counts it as lost (announced at the next drain).
    pub fn push_trade(&mut self, index: SubIndex, id: SymbolId, trade: &Arc<str>) -> TradePush {
        let mut push = TradePush {
            wake: self.is_empty(),
            dropped: false,
        };
        match self.subs.get_mut(index as usize) {
            Some(Some(sub)) if sub.delivery.trades && sub.slot.id == id => sub.trades_queued += 1,
            _ => return TradePush::default(),
        }
        if let Some(oldest) = self.trades.push(index, trade)
            && let Some(Some(sub)) = self.subs.get_mut(oldest as usize)
        {
            sub.trades_queued -= 1;
            self.trades.record_lost(sub.slot.symbol);
            push.dropped = true;
        }
        push
    }

    /// Adds a subscription and returns the snapshot the client must receive
    /// for it (if the symbol has data). Returns `None` as well when already
    /// subscribed: the client already has that symbol's state.
    ///
    /// With `resume`, the seq of the symbol the client already holds, the
    /// snapshot is skipped when that is still the current seq. A subscription
    /// that exists takes the new `delivery`.
    pub fn subscribe(
        &mut self,
        slot: Arc<Slot>,
        delivery: Delivery,
        resume: Option<u64>,
    ) -> Option<Arc<Snapshot>> {
        if let Some(index) = self.index_of(slot.id) {
            let mut dropped_trades = false;
            if let Some(existing) = self.subs[index as usize].as_mut() {
                if existing.delivery.trades != delivery.trades {
                    slot.trade_interest(delivery.trades);
                    if !delivery.trades && existing.trades_queued > 0 {
                        existing.trades_queued = 0;
                        dropped_trades = true;
                    }
                }
                if delivery.delta && !existing.delivery.delta {
                    existing.last_sent = slot.latest().filter(|s| s.quote.seq == existing.last_seq);
                }
                if let Some(priority) = delivery.priority {
                    existing.priority = priority;
                }
                existing.delivery = delivery;
            }
            self.ranked |= delivery.priority.is_some();
            if dropped_trades {
                self.trades.remove(index);
            }
            return None;
        }
        if delivery.trades {
            slot.trade_interest(true);
        }
        let latest = slot.latest();
        let last_seq = latest.as_ref().map_or(0, |s| s.quote.seq);
        let last_sent = latest.clone().filter(|_| delivery.delta);
        let id = slot.id;
        let sub = Subscription {
            slot,
            last_seq,
            dirty: false,
            delivery,
            last_sent_at: None,
            last_sent,
            trades_queued: 0,
            seen_in: 0,
            priority: delivery.priority.unwrap_or_default(),
            trading_told: TradingStatus::Trading,
            trading_pending: [None, None],
        };
        self.ranked |= delivery.priority.is_some();
        let index = match self.free.pop() {
            Some(index) => {
                self.subs[index as usize] = Some(sub);
                index
            }
            None => {
                self.subs.push(Some(sub));
                (self.subs.len() - 1) as SubIndex
            }
        };
        self.by_id.insert(id, index);
        match (latest, resume) {
            (Some(snapshot), Some(held)) if snapshot.quote.seq == held => None,
            (latest, _) => latest,
        }
    }

    /// Marks `id` dirty if its slot moved past what this client holds: for a
    /// tick that landed between reading the snapshot and joining the slot's
    /// subscribers. Returns whether the writer needs a wake-up.
    pub fn catch_up(&mut self, id: SymbolId) -> bool {
        let behind = self.sub(id).is_some_and(|sub| {
            sub.slot
                .latest()
                .is_some_and(|s| s.quote.seq > sub.last_seq)
        });
        let wake = behind && self.mark_dirty(id);
        let index = self.index_of(id);
        index.is_some_and(|index| self.sync_trading(index, id)) || wake
    }

    /// Brings the client's trading status of the subscription at `index` in
    /// line with its slot: queues a change if the slot says otherwise than
    /// what the client holds. Idempotent, so the ingest task (after a venue
    /// event) and a new subscription (after joining the subscribers) may
    /// both call it: a change is queued once. Returns whether the writer
    /// needs a wake-up.
    pub fn sync_trading(&mut self, index: SubIndex, id: SymbolId) -> bool {
        let was_empty = self.is_empty();
        let Some(Some(sub)) = self.subs.get_mut(index as usize) else {
            return false;
        };
        if sub.slot.id != id {
            return false;
        }
        let now = sub.slot.trading();
        if now == sub.trading_told {
            return false;
        }
        sub.trading_told = now;
        sub.trading_pending = match sub.trading_pending {
            [None, _] => {
                self.trading_dirty.push(index);
                [Some(now), None]
            }
            [Some(first), None] => [Some(first), Some(now)],
            // first == now: halt, resume, halt is one halt.
            [Some(_), Some(_)] => [Some(now), None],
        };
        was_empty
    }

    /// Drops a subscription, its pending entry and its waiting trades, so
    /// that subscribing again cannot leave two entries for one symbol and no
    /// trade follows the `unsubscribed` reply.
    pub fn unsubscribe(&mut self, id: SymbolId) -> Option<Arc<Slot>> {
        let index = self.by_id.remove(&id)?;
        let sub = self.subs[index as usize].take()?;
        self.free.push(index);
        if sub.dirty {
            self.dirty.retain(|&d| d != index);
            self.waiting.retain(|&d| d != index);
        }
        if sub.trades_queued > 0 {
            self.trades.remove(index);
        }
        if sub.trading_pending[0].is_some() {
            self.trading_dirty.retain(|&d| d != index);
        }
        if sub.delivery.trades {
            sub.slot.trade_interest(false);
        }
        self.trades.forget_lost(&sub.slot.symbol);
        Some(sub.slot)
    }

    /// Removes every subscription, returning their slots.
    pub fn unsubscribe_all(&mut self) -> Vec<Arc<Slot>> {
        self.dirty.clear();
        self.trading_dirty.clear();
        self.waiting.clear();
        self.trades.clear();
        self.by_id.clear();
        self.free.clear();
        self.subs
            .drain(..)
            .flatten()
            .map(|sub| {
                if sub.delivery.trades {
                    sub.slot.trade_interest(false);
                }
                sub.slot
            })
            .collect()
    }

    /// Subscribed symbols whose slot matches `pick`.
    pub fn symbols_where(&self, pick: impl Fn(&Slot) -> bool) -> Vec<Symbol> {
        let mut symbols: Vec<_> = self
            .live()
            .filter(|s| pick(&s.slot))
            .map(|s| s.slot.symbol)
            .collect();
        symbols.sort();
        symbols
    }

    /// Whether `id` is subscribed.
    pub fn is_subscribed(&self, id: SymbolId) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.by_id.len()
    }

    /// Number of dirty entries (never more than the subscription count).
    pub fn pending(&self) -> usize {
        self.dirty.len() + self.waiting.len()
    }

    /// Trades waiting to be written.
    pub fn trades_waiting(&self) -> usize {
        self.trades.len()
    }

    /// Sets the priority of subscribed symbols; returns false for a symbol
    /// this connection does not hold.
    pub fn set_priority(&mut self, id: SymbolId, priority: Priority) -> bool {
        match self.sub_mut(id) {
            Some(sub) => {
                sub.priority = priority;
                self.ranked = true;
                true
            }
            None => false,
        }
    }

    /// Subscriptions counted per delivery option, for introspection.
    pub fn mode_counts(&self) -> ModeCounts {
        let mut counts = ModeCounts::default();
        for sub in self.live() {
            let d = &sub.delivery;
            counts.rate_capped += usize::from(d.min_interval.is_some());
            counts.delta += usize::from(d.delta);
            counts.meta += usize::from(d.meta);
            counts.trades += usize::from(d.trades);
            counts.visible += usize::from(sub.priority == Priority::Visible);
            counts.background += usize::from(sub.priority == Priority::Background);
        }
        counts
    }

    /// Slow-consumer ladder, step 2: limits the next priority class that has
    /// symbols (lowest first) to one update per `interval`. Returns that
    /// class and its symbols, or `None` when every class is already slowed.
    /// A connection whose client never ranked its symbols is left alone.
    pub fn slow_down(&mut self, interval: Duration) -> Option<(Priority, Vec<Symbol>)> {
        if !self.ranked {
            return None;
        }
        self.slowdown.interval = interval;
        while usize::from(self.slowdown.level) < Priority::ALL.len() {
            let class = Priority::ALL[usize::from(self.slowdown.level)];
            self.slowdown.level += 1;
            let symbols = self.symbols_where_priority(class);
            if !symbols.is_empty() {
                return Some((class, symbols));
            }
        }
        None
    }

    /// Ends every slowdown; returns whether there was one.
    pub fn restore(&mut self) -> bool {
        std::mem::take(&mut self.slowdown).level > 0
    }

    /// The ladder level: how many priority classes are slowed (0 to 3).
    pub fn slowdown_level(&self) -> u8 {
        self.slowdown.level
    }

    fn symbols_where_priority(&self, class: Priority) -> Vec<Symbol> {
        let mut symbols: Vec<_> = self
            .live()
            .filter(|s| s.priority == class)
            .map(|s| s.slot.symbol)
            .collect();
        symbols.sort();
        symbols
    }

    /// Queues a reply. Returns true when the outbox went from empty to
    /// non-empty.
    pub fn push_control(&mut self, frame: String) -> bool {
        let was_empty = self.is_empty();
        self.control.push_back(frame);
        was_empty
    }

    /// Control frames waiting to be written.
    pub fn control_len(&self) -> usize {
        self.control.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.dirty.is_empty()
            && self.control.is_empty()
            && self.trades.is_empty()
            && self.trading_dirty.is_empty()
    }

    /// The `trading` frames owed, in order: every symbol's first pending
    /// change, then the second ones; per change, one frame per state naming
    /// the symbols (sorted).
    pub(super) fn take_trading(&mut self) -> Vec<String> {
        if self.trading_dirty.is_empty() {
            return Vec::new();
        }
        let mut rounds: [[Vec<Symbol>; 2]; 2] = Default::default();
        for index in self.trading_dirty.drain(..) {
            let Some(Some(sub)) = self.subs.get_mut(index as usize) else {
                continue;
            };
            for (round, change) in std::mem::take(&mut sub.trading_pending)
                .into_iter()
                .enumerate()
            {
                if let Some(state) = change {
                    rounds[round][usize::from(state == TradingStatus::Trading)]
                        .push(sub.slot.symbol);
                }
            }
        }
        let mut frames = Vec::new();
        for round in &mut rounds {
            for (state, symbols) in [TradingStatus::Halted, TradingStatus::Trading]
                .into_iter()
                .zip(round.iter_mut())
            {
                if !symbols.is_empty() {
                    symbols.sort();
                    frames.push(super::encode::trading(state, symbols));
                }
            }
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use tickgate_feeds::{Symbol, Tick, TradingStatus};

    use super::*;
    use crate::fanout::delivery::{Delivery, Priority};
    use crate::fanout::store::SnapshotStore;

    fn tick(symbol: Symbol, price: f64) -> Tick {
        Tick {
            symbol: Some(symbol),
            bid: Some(price),
            ..Tick::default()
        }
    }

    fn slot(store: &SnapshotStore, name: &str) -> Arc<Slot> {
        store
            .get_or_create(Symbol::parse(name).expect("valid"))
            .expect("room")
    }

    fn quotes_of(frame: &str) -> Vec<(String, u64, f64)> {
        let value: serde_json::Value = serde_json::from_str(frame).expect("valid JSON frame");
        value["quotes"]
            .as_array()
            .expect("quotes array")
            .iter()
            .map(|q| {
                (
                    q["symbol"].as_str().expect("symbol").to_owned(),
                    q["seq"].as_u64().expect("seq"),
                    q["bid"].as_f64().expect("bid"),
                )
            })
            .collect()
    }

    #[test]
    fn slow_reader_gets_latest_price_not_every_tick() {
        let store = SnapshotStore::new(10);
        let aapl = slot(&store, "AAPL");
        let mut outbox = Outbox::default();
        assert!(
            outbox
                .subscribe(Arc::clone(&aapl), Delivery::default(), None)
                .is_none(),
            "no data yet"
        );
        for i in 1..=1000 {
            store.apply(&aapl, &tick(aapl.symbol, f64::from(i)), 1);
            outbox.mark_dirty(aapl.id);
            assert!(
                outbox.pending() <= 1,
                "one entry per symbol however many ticks"
            );
        }
        let drain = outbox.drain(Instant::now());
        let quotes = quotes_of(drain.update.as_deref().expect("update"));
        assert_eq!(quotes, vec![("AAPL".to_owned(), 1000, 1000.0)]);
        assert_eq!(drain.conflated, 999);
        assert!(outbox.drain(Instant::now()).is_empty());
    }

    #[test]
    fn snapshot_seq_is_not_resent_as_update() {
        let store = SnapshotStore::new(10);
        let msft = slot(&store, "MSFT");
        store.apply(&msft, &tick(msft.symbol, 1.0), 1);
        let mut outbox = Outbox::default();
        // A tick marked dirty before the subscription existed is ignored...
        outbox.mark_dirty(msft.id);
        let snap = outbox
            .subscribe(Arc::clone(&msft), Delivery::default(), None)
            .expect("has data");
        assert_eq!(snap.quote.seq, 1);
        // ...and a dirty mark for a seq the snapshot already carried sends nothing.
        outbox.mark_dirty(msft.id);
        assert!(outbox.drain(Instant::now()).update.is_none());
    }

    #[test]
    fn control_frames_come_before_updates_and_unsubscribed_symbols_are_skipped() {
        let store = SnapshotStore::new(10);
        let a = slot(&store, "A");
        let b = slot(&store, "B");
        let mut outbox = Outbox::default();
        outbox.subscribe(Arc::clone(&a), Delivery::default(), None);
        outbox.subscribe(Arc::clone(&b), Delivery::default(), None);
        store.apply(&a, &tick(a.symbol, 1.0), 1);
        store.apply(&b, &tick(b.symbol, 2.0), 1);
        assert!(outbox.mark_dirty(a.id), "first entry wakes the writer");
        assert!(!outbox.mark_dirty(b.id), "second does not");
        outbox.push_control("ack".to_owned());
        outbox.unsubscribe(b.id);
        let drain = outbox.drain(Instant::now());
        assert_eq!(drain.control, vec!["ack".to_owned()]);
        assert_eq!(
            quotes_of(drain.update.as_deref().expect("update")),
            vec![("A".to_owned(), 1, 1.0)]
        );
    }

    fn trading_frames(drain: &crate::fanout::Drain) -> Vec<(String, Vec<String>)> {
        drain
            .control
            .iter()
            .filter_map(|frame| {
                let value: serde_json::Value = serde_json::from_str(frame).ok()?;
                (value["type"] == "trading").then(|| {
                    let symbols = value["symbols"].as_array().expect("symbols");
                    (
                        value["state"].as_str().expect("state").to_owned(),
                        symbols
                            .iter()
                            .map(|s| s.as_str().expect("symbol").to_owned())
                            .collect(),
                    )
                })
            })
            .collect()
    }

    fn set(slot: &Slot, status: TradingStatus, outbox: &mut Outbox) {
        slot.set_trading(status);
        let index = outbox.index_of(slot.id).expect("subscribed");
        outbox.sync_trading(index, slot.id);
    }

    #[test]
    fn trading_changes_come_once_in_order_after_replies_and_fold_past_two() {
        use TradingStatus::{Halted, Trading};
        let store = SnapshotStore::new(10);
        let (a, b) = (slot(&store, "A"), slot(&store, "B"));
        let mut outbox = Outbox::default();
        outbox.subscribe(Arc::clone(&a), Delivery::default(), None);
        outbox.subscribe(Arc::clone(&b), Delivery::default(), None);
        outbox.push_control("ack".to_owned());
        set(&a, Halted, &mut outbox);
        set(&b, Halted, &mut outbox);
        // A second sync of the same state queues nothing.
        assert!(!outbox.sync_trading(outbox.index_of(a.id).expect("sub"), a.id));
        set(&b, Trading, &mut outbox);
        let drain = outbox.drain(Instant::now());
        assert_eq!(drain.control[0], "ack", "replies first");
        assert_eq!(
            trading_frames(&drain),
            vec![
                ("halted".to_owned(), vec!["A".to_owned(), "B".to_owned()]),
                ("trading".to_owned(), vec!["B".to_owned()]),
            ],
            "B's halt comes before its resumption"
        );
        assert!(outbox.drain(Instant::now()).is_empty(), "sent once");
        // A stalled reader: a flood of toggles stays at most two entries and
        // ends on the latest state.
        for i in 0..1001 {
            set(&b, if i % 2 == 0 { Halted } else { Trading }, &mut outbox);
            assert!(outbox.trading_dirty.len() <= 1);
        }
        let frames = trading_frames(&outbox.drain(Instant::now()));
        assert!(frames.len() <= 2, "{frames:?}");
        assert_eq!(frames.last().map(|f| f.0.as_str()), Some("halted"));
        // Unsubscribing drops what is pending.
        set(&a, Trading, &mut outbox);
        outbox.unsubscribe(a.id);
        assert!(outbox.drain(Instant::now()).is_empty());
    }

    #[test]
    fn a_rate_cap_sends_the_latest_value_once_per_slot() {
        let store = SnapshotStore::new(10);
        let aapl = slot(&store, "AAPL");
        let mut outbox = Outbox::default();
        let capped = Delivery {
            min_interval: Some(Duration::from_millis(250)),
            ..Delivery::default()
        };
        outbox.subscribe(Arc::clone(&aapl), capped, None);
        let t0 = Instant::now();
        store.apply(&aapl, &tick(aapl.symbol, 1.0), 1);
        outbox.mark_dirty(aapl.id);
        assert_eq!(
            quotes_of(&outbox.drain(t0).update.expect("first goes at once")),
            vec![("AAPL".into(), 1, 1.0)]
        );
        for price in 2..=5 {
            store.apply(&aapl, &tick(aapl.symbol, f64::from(price)), 1);
            outbox.mark_dirty(aapl.id);
        }
        let early = outbox.drain(t0 + Duration::from_millis(100));
        assert!(early.update.is_none(), "inside the slot nothing goes");
        assert_eq!(early.next_due, Some(t0 + Duration::from_millis(250)));
        assert_eq!(outbox.pending(), 1, "still pending, once");
        let due = outbox.drain(t0 + Duration::from_millis(250));
        assert_eq!(
            quotes_of(&due.update.expect("sent at the slot")),
            vec![("AAPL".into(), 5, 5.0)]
        );
        assert_eq!(due.conflated, 3);
    }

    #[test]
    fn meta_adds_conflated_and_receive_time() {
        let store = SnapshotStore::new(10);
        let msft = slot(&store, "MSFT");
        let mut outbox = Outbox::default();
        let meta = Delivery {
            meta: true,
            ..Delivery::default()
        };
        outbox.subscribe(Arc::clone(&msft), meta, None);
        for i in 1..=3 {
            store.apply(
                &msft,
                &tick(msft.symbol, f64::from(i)),
                1_000 + u64::try_from(i).unwrap_or(0),
            );
            outbox.mark_dirty(msft.id);
        }
        let frame: serde_json::Value =
            serde_json::from_str(&outbox.drain(Instant::now()).update.expect("update"))
                .expect("JSON");
        assert_eq!(frame["quotes"][0]["conflated"], 2);
        assert_eq!(frame["quotes"][0]["received_ts"], 1_003);
        assert_eq!(frame["quotes"][0]["seq"], 3);
    }

    #[test]
    fn meta_updates_say_stale_exactly_while_their_feed_is_not_live() {
        use std::sync::atomic::Ordering;

        use crate::fanout::drain::FeedLiveness;

        let store = SnapshotStore::new(10);
        let msft = slot(&store, "MSFT");
        msft.feed.store(4, Ordering::Relaxed);
        let mut outbox = Outbox::default();
        let meta = Delivery {
            meta: true,
            ..Delivery::default()
        };
        outbox.subscribe(Arc::clone(&msft), meta, None);
        let mut stale_flag = |not_live: Vec<u32>, price: f64| {
            store.apply(&msft, &tick(msft.symbol, price), 1);
            outbox.mark_dirty(msft.id);
            let read = move || not_live.clone();
            let update = outbox
                .drain_with(Instant::now(), &mut FeedLiveness::new(&read))
                .update
                .expect("update");
            let frame: serde_json::Value = serde_json::from_str(&update).expect("JSON");
            frame["quotes"][0]["stale"].clone()
        };
        assert_eq!(stale_flag(vec![4], 1.0), true);
        assert_eq!(stale_flag(vec![], 2.0), false);
        assert_eq!(stale_flag(vec![3], 3.0), false, "another feed is down");
    }

    #[test]
    fn plain_updates_never_ask_which_feeds_are_live() {
        use crate::fanout::drain::FeedLiveness;

        let store = SnapshotStore::new(10);
        let msft = slot(&store, "MSFT");
        let mut outbox = Outbox::default();
        outbox.subscribe(Arc::clone(&msft), Delivery::default(), None);
        store.apply(&msft, &tick(msft.symbol, 1.0), 1);
        outbox.mark_dirty(msft.id);
        let read = || -> Vec<u32> { panic!("a plain quote read the feeds") };
        let update = outbox
            .drain_with(Instant::now(), &mut FeedLiveness::new(&read))
            .update
            .expect("update");
        let latest = msft.latest().expect("data");
        assert_eq!(
            update,
            format!(r#"{{"type":"update","quotes":[{}]}}"#, latest.json)
        );
    }

    #[test]
    fn resume_skips_the_snapshot_only_while_the_clients_seq_is_current() {
        let store = SnapshotStore::new(10);
        let a = slot(&store, "A");
        store.apply(&a, &tick(a.symbol, 1.0), 1);
        store.apply(&a, &tick(a.symbol, 2.0), 1);
        assert!(
            Outbox::default()
                .subscribe(Arc::clone(&a), Delivery::default(), Some(2))
                .is_none()
        );
        assert_eq!(
            Outbox::default()
                .subscribe(Arc::clone(&a), Delivery::default(), Some(1))
                .map(|s| s.quote.seq),
            Some(2)
        );
        // A seq from another gateway process (higher than ours) gets the snapshot.
        assert!(
            Outbox::default()
                .subscribe(Arc::clone(&a), Delivery::default(), Some(99))
                .is_some()
        );
    }

    fn trade(outbox: &mut Outbox, store: &SnapshotStore, slot: &Arc<Slot>, n: u32) {
        store.apply(slot, &tick(slot.symbol, f64::from(n)), 1);
        let json: Arc<str> = format!(r#"{{"symbol":"{}","n":{n}}}"#, slot.symbol).into();
        let index = outbox.index_of(slot.id).expect("subscribed");
        outbox.push_trade(index, slot.id, &json);
    }

    fn trades_of(frame: &str) -> Vec<(String, u64)> {
        let value: serde_json::Value = serde_json::from_str(frame).expect("JSON");
        value["trades"]
            .as_array()
            .expect("trades")
            .iter()
            .map(|t| {
                (
                    t["symbol"].as_str().expect("symbol").to_owned(),
                    t["n"].as_u64().expect("n"),
                )
            })
            .collect()
    }

    #[test]
    fn trades_arrive_in_order_after_the_quote_they_moved_and_overflow_is_announced() {
        let store = SnapshotStore::new(10);
        let a = slot(&store, "A");
        let b = slot(&store, "B");
        let mut outbox = Outbox::new(4);
        let with_trades = Delivery {
            trades: true,
            // A cap that would hold the quote back, were it not for the trade.
            min_interval: Some(Duration::from_secs(60)),
            ..Delivery::default()
        };
        outbox.subscribe(Arc::clone(&a), with_trades, None);
        outbox.subscribe(Arc::clone(&b), Delivery::default(), None);
        assert!(a.wants_trades() && !b.wants_trades());
        // B did not ask for trades: ignored.
        assert_eq!(
            outbox.push_trade(outbox.index_of(b.id).expect("held"), b.id, &Arc::from("{}")),
            TradePush::default()
        );
        let t0 = Instant::now();
        trade(&mut outbox, &store, &a, 1);
        let first = outbox.drain(t0);
        assert_eq!(
            quotes_of(first.update.as_deref().expect("quote flushed")),
            [("A".into(), 1, 1.0)]
        );
        assert_eq!(
            trades_of(first.trades.as_deref().expect("trade")),
            [("A".into(), 1)]
        );
        // Six trades into a buffer of four: the two oldest are lost, the
        // quote goes out although its 60 s slot has not come (not marked
        // dirty at all here: the ingest task marks after its batch).
        for n in 2..=7 {
            trade(&mut outbox, &store, &a, n);
        }
        let second = outbox.drain(t0 + Duration::from_millis(1));
        assert_eq!(
            quotes_of(second.update.as_deref().expect("flushed")),
            [("A".into(), 7, 7.0)]
        );
        let lost: serde_json::Value =
            serde_json::from_str(second.trades_lost.as_deref().expect("announced")).expect("JSON");
        assert_eq!(
            lost,
            serde_json::json!({"type":"trades_lost","lost":2,"symbols":{"A":2}})
        );
        assert_eq!((second.lost_count, second.trade_count), (2, 4));
        assert_eq!(
            trades_of(second.trades.as_deref().expect("trades")),
            [
                ("A".into(), 4),
                ("A".into(), 5),
                ("A".into(), 6),
                ("A".into(), 7)
            ]
        );
        let frames: Vec<String> = second.into_frames().collect();
        assert!(
            frames[0].contains("update")
                && frames[1].contains("trades_lost")
                && frames[2].contains("\"trades\"")
        );
        // Unsubscribing drops waiting trades and the interest.
        trade(&mut outbox, &store, &a, 8);
        outbox.unsubscribe(a.id);
        assert!(!a.wants_trades());
        assert!(outbox.drain(t0).is_empty());
    }

    #[test]
    fn a_stale_index_from_a_subscriber_set_is_ignored_after_reuse() {
        let store = SnapshotStore::new(10);
        let a = slot(&store, "A");
        let b = slot(&store, "B");
        let mut outbox = Outbox::default();
        outbox.subscribe(Arc::clone(&a), Delivery::default(), None);
        let index = outbox.index_of(a.id).expect("held");
        outbox.unsubscribe(a.id);
        assert!(!outbox.mark_dirty_at(index, a.id), "unsubscribed");
        outbox.subscribe(Arc::clone(&b), Delivery::default(), None);
        assert_eq!(outbox.index_of(b.id), Some(index), "the hole is reused");
        store.apply(&b, &tick(b.symbol, 1.0), 1);
        assert!(
            !outbox.mark_dirty_at(index, a.id),
            "A's old index now holds B"
        );
        assert_eq!(outbox.pending(), 0);
        assert!(outbox.mark_dirty_at(index, b.id));
        assert_eq!(
            quotes_of(&outbox.drain(Instant::now()).update.expect("B")),
            [("B".into(), 1, 1.0)]
        );
    }

    #[test]
    fn the_ladder_slows_background_first_and_visible_last() {
        let store = SnapshotStore::new(10);
        let slots: Vec<_> = ["V", "N", "B"].iter().map(|s| slot(&store, s)).collect();
        let mut outbox = Outbox::default();
        assert!(
            outbox.slow_down(Duration::from_secs(1)).is_none(),
            "not ranked: left alone"
        );
        for (slot, priority) in
            slots
                .iter()
                .zip([Priority::Visible, Priority::Normal, Priority::Normal])
        {
            outbox.subscribe(
                Arc::clone(slot),
                Delivery {
                    priority: Some(priority),
                    ..Delivery::default()
                },
                None,
            );
        }
        assert!(outbox.set_priority(slots[2].id, Priority::Background));
        let second = Duration::from_secs(1);
        let names = |v: Vec<Symbol>| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (class, symbols) = outbox.slow_down(second).expect("background");
        assert_eq!(
            (class, names(symbols)),
            (Priority::Background, vec!["B".to_owned()])
        );
        let t0 = Instant::now();
        let send_all = |outbox: &mut Outbox, at: Instant, price: f64| {
            for slot in &slots {
                store.apply(slot, &tick(slot.symbol, price), 1);
                outbox.mark_dirty(slot.id);
            }
            outbox
                .drain(at)
                .update
                .map(|f| quotes_of(&f).into_iter().map(|q| q.0).collect::<Vec<_>>())
        };
        assert_eq!(
            send_all(&mut outbox, t0, 1.0).map(|v| v.len()),
            Some(3),
            "first send is free"
        );
        let held_back =
            send_all(&mut outbox, t0 + Duration::from_millis(100), 2.0).expect("update");
        assert_eq!(held_back, ["V", "N"], "background waits for its 1 s slot");
        let (class, symbols) = outbox.slow_down(second).expect("normal next");
        assert_eq!(
            (class, names(symbols)),
            (Priority::Normal, vec!["N".to_owned()])
        );
        let (class, _) = outbox.slow_down(second).expect("visible last");
        assert_eq!(class, Priority::Visible);
        assert!(outbox.slow_down(second).is_none(), "nothing left to slow");
        assert_eq!(outbox.slowdown_level(), 3);
        assert!(send_all(&mut outbox, t0 + Duration::from_millis(200), 3.0).is_none());
        assert!(outbox.restore());
        assert_eq!(
            send_all(&mut outbox, t0 + Duration::from_millis(300), 4.0).map(|v| v.len()),
            Some(3)
        );
    }

    fn random_tick(symbol: Symbol, fields: u8, value: u16) -> Tick {
        let v = Some(f64::from(value) + 1.0);
        let pick = |bit: u8| if fields & (1 << bit) != 0 { v } else { None };
        Tick {
            symbol: Some(symbol),
            bid: pick(0).or(Some(1.0)),
            ask: pick(1),
            bid_size: pick(2),
            ask_size: pick(3),
            last: pick(4),
            last_size: pick(5),
            volume: pick(6),
            prev_close: pick(7),
            ..Tick::default()
        }
    }

    proptest! {
        /// A client that merges delta updates field by field (null = unknown)
        /// onto its snapshot holds exactly the full quote after every frame.
        #[test]
        fn delta_updates_merged_by_a_client_reproduce_the_full_quotes(
            steps in proptest::collection::vec((any::<u8>(), 0..500u16, any::<bool>()), 1..120)
        ) {
            let store = SnapshotStore::new(10);
            let slot = slot(&store, "D");
            store.apply(&slot, &random_tick(slot.symbol, 0xff, 7), 1);
            let mut outbox = Outbox::default();
            let snapshot = outbox
                .subscribe(Arc::clone(&slot), Delivery { delta: true, ..Delivery::default() }, None)
                .expect("has data");
            let serde_json::Value::Object(mut held) = serde_json::from_str(&snapshot.json).expect("JSON") else {
                panic!("quote is an object");
            };
            for (fields, value, drain_now) in steps {
                store.apply(&slot, &random_tick(slot.symbol, fields, value), u64::from(value));
                outbox.mark_dirty(slot.id);
                if !drain_now {
                    continue;
                }
                let Some(frame) = outbox.drain(Instant::now()).update else { continue };
                let frame: serde_json::Value = serde_json::from_str(&frame).expect("JSON");
                let serde_json::Value::Object(delta) = frame["quotes"][0].clone() else { panic!("object") };
                for (key, value) in delta {
                    if value.is_null() { held.remove(&key); } else { held.insert(key, value); }
                }
                let full: serde_json::Value = serde_json::from_str(&slot.latest().expect("data").json).expect("JSON");
                prop_assert_eq!(serde_json::Value::Object(held.clone()), full);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Tick { symbol: usize, price: u16 },
        Drain,
        Unsubscribe(usize),
        Subscribe(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0..5usize, 1..1000u16).prop_map(|(symbol, price)| Step::Tick { symbol, price }),
            3 => Just(Step::Drain),
            1 => (0..5usize).prop_map(Step::Unsubscribe),
            1 => (0..5usize).prop_map(Step::Subscribe),
        ]
    }

    proptest! {
        /// Conflation never reorders or repeats a symbol's seq, never sends a
        /// symbol twice in one frame, stays bounded, and the last value always
        /// arrives.
        #[test]
        fn conflation_keeps_seq_order_and_delivers_the_last_value(steps in proptest::collection::vec(step(), 1..300)) {
            let store = SnapshotStore::new(10);
            let slots: Vec<_> = (0..5)
                .map(|i| slot(&store, &format!("S{i}")))
                .collect();
            let mut outbox = Outbox::default();
            let mut held: HashMap<String, (u64, f64)> = HashMap::new();
            let mut subscribed = [false; 5];
            let receive = |frame: &str, held: &mut HashMap<String, (u64, f64)>| {
                let quotes = quotes_of(frame);
                let mut seen = std::collections::HashSet::new();
                for (symbol, seq, bid) in quotes {
                    assert!(seen.insert(symbol.clone()), "{symbol} twice in one frame");
                    if let Some((old, _)) = held.get(&symbol) {
                        assert!(seq > *old, "{symbol}: seq {seq} after {old}");
                    }
                    held.insert(symbol, (seq, bid));
                }
            };
            for step in steps {
                match step {
                    Step::Tick { symbol, price } => {
                        store.apply(&slots[symbol], &tick(slots[symbol].symbol, f64::from(price)), 1);
                        outbox.mark_dirty(slots[symbol].id);
                    }
                    Step::Drain => {
                        if let Some(frame) = outbox.drain(Instant::now()).update { receive(&frame, &mut held) }
                    }
                    Step::Unsubscribe(i) => {
                        outbox.unsubscribe(slots[i].id);
                        subscribed[i] = false;
                        held.remove(slots[i].symbol.as_str());
                    }
                    Step::Subscribe(i) => {
                        if !subscribed[i] {
                            subscribed[i] = true;
                            if let Some(snap) = outbox.subscribe(Arc::clone(&slots[i]), Delivery::default(), None) {
                                let frame = format!(r#"{{"quotes":[{}]}}"#, snap.json);
                                receive(&frame, &mut held);
                            }
                        }
                    }
                }
                prop_assert!(outbox.pending() <= outbox.subscription_count());
            }
            if let Some(frame) = outbox.drain(Instant::now()).update { receive(&frame, &mut held) }
            for (i, slot) in slots.iter().enumerate() {
                if !subscribed[i] { continue }
                let latest = slot.latest().map(|s| (s.quote.seq, s.quote.bid.unwrap_or_default()));
                prop_assert_eq!(held.get(slot.symbol.as_str()).copied(), latest);
            }
        }
    }
}
