//! Which connections want which symbols, and the subscribe/unsubscribe rules.
//!
//! The index is kept per symbol, inside the store's [`Slot`]: the ingest task
//! looks up a symbol once and finds both its quote and its subscribers. This
//! module owns the set type and the operations that keep a slot's subscriber
//! set and a connection's [`Outbox`](super::outbox::Outbox) in agreement.
//!
//! Ordering rules that make "snapshot before any update, and no tick
//! missed" hold: the outbox records the subscription, reads the snapshot and
//! queues the reply holding it under one outbox lock, so the writer (which
//! sends queued replies before any update) cannot send an update first.
//! Then the connection joins the slot's subscribers, with the subscription's
//! index in its outbox, and catches up: a tick that landed between the
//! snapshot and joining marks the symbol dirty there.
//!
//! A symbol no feed has published yet has no slot: subscribing to it records
//! [interest](super::interest) instead, and [`hand_over`] turns that into a
//! subscription when a feed first publishes it. A connection's held count is
//! its subscriptions plus its interest ([`held`]); the subscription limit
//! applies to that sum.
//!
//! Every function here does work proportional to the symbols it is given
//! while holding locks the fan-out needs (the interest book, the outbox):
//! callers pass bounded slices (see `session::subscribe`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use indexmap::IndexMap;
use rustc_hash::{FxBuildHasher, FxHashMap};
use tickgate_feeds::Symbol;

use super::delivery::{Delivery, Priority};
use super::drain::FeedLiveness;
use super::encode;
use super::interest::{InterestFull, Waiting};
use super::mailbox::Mailbox;
use super::outbox::{ConnId, SubIndex};
use super::store::{Slot, SnapshotStore};

/// Subscribers of one symbol, each with the index of this symbol's
/// subscription in its outbox. Dense, so the fan-out loop is a slice walk;
/// removal is O(1) (swap-remove), so mass disconnects stay cheap.
#[derive(Default)]
pub struct SubscriberSet {
    conns: IndexMap<ConnId, (Arc<Mailbox>, SubIndex), FxBuildHasher>,
}

impl SubscriberSet {
    /// Adds a connection whose outbox holds this symbol at `index`
    /// (idempotent).
    pub fn insert(&mut self, mailbox: Arc<Mailbox>, index: SubIndex) {
        self.conns.insert(mailbox.id, (mailbox, index));
    }

    /// Removes a connection (idempotent).
    pub fn remove(&mut self, id: ConnId) {
        self.conns.swap_remove(&id);
    }

    /// Number of subscribers.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether nobody is subscribed.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The subscribers, each with its subscription's index.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<Mailbox>, SubIndex)> {
        self.conns
            .values()
            .map(|(mailbox, index)| (mailbox, *index))
    }
}

/// What a subscribe request did, for the replies.
#[derive(Debug, Default)]
pub struct Subscribed {
    /// Every valid requested symbol now subscribed (new or already held).
    pub symbols: Vec<Symbol>,
    /// Of those, the ones without any data yet.
    pub no_data: Vec<Symbol>,
    /// JSON of the current quote of each newly subscribed symbol with data.
    pub snapshot: Vec<String>,
    /// Symbols refused because the connection's limit was reached.
    pub over_limit: Vec<Symbol>,
    /// Symbols no feed has published, refused because the gateway already
    /// waits for `limits.max_interest` such symbols.
    pub interest_full: Vec<Symbol>,
    /// Resumed symbols left out of the snapshot: the client's seq is current.
    pub unchanged: usize,
}

/// The limits one subscribe applies.
#[derive(Debug, Clone, Copy)]
pub struct SubscribeLimits {
    /// Symbols the connection may hold (subscribed or waited for).
    pub per_connection: usize,
    /// Distinct symbols no feed has published that the gateway waits for.
    pub interest: usize,
}

