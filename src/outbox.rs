//! Per-connection conflation: what a connection still owes its client.
//!
//! The ingest task marks symbols dirty here; the connection's writer drains
//! the outbox whenever its socket can take more. The outbox holds at most one
//! pending entry per subscribed symbol, so its size is bounded by the
//! subscription count however slowly the client reads: a newer tick simply
//! leaves the entry dirty, and the writer reads the *latest* snapshot when it
//! finally sends. Nothing here awaits; [`Mailbox`] adds the lock and the
//! wake-up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tickgate_feeds::Quote;

use rustc_hash::FxHashMap;
use tokio::sync::Notify;

use crate::store::{Slot, Snapshot, SymbolId};

/// Identifies a connection for the lifetime of the process.
pub type ConnId = u64;

/// Control frames (acks, snapshots, errors) a connection may have queued
/// before its reader stops reading requests: a client that floods requests
/// without reading replies stalls itself, not the gateway.
pub const MAX_CONTROL_FRAMES: usize = 32;

struct Subscription {
    slot: Arc<Slot>,
    /// Highest seq this client has been sent (0 before any data).
    last_seq: u64,
    /// Whether `id` is already in `Outbox::dirty`.
    dirty: bool,
    delivery: Delivery,
    /// When the last update of this symbol went out (rate-capped only).
    last_sent_at: Option<Instant>,
    /// The quote this client holds (delta mode only): deltas are computed
    /// against it.
    last_sent: Option<Arc<Snapshot>>,
}

/// How one subscription is delivered. The default is the contract
/// behaviour: every change, as soon as the socket takes it, full quotes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Delivery {
    /// Rate cap: at most one update of the symbol per interval; the latest
    /// value is what goes out at each slot.
    pub min_interval: Option<Duration>,
    /// Updates carry only the fields that changed since the quote this
    /// client last received (plus `symbol`, `seq`, `ts`).
    pub delta: bool,
    /// Updates carry `conflated` (ticks skipped for this client since its
    /// previous update of the symbol) and `received_ts` (gateway receive
    /// time, µs).
    pub meta: bool,
}

impl Delivery {
    /// Whether quotes must be encoded for this connection alone.
    fn personal(&self) -> bool {
        self.delta || self.meta
    }
}

/// What a writer takes out of the outbox in one go.
#[derive(Debug, Default)]
pub struct Drain {
    /// Replies to requests, in order; sent before `update`.
    pub control: Vec<String>,
    /// One `update` frame holding each changed symbol at most once.
    pub update: Option<String>,
    /// Quotes in `update`.
    pub quotes: u64,
    /// Ticks this client will never see because a newer value replaced them
    /// (sum of seq gaps in `update`).
    pub conflated: u64,
    /// Oldest gateway receive time (µs) among the quotes in `update`.
    pub oldest_received_micros: Option<u64>,
    /// Earliest time a rate-capped symbol still pending may be sent.
    pub next_due: Option<Instant>,
}

impl Drain {
    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.control.is_empty() && self.update.is_none()
    }
}

/// The pending state of one connection. See the module docs.
#[derive(Default)]
pub struct Outbox {
    subs: FxHashMap<SymbolId, Subscription>,
    /// Symbols changed since the last drain; at most one entry per subscription.
    dirty: Vec<SymbolId>,
    /// At most [`MAX_CONTROL_FRAMES`] frames in normal operation (the reader
    /// waits when full).
    control: VecDeque<String>,
}

impl Outbox {
    /// Records that `id` changed. Returns true when the outbox went from empty
    /// to non-empty (the writer needs a wake-up). Symbols this connection is
    /// not subscribed to are ignored.
    pub fn mark_dirty(&mut self, id: SymbolId) -> bool {
        let was_empty = self.is_empty();
        let Some(sub) = self.subs.get_mut(&id) else {
            return false;
        };
        if sub.dirty {
            return false;
        }
        sub.dirty = true;
        self.dirty.push(id);
        was_empty
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
        if let Some(existing) = self.subs.get_mut(&slot.id) {
            existing.delivery = delivery;
            return None;
        }
        let latest = slot.latest();
        let last_seq = latest.as_ref().map_or(0, |s| s.quote.seq);
        let last_sent = latest.clone().filter(|_| delivery.delta);
        self.subs.insert(
            slot.id,
            Subscription {
                slot,
                last_seq,
                dirty: false,
                delivery,
                last_sent_at: None,
                last_sent,
            },
        );
        match (latest, resume) {
            (Some(snapshot), Some(held)) if snapshot.quote.seq == held => None,
            (latest, _) => latest,
        }
    }

    /// Drops a subscription and its pending entry, so that subscribing again
    /// cannot leave two entries for one symbol.
    pub fn unsubscribe(&mut self, id: SymbolId) -> Option<Arc<Slot>> {
        let sub = self.subs.remove(&id)?;
        if sub.dirty {
            self.dirty.retain(|&d| d != id);
        }
        Some(sub.slot)
    }

