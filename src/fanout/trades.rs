//! The trade queue of one connection. Trades are events and never conflate:
//! they wait here in feed order, each encoded once for every connection that
//! wants it. The queue is bounded: when full, the oldest trade is dropped
//! and counted per symbol, and the next drain announces the loss.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tickgate_feeds::Symbol;

/// Where the subscription a trade belongs to lives in its outbox.
pub type SubIndex = u32;

/// At most `capacity` trades, oldest first; a full queue drops its oldest.
pub struct TradeQueue {
    queue: VecDeque<(SubIndex, Arc<str>)>,
    capacity: usize,
    /// Trades dropped from the front since the last drain, per symbol.
    lost: BTreeMap<Symbol, u64>,
}

impl TradeQueue {
    /// An empty queue holding at most `capacity` trades (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            lost: BTreeMap::new(),
        }
    }

    /// Queues a trade of the subscription at `index`. Returns the index of
    /// the subscription whose oldest trade was dropped to make room; the
    /// caller names its symbol to [`TradeQueue::record_lost`].
    pub fn push(&mut self, index: SubIndex, trade: &Arc<str>) -> Option<SubIndex> {
        let evicted = if self.queue.len() >= self.capacity {
            self.queue.pop_front().map(|(oldest, _)| oldest)
        } else {
            None
        };
        self.queue.push_back((index, Arc::clone(trade)));
        evicted
    }

    /// Counts a dropped trade of `symbol` for the next announcement.
    pub fn record_lost(&mut self, symbol: Symbol) {
        *self.lost.entry(symbol).or_default() += 1;
    }

    /// Drops every waiting trade of the subscription at `index`.
    pub fn remove(&mut self, index: SubIndex) {
        self.queue.retain(|(t, _)| *t != index);
    }

    /// Forgets the losses of `symbol` (it was unsubscribed).
    pub fn forget_lost(&mut self, symbol: &Symbol) {
        self.lost.remove(symbol);
    }

    /// Empties the queue and the losses.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.lost.clear();
    }

    /// Trades waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// No trade waiting and no loss to announce.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.lost.is_empty()
    }

    /// The subscriptions of the waiting trades, oldest first.
    pub fn indices(&self) -> impl Iterator<Item = SubIndex> + '_ {
        self.queue.iter().map(|(index, _)| *index)
    }

    /// Takes the losses since the last call, if any.
    pub fn take_lost(&mut self) -> Option<BTreeMap<Symbol, u64>> {
        (!self.lost.is_empty()).then(|| std::mem::take(&mut self.lost))
    }

    /// Takes every waiting trade, oldest first.
    pub fn take(&mut self) -> VecDeque<(SubIndex, Arc<str>)> {
        std::mem::take(&mut self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_its_oldest_and_names_whose_it_was() {
        let mut queue = TradeQueue::new(2);
        let t: Arc<str> = "{}".into();
        assert_eq!(queue.push(1, &t), None);
        assert_eq!(queue.push(2, &t), None);
        assert_eq!(queue.push(3, &t), Some(1));
        assert_eq!(queue.indices().collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn losses_are_taken_once() {
        let mut queue = TradeQueue::new(1);
        let symbol = Symbol::parse("A").expect("valid");
        queue.record_lost(symbol);
        queue.record_lost(symbol);
        assert!(!queue.is_empty());
        assert_eq!(
            queue.take_lost().and_then(|l| l.get(&symbol).copied()),
            Some(2)
        );
        assert_eq!(queue.take_lost(), None);
        assert!(queue.is_empty());
    }
}