/// Subscribes `mailbox` to `symbols` (already validated and de-duplicated),
/// keeping the connection at or under `limits.per_connection`. A symbol no
/// feed has published yet is recorded as interest (under
/// `limits.interest`), listed under `no_data`, and never takes a slot.
/// Refused symbols are recorded nowhere.
///
/// Every subscribed symbol takes `delivery`; `resume` holds the seq the client
/// already has per symbol, whose snapshot is skipped while still current.
///
/// `replies` builds the frames that answer the request (`subscribed`, the
/// snapshot); they are queued under the same outbox lock that records the
/// subscriptions, so no update of these symbols can be drained before them.
/// It must not lock the mailbox.
///
/// The snapshot of a `meta` subscription reads every feed as live: the
/// session uses [`subscribe_with`].
pub fn subscribe(
    store: &SnapshotStore,
    mailbox: &Arc<Mailbox>,
    symbols: &[Symbol],
    limits: SubscribeLimits,
    delivery: Delivery,
    resume: &FxHashMap<Symbol, u64>,
    replies: impl FnOnce(&Subscribed) -> Vec<String>,
) -> Subscribed {
    let request = Request {
        symbols,
        limits,
        delivery,
        resume,
    };
    subscribe_with(
        store,
        mailbox,
        request,
        &mut FeedLiveness::all_live(),
        replies,
    )
}

/// One slice of a subscribe request, as [`subscribe`] takes it.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub symbols: &'a [Symbol],
    pub limits: SubscribeLimits,
    pub delivery: Delivery,
    pub resume: &'a FxHashMap<Symbol, u64>,
}

/// [`subscribe`], with the `stale` flag of a `meta` subscription's
/// snapshot quotes read from `feeds`.
pub fn subscribe_with(
    store: &SnapshotStore,
    mailbox: &Arc<Mailbox>,
    request: Request<'_>,
    feeds: &mut FeedLiveness<'_>,
    replies: impl FnOnce(&Subscribed) -> Vec<String>,
) -> Subscribed {
    let Request {
        symbols,
        limits,
        delivery,
        resume,
    } = request;
    let mut result = Subscribed::default();
    let mut joined: Vec<(Arc<Slot>, SubIndex)> = Vec::new();
    let mut wake = false;
    {
        // Interest first (see the lock order in `interest`): no hand-over can
        // run while this slice decides between interest and subscription.
        let mut interest = store.interest().lock();
        let mut outbox = mailbox.lock();
        let held_now = outbox.subscription_count() + interest.count_of(mailbox.id);
        let mut room = limits.per_connection.saturating_sub(held_now);
        for &symbol in symbols {
            let known = store.get(&symbol);
            let held_already = match &known {
                Some(slot) => outbox.is_subscribed(slot.id),
                None => interest.holds(mailbox.id, &symbol),
            };
            // The limit first: a refused symbol is recorded nowhere.
            if !held_already && room == 0 {
                result.over_limit.push(symbol);
                continue;
            }
            let Some(slot) = known else {
                match interest.add(symbol, mailbox, delivery, limits.interest) {
                    Ok(()) => {
                        room -= usize::from(!held_already);
                        result.symbols.push(symbol);
                        result.no_data.push(symbol);
                    }
                    Err(InterestFull(_)) => result.interest_full.push(symbol),
                }
                continue;
            };
            room -= usize::from(!held_already);
            result.symbols.push(slot.symbol);
            let held = resume.get(&slot.symbol).copied();
            match outbox.subscribe(Arc::clone(&slot), delivery, held) {
                Some(snapshot) => {
                    let stale = delivery.meta && !feeds.is_live(slot.feed.load(Ordering::Relaxed));
                    result
                        .snapshot
                        .push(encode::snapshot_quote(&snapshot, delivery.meta, stale));
                }
                None if held.is_some() && slot.latest().is_some() => result.unchanged += 1,
                None if slot.latest().is_none() => result.no_data.push(slot.symbol),
                None => {}
            }
            if !held_already && let Some(index) = outbox.index_of(slot.id) {
                joined.push((slot, index));
            }
        }
        for frame in replies(&result) {
            wake |= outbox.push_control(frame);
        }
    }
    for (slot, index) in &joined {
        lock_subscribers(slot).insert(Arc::clone(mailbox), *index);
    }
    if !joined.is_empty() {
        let mut outbox = mailbox.lock();
        for (slot, _) in &joined {
            wake |= outbox.catch_up(slot.id);
        }
    }
    if wake {
        mailbox.wake.notify_one();
    }
    result
}

