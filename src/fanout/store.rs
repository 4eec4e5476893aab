//! Latest quote per symbol. The ingest task writes here; connection writers
//! read. Nothing here awaits.
//!
//! Every symbol a feed has published has one [`Slot`] with a stable
//! [`SymbolId`]. A slot holds the latest [`Snapshot`] behind an
//! `ArcSwapOption`, so a writer reads it without a lock while the ingest task
//! swaps in the next one, and the set of connections subscribed to the symbol
//! (see [`super::subscriptions`]).
//!
//! Symbols only clients have named are not here: they are
//! [`Interest`](super::interest::Interest), kept beside the table (and
//! bounded on its own) so clients cannot use up `max_symbols`, and handed
//! over to the new slot when a feed first publishes the symbol.
//!
//! The slot table is read-mostly: a map and a vector behind one `RwLock`,
//! held for a lookup or one append, never across other work. Adding a symbol
//! appends to both (amortized O(1)); the table is never copied.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use arc_swap::ArcSwapOption;
use rustc_hash::FxHashMap;
use tickgate_feeds::{Quote, Symbol, Tick, TradingStatus};

use super::interest::Interest;
use super::subscriptions::SubscriberSet;

/// Dense index of a symbol in the store, stable for the life of the process.
pub type SymbolId = u32;

/// Dense index of a feed, stored on each slot it updates.
pub type FeedId = u32;

/// `Slot::feed` of a symbol no feed has updated yet.
pub const NO_FEED: FeedId = FeedId::MAX;

/// A symbol's latest quote, with its JSON encoded once and shared by every
/// connection that sends it.
#[derive(Debug)]
pub struct Snapshot {
    pub quote: Quote,
    /// `quote` as the protocol's Quote object.
    pub json: String,
    /// Gateway receive time of the tick that produced this snapshot (µs).
    pub received_micros: u64,
}

/// Everything the gateway keeps for one symbol.
pub struct Slot {
    pub id: SymbolId,
    pub symbol: Symbol,
    latest: ArcSwapOption<Snapshot>,
    /// The feed that last updated this symbol ([`NO_FEED`] before any), so a
    /// feed going stale can be announced to exactly the clients it affects.
    pub feed: AtomicU32,
    /// Connections subscribed to this symbol. Locked briefly by subscribe,
    /// unsubscribe and the ingest task's fan-out; never across an await.
    pub subscribers: Mutex<SubscriberSet>,
    /// Subscriptions of this symbol that asked for trades: the ingest task
    /// encodes and fans out a trade only when there is one.
    trade_subscribers: AtomicU32,
    /// The venue halted this symbol and has not resumed it (only what feeds
    /// said since this process started). Written by the ingest task while it
    /// holds `subscribers`, so a subscribe that joins after reads the new
    /// value (see `Outbox::sync_trading`).
    halted: AtomicBool,
}