    /// Removes every subscription, returning their slots.
    pub fn unsubscribe_all(&mut self) -> Vec<Arc<Slot>> {
        self.dirty.clear();
        self.subs.drain().map(|(_, sub)| sub.slot).collect()
    }

    /// Subscribed symbols whose slot matches `pick`.
    pub fn symbols_where(&self, pick: impl Fn(&Slot) -> bool) -> Vec<tickgate_feeds::Symbol> {
        let mut symbols: Vec<_> = self
            .subs
            .values()
            .filter(|s| pick(&s.slot))
            .map(|s| s.slot.symbol)
            .collect();
        symbols.sort();
        symbols
    }

    /// Whether `id` is subscribed.
    pub fn is_subscribed(&self, id: SymbolId) -> bool {
        self.subs.contains_key(&id)
    }

    /// Number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// Number of dirty entries (never more than the subscription count).
    pub fn pending(&self) -> usize {
        self.dirty.len()
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

    fn is_empty(&self) -> bool {
        self.dirty.is_empty() && self.control.is_empty()
    }

    /// Takes everything owed: queued replies first, then one `update` frame
    /// with the latest quote of each dirty symbol whose seq is newer than what
    /// the client already holds.
    ///
    /// A rate-capped symbol whose slot has not come yet stays pending, and
    /// `next_due` says when to drain again.
    pub fn drain(&mut self, now: Instant) -> Drain {
        let mut drain = Drain {
            control: self.control.drain(..).collect(),
            ..Drain::default()
        };
        if self.dirty.is_empty() {
            return drain;
        }
        let mut frame = String::with_capacity(32 + self.dirty.len() * 192);
        frame.push_str(r#"{"type":"update","quotes":["#);
        let mut deferred = Vec::new();
        for id in self.dirty.drain(..) {
            let Some(sub) = self.subs.get_mut(&id) else {
                continue;
            };
            if let (Some(interval), Some(at)) = (sub.delivery.min_interval, sub.last_sent_at)
                && now < at + interval
            {
                let due = at + interval;
                drain.next_due = Some(drain.next_due.map_or(due, |d| d.min(due)));
                deferred.push(id);
                continue;
            }
            sub.dirty = false;
            let Some(snapshot) = sub.slot.latest() else {
                continue;
            };
            let seq = snapshot.quote.seq;
            if seq <= sub.last_seq {
                continue;
            }
            let conflated = seq - sub.last_seq - 1;
            drain.conflated += conflated;
            sub.last_seq = seq;
            if sub.delivery.min_interval.is_some() {
                sub.last_sent_at = Some(now);
            }
            if drain.quotes > 0 {
                frame.push(',');
            }
            if sub.delivery.personal() {
                encode_personal(&mut frame, &snapshot, sub, conflated);
            } else {
                frame.push_str(&snapshot.json);
            }
            drain.quotes += 1;
            let received = snapshot.received_micros;
            drain.oldest_received_micros = Some(
                drain
                    .oldest_received_micros
                    .map_or(received, |o| o.min(received)),
            );
        }
        self.dirty = deferred;
        frame.push_str("]}");
        if drain.quotes > 0 {
            drain.update = Some(frame);
        }
        drain
    }
}

/// Appends a quote encoded for one connection: only changed fields in delta
/// mode, plus freshness fields in meta mode.
fn encode_personal(
    frame: &mut String,
    snapshot: &Arc<Snapshot>,
    sub: &mut Subscription,
    conflated: u64,
) {
    let body = match sub.last_sent.as_ref().filter(|_| sub.delivery.delta) {
        Some(previous) => delta_json(&previous.quote, &snapshot.quote),
        None => snapshot.json.clone(),
    };
    if sub.delivery.delta {
        sub.last_sent = Some(Arc::clone(snapshot));
    }
    if sub.delivery.meta {
        // `body` is a JSON object: splice the extra fields before its `}`.
        frame.push_str(&body[..body.len() - 1]);
        frame.push_str(&format!(
            r#","conflated":{conflated},"received_ts":{}}}"#,
            snapshot.received_micros
        ));
    } else {
        frame.push_str(&body);
    }
}

/// `current` as a Quote object holding `symbol`, `seq`, `ts` and only the
/// fields whose value differs from `previous` (a field that became unknown
/// is sent as `null`).
pub fn delta_json(previous: &Quote, current: &Quote) -> String {
    let (Ok(Value::Object(before)), Ok(Value::Object(mut after))) = (
        serde_json::to_value(previous),
        serde_json::to_value(current),
    ) else {
        return String::new();
    };
    for (key, old) in &before {
        match after.get(key) {
            Some(new) if new == old && !matches!(key.as_str(), "symbol" | "seq" | "ts") => {
                after.remove(key);
            }
            None => {
                after.insert(key.clone(), Value::Null);
            }
            _ => {}
        }
    }
    Value::Object(after).to_string()
}

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
    kicked: Notify,
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
    pub opened: std::time::Instant,
    /// Milliseconds after `opened` when the write in progress started, plus
    /// one; 0 when the writer is idle.
    writing_since: AtomicU64,
    /// Bytes of the batch being written (0 when idle).
    inflight_bytes: AtomicU64,
    /// Quotes delivered in updates.
    pub updates_sent: AtomicU64,
    /// Ticks this client never saw because newer values replaced them.
    pub conflated: AtomicU64,
}

impl ConnStats {
    fn new() -> Self {
        Self {
            opened: std::time::Instant::now(),
            writing_since: AtomicU64::new(0),
            inflight_bytes: AtomicU64::new(0),
            updates_sent: AtomicU64::new(0),
            conflated: AtomicU64::new(0),
        }
    }

