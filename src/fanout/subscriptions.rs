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

use std::sync::Arc;

use indexmap::IndexMap;
use rustc_hash::{FxBuildHasher, FxHashMap};
use tickgate_feeds::Symbol;

use super::delivery::Delivery;
use super::mailbox::Mailbox;
use super::outbox::{ConnId, SubIndex};
use super::store::{Slot, SnapshotStore, StoreFull};

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
    /// Symbols refused because the symbol table is full.
    pub table_full: Vec<Symbol>,
    /// Resumed symbols left out of the snapshot: the client's seq is current.
    pub unchanged: usize,
}

/// Subscribes `mailbox` to `symbols` (already validated and de-duplicated),
/// keeping the connection at or under `max_subscriptions`.
///
/// Every subscribed symbol takes `delivery`; `resume` holds the seq the client
/// already has per symbol, whose snapshot is skipped while still current.
///
/// `replies` builds the frames that answer the request (`subscribed`, the
/// snapshot); they are queued under the same outbox lock that records the
/// subscriptions, so no update of these symbols can be drained before them.
/// It must not lock the mailbox.
pub fn subscribe(
    store: &SnapshotStore,
    mailbox: &Arc<Mailbox>,
    symbols: &[Symbol],
    max_subscriptions: usize,
    delivery: Delivery,
    resume: &FxHashMap<Symbol, u64>,
    replies: impl FnOnce(&Subscribed) -> Vec<String>,
) -> Subscribed {
    let mut result = Subscribed::default();
    let mut joined: Vec<(Arc<Slot>, SubIndex)> = Vec::new();
    let mut wake = false;
    {
        let mut outbox = mailbox.lock();
        let mut room = max_subscriptions.saturating_sub(outbox.subscription_count());
        for &symbol in symbols {
            // The limit first: a symbol refused for it must not take a
            // permanent place in the symbol table.
            let known = store.get(&symbol);
            let held_already = known
                .as_ref()
                .is_some_and(|slot| outbox.is_subscribed(slot.id));
            if !held_already && room == 0 {
                result.over_limit.push(symbol);
                continue;
            }
            let slot = match known.map_or_else(|| store.get_or_create(symbol), Ok) {
                Ok(slot) => slot,
                Err(StoreFull(_)) => {
                    result.table_full.push(symbol);
                    continue;
                }
            };
            if !held_already {
                room -= 1;
            }
            result.symbols.push(slot.symbol);
            let held = resume.get(&slot.symbol).copied();
            match outbox.subscribe(Arc::clone(&slot), delivery, held) {
                Some(snapshot) => result.snapshot.push(snapshot.json.clone()),
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

/// Unsubscribes `mailbox` from `symbols`; unknown or unheld symbols are fine.
pub fn unsubscribe(store: &SnapshotStore, mailbox: &Mailbox, symbols: &[Symbol]) {
    for symbol in symbols {
        let Some(slot) = store.get(symbol) else {
            continue;
        };
        if mailbox.lock().unsubscribe(slot.id).is_some() {
            lock_subscribers(&slot).remove(mailbox.id);
        }
    }
}

/// Removes every subscription of a closing connection.
pub fn unsubscribe_all(mailbox: &Mailbox) -> usize {
    let slots = mailbox.lock().unsubscribe_all();
    for slot in &slots {
        lock_subscribers(slot).remove(mailbox.id);
    }
    slots.len()
}

/// Locks a slot's subscriber set; a poisoned lock still holds valid data.
pub fn lock_subscribers(slot: &Slot) -> std::sync::MutexGuard<'_, SubscriberSet> {
    slot.subscribers.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn sym(name: &str) -> Symbol {
        Symbol::parse(name).expect("valid")
    }

    #[test]
    fn symbols_refused_over_the_limit_take_no_place_in_the_symbol_table() {
        let store = SnapshotStore::new(16);
        let mailbox = Arc::new(Mailbox::new(1, 8, Instant::now()));
        let names: Vec<Symbol> = ["A", "B", "C", "D"].map(sym).to_vec();
        let result = subscribe(
            &store,
            &mailbox,
            &names,
            2,
            Delivery::default(),
            &FxHashMap::default(),
            |_| Vec::new(),
        );
        assert_eq!(result.symbols, vec![sym("A"), sym("B")]);
        assert_eq!(result.over_limit, vec![sym("C"), sym("D")]);
        assert_eq!(store.symbol_count(), 2, "C and D must not enter the table");
        // A symbol already held is still fine at the limit.
        let again = subscribe(
            &store,
            &mailbox,
            &[sym("A")],
            2,
            Delivery::default(),
            &FxHashMap::default(),
            |_| Vec::new(),
        );
        assert_eq!(again.symbols, vec![sym("A")]);
        assert!(again.over_limit.is_empty());
    }
}