/// Makes every connection waiting for `slot`'s symbol a subscriber of it:
/// a feed has just published the symbol for the first time. The clients
/// already had `subscribed` (with the symbol under `no_data`), so from here
/// on they are served exactly like subscribers of a known symbol without
/// data: its first quote comes as an `update`. Costs one subscription per
/// waiting connection, at most once per symbol.
pub fn hand_over(store: &SnapshotStore, slot: &Arc<Slot>) {
    let mut interest = store.interest().lock();
    for Waiting { mailbox, delivery } in interest.take(&slot.symbol) {
        let index = {
            let mut outbox = mailbox.lock();
            outbox.subscribe(Arc::clone(slot), delivery, None);
            outbox.index_of(slot.id)
        };
        if let Some(index) = index {
            lock_subscribers(slot).insert(mailbox, index);
        }
    }
}

/// Symbols `mailbox`'s connection holds: subscribed or waited for.
pub fn held(store: &SnapshotStore, mailbox: &Mailbox) -> usize {
    let interest = store.interest().lock();
    interest.count_of(mailbox.id) + mailbox.lock().subscription_count()
}

/// Symbols `mailbox`'s connection holds (subscribed or waited for) that
/// match `pick`, sorted.
pub fn held_where(
    store: &SnapshotStore,
    mailbox: &Mailbox,
    pick: impl Fn(&Symbol) -> bool,
) -> Vec<Symbol> {
    let interest = store.interest().lock();
    let mut symbols = interest.symbols_where(mailbox.id, &pick);
    symbols.extend(mailbox.lock().symbols_where(|slot| pick(&slot.symbol)));
    symbols.sort();
    symbols
}

/// Ranks `symbol` for `mailbox`'s connection, subscribed or waited for.
/// Returns whether the connection holds it.
pub fn set_priority(
    store: &SnapshotStore,
    mailbox: &Mailbox,
    symbol: &Symbol,
    priority: Priority,
) -> bool {
    let mut interest = store.interest().lock();
    if interest.set_priority(mailbox.id, symbol, priority) {
        return true;
    }
    store
        .get(symbol)
        .is_some_and(|slot| mailbox.lock().set_priority(slot.id, priority))
}

/// Unsubscribes `mailbox` from `symbols`, or stops it waiting for them;
/// unknown or unheld symbols are fine. The interest lock is taken per
/// symbol, so a long list never holds it for long.
pub fn unsubscribe(store: &SnapshotStore, mailbox: &Mailbox, symbols: &[Symbol]) {
    for symbol in symbols {
        let mut interest = store.interest().lock();
        if interest.remove(mailbox.id, symbol) {
            continue;
        }
        let Some(slot) = store.get(symbol) else {
            continue;
        };
        if mailbox.lock().unsubscribe(slot.id).is_some() {
            drop(interest);
            lock_subscribers(&slot).remove(mailbox.id);
        }
    }
}

/// Removes every subscription and all interest of a closing connection;
/// returns how many symbols it held.
pub fn unsubscribe_all(store: &SnapshotStore, mailbox: &Mailbox) -> usize {
    // Once its interest is gone no hand-over can add a subscription.
    let waited = store.interest().lock().remove_all(mailbox.id);
    let slots = mailbox.lock().unsubscribe_all();
    for slot in &slots {
        lock_subscribers(slot).remove(mailbox.id);
    }
    waited + slots.len()
}