    /// A write of `bytes` starts.
    pub fn write_started(&self, bytes: usize) {
        let since = self.opened.elapsed().as_millis() as u64 + 1;
        self.writing_since.store(since, Ordering::Relaxed);
        self.inflight_bytes.store(bytes as u64, Ordering::Relaxed);
    }

    /// The write finished (the socket took everything).
    pub fn write_finished(&self) {
        self.writing_since.store(0, Ordering::Relaxed);
        self.inflight_bytes.store(0, Ordering::Relaxed);
    }

    /// How long the current write has been blocked, if one is in progress.
    pub fn blocked_for(&self) -> Option<std::time::Duration> {
        let since = self.writing_since.load(Ordering::Relaxed);
        (since > 0).then(|| {
            self.opened
                .elapsed()
                .saturating_sub(std::time::Duration::from_millis(since - 1))
        })
    }

    /// Bytes queued for this client's socket right now.
    pub fn inflight_bytes(&self) -> u64 {
        self.inflight_bytes.load(Ordering::Relaxed)
    }
}

impl Mailbox {
    /// An empty mailbox for connection `id`.
    pub fn new(id: ConnId) -> Self {
        Self {
            id,
            outbox: Mutex::new(Outbox::default()),
            wake: Notify::new(),
            drained: Notify::new(),
            stats: ConnStats::new(),
            kick: std::sync::OnceLock::new(),
            kicked: Notify::new(),
        }
    }

    /// Asks the connection to close; the first reason given wins.
    pub fn kick(&self, why: Kick) {
        if self.kick.set(why).is_ok() {
            self.kicked.notify_one();
        }
    }

    /// Resolves when the gateway asked this connection to close.
    pub async fn kicked(&self) -> Kick {
        loop {
            if let Some(why) = self.kick.get() {
                return *why;
            }
            self.kicked.notified().await;
        }
    }

    /// Locks the outbox. Never hold the guard across an await.
    pub fn lock(&self) -> MutexGuard<'_, Outbox> {
        // A panic while holding this lock leaves plain data behind; keep going.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `id` dirty and wakes the writer if needed.
    pub fn mark_dirty(&self, id: SymbolId) {
        let wake = self.lock().mark_dirty(id);
        if wake {
            self.wake.notify_one();
        }
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
        let drain = self.lock().drain(now);
        if !drain.control.is_empty() {
            self.drained.notify_one();
        }
        drain
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use tickgate_feeds::{Symbol, Tick};

    use super::*;
    use crate::store::SnapshotStore;

    fn tick(symbol: Symbol, price: f64) -> Tick {
        Tick {
            symbol: Some(symbol),
            bid: Some(price),
            ..Tick::default()
        }
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
        let aapl = store
            .get_or_create(Symbol::parse("AAPL").expect("valid"))
            .expect("room");
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
        let msft = store
            .get_or_create(Symbol::parse("MSFT").expect("valid"))
            .expect("room");
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
        let a = store
            .get_or_create(Symbol::parse("A").expect("valid"))
            .expect("room");
        let b = store
            .get_or_create(Symbol::parse("B").expect("valid"))
            .expect("room");
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

    #[test]
    fn a_rate_cap_sends_the_latest_value_once_per_slot() {
        let store = SnapshotStore::new(10);
        let aapl = store
            .get_or_create(Symbol::parse("AAPL").expect("valid"))
            .expect("room");
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
        let msft = store
            .get_or_create(Symbol::parse("MSFT").expect("valid"))
            .expect("room");
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
    fn resume_skips_the_snapshot_only_while_the_clients_seq_is_current() {
        let store = SnapshotStore::new(10);
        let a = store
            .get_or_create(Symbol::parse("A").expect("valid"))
            .expect("room");
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
            let slot = store.get_or_create(Symbol::parse("D").expect("valid")).expect("room");
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
                .map(|i| store.get_or_create(Symbol::parse(&format!("S{i}")).expect("valid")).expect("room"))
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