impl Slot {
    /// The latest snapshot, if the symbol has data. Cheap; never blocks.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.latest.load_full()
    }

    /// A subscription of this symbol starts (`true`) or stops wanting trades.
    pub fn trade_interest(&self, on: bool) {
        if on {
            self.trade_subscribers.fetch_add(1, Ordering::Relaxed);
        } else {
            self.trade_subscribers.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Whether any connection wants this symbol's trades.
    pub fn wants_trades(&self) -> bool {
        self.trade_subscribers.load(Ordering::Relaxed) > 0
    }

    /// Whether the symbol trades, as its venue last said (`Trading` when
    /// no venue said anything).
    pub fn trading(&self) -> TradingStatus {
        if self.halted.load(Ordering::Acquire) {
            TradingStatus::Halted
        } else {
            TradingStatus::Trading
        }
    }

    /// Records the venue's word; returns whether it changed anything. Only
    /// the ingest task calls this, holding the subscriber lock.
    pub(super) fn set_trading(&self, status: TradingStatus) -> bool {
        let halted = status == TradingStatus::Halted;
        self.halted.swap(halted, Ordering::AcqRel) != halted
    }
}

#[derive(Default)]
struct Table {
    by_symbol: FxHashMap<Symbol, SymbolId>,
    slots: Vec<Arc<Slot>>,
}

/// The store is full: `max_symbols` distinct symbols are already known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the symbol table is full ({0} symbols)")]
pub struct StoreFull(pub usize);

/// Latest quote per symbol: slots found under a short read lock, quotes
/// read without one.
pub struct SnapshotStore {
    /// At most `max_symbols` slots, all published by feeds.
    table: RwLock<Table>,
    max_symbols: usize,
    /// Symbols clients wait for that no feed has published yet.
    interest: Interest,
    ticks_applied: AtomicU64,
    /// Within one epoch every symbol's `seq` only grows; a `resume` from
    /// another epoch is not compared by seq (docs/protocol.md, Epochs).
    epoch: String,
}

impl SnapshotStore {
    /// An empty store that will hold at most `max_symbols` symbols.
    pub fn new(max_symbols: usize) -> Self {
        Self {
            table: RwLock::new(Table::default()),
            max_symbols,
            interest: Interest::default(),
            ticks_applied: AtomicU64::new(0),
            epoch: String::new(),
        }
    }

    /// The same store, in `epoch` (a gateway process's own id, chosen at
    /// start by `Gateway::start`).
    pub fn with_epoch(mut self, epoch: String) -> Self {
        self.epoch = epoch;
        self
    }

    /// The epoch this store's seqs count in.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The slot of `symbol`, if a feed has published it.
    pub fn get(&self, symbol: &Symbol) -> Option<Arc<Slot>> {
        let table = self.read();
        table
            .by_symbol
            .get(symbol)
            .map(|&id| Arc::clone(&table.slots[id as usize]))
    }

    /// The slot of `symbol`, created empty if it is new.
    pub fn get_or_create(&self, symbol: Symbol) -> Result<Arc<Slot>, StoreFull> {
        self.get_or_insert(symbol).map(|(slot, _)| slot)
    }

    /// The slot of `symbol` and whether this call created it. Creating
    /// appends one entry to the map and the vector: the table is never
    /// copied, so N new symbols cost O(N) in all.
    pub fn get_or_insert(&self, symbol: Symbol) -> Result<(Arc<Slot>, bool), StoreFull> {
        if let Some(slot) = self.get(&symbol) {
            return Ok((slot, false));
        }
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        // Another thread may have added it while we waited.
        if let Some(&id) = table.by_symbol.get(&symbol) {
            return Ok((Arc::clone(&table.slots[id as usize]), false));
        }
        if table.slots.len() >= self.max_symbols {
            return Err(StoreFull(self.max_symbols));
        }
        let id = table.slots.len() as SymbolId;
        let slot = Arc::new(Slot {
            id,
            symbol,
            latest: ArcSwapOption::empty(),
            feed: AtomicU32::new(NO_FEED),
            subscribers: Mutex::new(SubscriberSet::default()),
            trade_subscribers: AtomicU32::new(0),
            halted: AtomicBool::new(false),
        });
        table.slots.push(Arc::clone(&slot));
        table.by_symbol.insert(symbol, id);
        Ok((slot, true))
    }

    /// Symbols clients are waiting for that no feed has published yet.
    pub fn interest(&self) -> &Interest {
        &self.interest
    }

    /// Merges a validated tick into `slot`'s quote and publishes the result.
    /// Returns `None` for a tick carrying an upstream `seq` that is not newer
    /// than the stored one (a replayed or out-of-date message).
    ///
    /// Only the ingest task calls this, so read-modify-write needs no lock.
    pub fn apply(&self, slot: &Slot, tick: &Tick, received_micros: u64) -> Option<Arc<Snapshot>> {
        let mut quote = slot
            .latest
            .load()
            .as_ref()
            .map_or_else(|| Quote::new(slot.symbol), |s| s.quote.clone());
        if !quote.apply(tick, received_micros) {
            return None;
        }
        // Serializing a struct of numbers and a validated ASCII symbol cannot fail.
        let json = serde_json::to_string(&quote).unwrap_or_default();
        let snapshot = Arc::new(Snapshot {
            quote,
            json,
            received_micros,
        });
        slot.latest.store(Some(Arc::clone(&snapshot)));
        self.ticks_applied.fetch_add(1, Ordering::Relaxed);
        Some(snapshot)
    }

    /// Number of symbols known (with or without data).
    pub fn symbol_count(&self) -> usize {
        self.read().slots.len()
    }

    /// Ticks applied since start.
    pub fn ticks_applied(&self) -> u64 {
        self.ticks_applied.load(Ordering::Relaxed)
    }

    /// Every slot, for whole-store walks (introspection, metrics).
    pub fn slots(&self) -> Vec<Arc<Slot>> {
        self.read().slots.clone()
    }

    /// The table for a lookup; a poisoned lock still holds a valid table
    /// (every change is one push and one insert).
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("valid")
    }

    #[test]
    fn apply_merges_and_encodes_once() {
        let store = SnapshotStore::new(10);
        let slot = store.get_or_create(sym("AAPL")).expect("room");
        assert!(slot.latest().is_none());
        let tick = Tick {
            symbol: Some(sym("AAPL")),
            bid: Some(1.0),
            ..Tick::default()
        };
        store.apply(&slot, &tick, 7);
        let snap = store
            .apply(
                &slot,
                &Tick {
                    ask: Some(2.0),
                    ..tick
                },
                8,
            )
            .expect("applied");
        assert_eq!(snap.quote.seq, 2);
        assert_eq!(
            snap.json,
            r#"{"symbol":"AAPL","seq":2,"bid":1.0,"ask":2.0,"ts":8}"#
        );
        assert!(Arc::ptr_eq(&slot.latest().expect("data"), &snap));
        assert_eq!(store.ticks_applied(), 2);
    }

    #[test]
    fn slots_are_stable_and_bounded() {
        let store = SnapshotStore::new(2);
        let a = store.get_or_create(sym("A")).expect("room");
        let b = store.get_or_create(sym("B")).expect("room");
        assert_eq!((a.id, b.id), (0, 1));
        assert!(Arc::ptr_eq(
            &a,
            &store.get_or_create(sym("A")).expect("existing")
        ));
        assert_eq!(store.get_or_create(sym("C")).err(), Some(StoreFull(2)));
        assert!(store.get(&sym("C")).is_none());
        assert_eq!(store.symbol_count(), 2);
    }

    /// Bytes allocated (this thread) while adding `n` new symbols to an
    /// empty store: the work of growing the table, measured without a clock.
    fn bytes_to_add(n: usize) -> usize {
        let store = SnapshotStore::new(n);
        let symbols: Vec<Symbol> = (0..n).map(|i| sym(&format!("S{i}"))).collect();
        let added = allocation_counter::measure(|| {
            for &symbol in &symbols {
                store.get_or_create(symbol).expect("room");
            }
        });
        added.bytes_total as usize
    }

    #[test]
    fn adding_n_symbols_costs_o_of_n_not_a_table_copy_each() {
        // Linear growth (amortized appends) allocates about 4 times as much
        // for 4 times the symbols; a copy of the table per new symbol, 16.
        let small = bytes_to_add(2_000);
        let large = bytes_to_add(8_000);
        assert!(
            large < 6 * small,
            "8000 symbols allocated {large} bytes, 2000 allocated {small}: not linear"
        );
        // And a bounded cost per symbol: a slot plus its share of the table.
        assert!(large / 8_000 < 1_024, "{} bytes per symbol", large / 8_000);
    }
}