/// Locks a slot's subscriber set; a poisoned lock still holds valid data.
pub fn lock_subscribers(slot: &Slot) -> std::sync::MutexGuard<'_, SubscriberSet> {
    slot.subscribers.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::fanout::FeedId;

    fn sym(name: &str) -> Symbol {
        Symbol::parse(name).expect("valid")
    }

    const LIMITS: SubscribeLimits = SubscribeLimits {
        per_connection: 2,
        interest: 3,
    };

    fn mailbox(id: ConnId) -> Arc<Mailbox> {
        Arc::new(Mailbox::new(id, 8, Instant::now()))
    }

    fn sub(store: &SnapshotStore, mailbox: &Arc<Mailbox>, names: &[&str]) -> Subscribed {
        let symbols: Vec<Symbol> = names.iter().map(|n| sym(n)).collect();
        subscribe(
            store,
            mailbox,
            &symbols,
            LIMITS,
            Delivery::default(),
            &FxHashMap::default(),
            |_| Vec::new(),
        )
    }

    /// A feed publishes `name` for the first time, as `Fanout::apply` does.
    fn publish(store: &SnapshotStore, name: &str) -> Arc<Slot> {
        let (slot, created) = store.get_or_insert(sym(name)).expect("room");
        assert!(created);
        hand_over(store, &slot);
        slot
    }

    /// Subscribes to `A` (which has data from feed 2) with `delivery`
    /// while the feeds in `not_live` are not live; returns the snapshot
    /// quote.
    fn snapshot_quote(delivery: Delivery, not_live: Vec<FeedId>) -> (String, Arc<Slot>) {
        let store = SnapshotStore::new(16);
        let slot = publish(&store, "A");
        slot.feed.store(2, Ordering::Relaxed);
        let tick = tickgate_feeds::Tick {
            symbol: Some(slot.symbol),
            bid: Some(1.5),
            ..Default::default()
        };
        store.apply(&slot, &tick, 1_764_000_000_000_123);
        let read = move || not_live.clone();
        let request = Request {
            symbols: &[slot.symbol],
            limits: LIMITS,
            delivery,
            resume: &FxHashMap::default(),
        };
        let mut result = subscribe_with(
            &store,
            &mailbox(1),
            request,
            &mut FeedLiveness::new(&read),
            |_| Vec::new(),
        );
        assert_eq!(result.snapshot.len(), 1);
        (result.snapshot.remove(0), slot)
    }

    #[test]
    fn a_meta_snapshot_carries_received_ts_and_staleness() {
        let meta = Delivery {
            meta: true,
            ..Delivery::default()
        };
        for (not_live, stale) in [(vec![2], true), (vec![], false), (vec![5], false)] {
            let (quote, _) = snapshot_quote(meta, not_live);
            let quote: serde_json::Value = serde_json::from_str(&quote).expect("JSON");
            assert_eq!(quote["received_ts"], 1_764_000_000_000_123_u64);
            assert_eq!(quote["conflated"], 0);
            assert_eq!(quote["stale"], stale);
            assert_eq!(quote["bid"], 1.5);
        }
    }

    #[test]
    fn a_plain_snapshot_is_the_shared_encoding_byte_for_byte() {
        for delivery in [
            Delivery::default(),
            Delivery {
                delta: true,
                ..Delivery::default()
            },
        ] {
            let (quote, slot) = snapshot_quote(delivery, vec![2]);
            assert_eq!(quote, slot.latest().expect("data").json);
        }
    }

    #[test]
    fn symbols_no_feed_published_are_interest_not_store_slots() {
        let store = SnapshotStore::new(16);
        let a = mailbox(1);
        let result = sub(&store, &a, &["A", "B", "C", "D"]);
        assert_eq!(result.symbols, vec![sym("A"), sym("B")]);
        assert_eq!(result.no_data, vec![sym("A"), sym("B")]);
        assert_eq!(result.over_limit, vec![sym("C"), sym("D")]);
        assert_eq!(store.symbol_count(), 0, "clients take no slot");
        assert_eq!(
            store.interest().symbol_count(),
            2,
            "C and D are recorded nowhere"
        );
        assert_eq!(held(&store, &a), 2);
        // A symbol already held is still fine at the limit.
        let again = sub(&store, &a, &["A"]);
        assert_eq!(again.symbols, vec![sym("A")]);
        assert!(again.over_limit.is_empty());
        assert_eq!(held(&store, &a), 2);
    }

    #[test]
    fn unsubscribe_and_disconnect_release_interest() {
        let store = SnapshotStore::new(16);
        let (a, b) = (mailbox(1), mailbox(2));
        sub(&store, &a, &["A", "B"]);
        sub(&store, &b, &["B"]);
        unsubscribe(&store, &a, &[sym("A")]);
        assert_eq!(held(&store, &a), 1);
        assert_eq!(store.interest().symbol_count(), 1);
        // Room again under the connection's limit.
        assert_eq!(sub(&store, &a, &["C"]).symbols, vec![sym("C")]);
        assert_eq!(unsubscribe_all(&store, &a), 2);
        assert_eq!(held(&store, &a), 0);
        assert_eq!(store.interest().symbol_count(), 1, "B is still wanted by 2");
        assert_eq!(unsubscribe_all(&store, &b), 1);
        assert_eq!(store.interest().symbol_count(), 0);
    }

    #[test]
    fn the_interest_cap_refuses_new_symbols_and_records_nothing() {
        let store = SnapshotStore::new(16);
        let (a, b) = (mailbox(1), mailbox(2));
        sub(&store, &a, &["A", "B"]);
        sub(&store, &b, &["C"]);
        let full = sub(&store, &b, &["D", "A"]);
        assert_eq!(full.interest_full, vec![sym("D")]);
        assert_eq!(
            full.symbols,
            vec![sym("A")],
            "a symbol already waited for is free"
        );
        assert_eq!(store.interest().symbol_count(), 3);
        assert_eq!(held(&store, &b), 2);
        // Feeds are not held back by client interest.
        publish(&store, "E");
        assert_eq!(store.symbol_count(), 1);
    }

    #[test]
    fn a_feed_publishing_a_waited_for_symbol_subscribes_its_waiters() {
        let store = SnapshotStore::new(16);
        let (a, b) = (mailbox(1), mailbox(2));
        sub(&store, &a, &["X"]);
        sub(&store, &b, &["X", "Y"]);
        let slot = publish(&store, "X");
        assert_eq!(lock_subscribers(&slot).len(), 2);
        assert!(a.lock().is_subscribed(slot.id));
        assert_eq!(
            store.interest().symbol_count(),
            1,
            "only Y is still waited for"
        );
        assert_eq!(
            (held(&store, &a), held(&store, &b)),
            (1, 2),
            "held counts unchanged"
        );
        // From here on X is an ordinary subscription.
        unsubscribe(&store, &a, &[sym("X")]);
        assert!(!a.lock().is_subscribed(slot.id));
        assert_eq!(lock_subscribers(&slot).len(), 1);
        assert_eq!(unsubscribe_all(&store, &b), 2);
        assert!(lock_subscribers(&slot).is_empty());
    }

    #[test]
    fn subscribing_to_a_published_symbol_takes_no_interest() {
        let store = SnapshotStore::new(16);
        let slot = publish(&store, "X");
        let a = mailbox(1);
        let result = sub(&store, &a, &["X"]);
        assert_eq!(result.no_data, vec![sym("X")]);
        assert_eq!(store.interest().symbol_count(), 0);
        assert_eq!(lock_subscribers(&slot).len(), 1);
    }
}
