//! The fan-out step: one batch of ticks from one feed into the store, and
//! each touched symbol marked dirty on every connection subscribed to it,
//! once per batch however many ticks it had. Trades are encoded once and
//! queued on every connection that asked for them, in feed order.
//!
//! Pure and synchronous: the receive time is a parameter, nothing here
//! reads the clock, records a metric or awaits. [`Fanout::apply`] returns
//! what happened ([`ApplyReport`]) and the caller counts it once per batch.
//! Only one task calls it (the ingest task), so each symbol's `seq` grows by
//! exactly one per accepted tick with no lock on the quote.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tickgate_feeds::{Tick, TickError, TickKind, VenueEvent};

use super::encode;
use super::mailbox::Mailbox;
use super::store::{FeedId, Slot, SnapshotStore, StoreFull, SymbolId};
use super::subscriptions::{hand_over, lock_subscribers};
use super::venue::{self, RecentTrades, VenueReport};

/// Why a tick was not applied: the `reason` label of
/// `tickgate_ticks_rejected_total`, a closed set.
pub const REJECT_REASONS: [&str; 7] = [
    "missing_symbol",
    "bad_price",
    "bad_size",
    "bad_timestamp",
    "empty",
    "symbol_table_full",
    "stale_seq",
];

const TABLE_FULL: usize = 5;
const STALE_SEQ: usize = 6;

fn reject_index(error: &TickError) -> usize {
    match error {
        TickError::MissingSymbol => 0,
        TickError::BadPrice => 1,
        TickError::BadSize => 2,
        TickError::BadTimestamp => 3,
        TickError::Empty => 4,
    }
}

/// What applying one batch did, for the caller to count.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ApplyReport {
    /// Ticks merged into the store.
    pub accepted: u64,
    /// Ticks refused, per reason of [`REJECT_REASONS`] (same order).
    pub rejected: [u64; REJECT_REASONS.len()],
    /// Trades dropped from full trade buffers of slow connections.
    pub trades_lost: u64,
    /// Symbols marked dirty (each once, however many ticks it had).
    pub symbols_touched: u64,
    /// Feed-to-gateway lag of each accepted tick that carried a timestamp,
    /// in microseconds, in feed order.
    pub lag_micros: Vec<u64>,
    /// Symbols this feed serves since this batch and did not before (first
    /// data, failover to a backup, fail-back), each once, so the caller can
    /// tell their clients what changed ([`crate::freshness`]).
    pub moved: Vec<SymbolId>,
}

impl ApplyReport {
    /// The reasons with at least one rejected tick, and their counts.
    pub fn rejections(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        REJECT_REASONS
            .iter()
            .zip(self.rejected)
            .filter(|(_, n)| *n > 0)
            .map(|(reason, n)| (*reason, n))
    }

    fn clear(&mut self) {
        self.accepted = 0;
        self.rejected = [0; REJECT_REASONS.len()];
        self.trades_lost = 0;
        self.symbols_touched = 0;
        self.lag_micros.clear();
        self.moved.clear();
    }
}

/// Applies batches; keeps its scratch space between them, so the steady
/// state allocates nothing but the quotes' JSON.
#[derive(Default)]
pub struct Fanout {
    touched: Vec<Arc<Slot>>,
    /// `touched_flag[id]`: symbol already in `touched` for this batch.
    touched_flag: Vec<bool>,
    /// Writers to wake once the whole batch is marked.
    wake: Vec<Arc<Mailbox>>,
    report: ApplyReport,
    /// The last trades of each symbol, for corrections and cancels.
    recent: RecentTrades,
    venue_report: VenueReport,
}

impl Fanout {
    /// Applies `ticks` of feed `feed`, received at `now_micros` (µs since the
    /// Unix epoch), and marks every touched symbol dirty on its subscribers.
    pub fn apply(
        &mut self,
        store: &SnapshotStore,
        feed: FeedId,
        ticks: &[Tick],
        now_micros: u64,
    ) -> &ApplyReport {
        self.report.clear();
        for tick in ticks {
            let symbol = match tick.validate(now_micros) {
                Ok(symbol) => symbol,
                Err(error) => {
                    self.report.rejected[reject_index(&error)] += 1;
                    continue;
                }
            };
            let slot = match store.get_or_insert(symbol) {
                Ok((slot, created)) => {
                    if created {
                        // Clients may have waited for it: before its first
                        // tick, so that tick reaches them as an update.
                        hand_over(store, &slot);
                    }
                    slot
                }
                Err(StoreFull(_)) => {
                    self.report.rejected[TABLE_FULL] += 1;
                    continue;
                }
            };
            let Some(snapshot) = store.apply(&slot, tick, now_micros) else {
                self.report.rejected[STALE_SEQ] += 1;
                continue;
            };
            if tick.kind == TickKind::Trade
                && let Some(price) = tick.last
            {
                self.recent
                    .record(slot.id, tick.trade_id, price, tick.last_size);
                if slot.wants_trades() {
                    self.report.trades_lost +=
                        fan_out_trade(&slot, tick, snapshot.quote.seq, now_micros);
                }
            }
            self.report.accepted += 1;
            // Only this task writes `feed`: a load first keeps the steady
            // state free of writes to the shared slot.
            if slot.feed.load(Ordering::Relaxed) != feed {
                slot.feed.store(feed, Ordering::Relaxed);
                self.report.moved.push(slot.id);
            }
            if let Some(ts) = tick.ts {
                self.report.lag_micros.push(now_micros.saturating_sub(ts));
            }
            self.touch(slot);
        }
        self.report.symbols_touched = self.touched.len() as u64;
        self.mark_touched();
        &self.report
    }

    /// Applies venue events of one feed, in order: trading statuses go to
    /// the symbols' subscribers, and a correction or cancel of a symbol's
    /// `last` trade revises its quote, which is then marked dirty like a
    /// tick's (see [`super::venue`]).
    pub fn apply_venue(
        &mut self,
        store: &SnapshotStore,
        events: &[VenueEvent],
        now_micros: u64,
    ) -> &VenueReport {
        self.venue_report = VenueReport::default();
        let mut revised = Vec::new();
        venue::apply_venue(
            store,
            &mut self.recent,
            events,
            now_micros,
            &mut self.venue_report,
            |slot| revised.push(slot),
        );
        for slot in revised {
            self.touch(slot);
        }
        self.mark_touched();
        &self.venue_report
    }

    /// Adds `slot` to the symbols to mark dirty, once per batch.
    fn touch(&mut self, slot: Arc<Slot>) {
        let id = slot.id as usize;
        if self.touched_flag.len() <= id {
            self.touched_flag.resize(id + 1, false);
        }
        if !self.touched_flag[id] {
            self.touched_flag[id] = true;
            self.touched.push(slot);
        }
    }

    /// Marks every touched symbol dirty on its subscribers.
    fn mark_touched(&mut self) {
        for slot in self.touched.drain(..) {
            self.touched_flag[slot.id as usize] = false;
            for (mailbox, index) in lock_subscribers(&slot).iter() {
                if mailbox.mark_dirty_deferred(index, slot.id) {
                    self.wake.push(Arc::clone(mailbox));
                }
            }
        }
        // Woken only now, a writer finds every symbol of this batch dirty
        // and sends them in one frame.
        for mailbox in self.wake.drain(..) {
            mailbox.wake_writer();
        }
    }
}

/// Encodes a trade once and queues it on every connection that asked for
/// this symbol's trades, in feed order. The quote it changed is marked dirty
/// after the batch, and the writer sends that quote before the trade.
/// Returns how many connections had to drop their oldest trade.
fn fan_out_trade(slot: &Slot, tick: &Tick, seq: u64, received_micros: u64) -> u64 {
    let Some(price) = tick.last else {
        return 0;
    };
    let ts = tick.ts.unwrap_or(received_micros);
    let json: Arc<str> = encode::trade(slot.symbol, seq, price, tick.last_size, ts).into();
    let mut lost = 0;
    for (mailbox, index) in lock_subscribers(slot).iter() {
        lost += u64::from(mailbox.push_trade(index, slot.id, &json));
    }
    lost
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Instant;

    use proptest::prelude::*;
    use tickgate_feeds::Symbol;

    use super::*;
    use crate::fanout::{Delivery, Mailbox, subscriptions};

    const NOW: u64 = 1_764_000_000_000_000;

    fn sym(name: &str) -> Symbol {
        Symbol::parse(name).expect("valid")
    }

    fn quote(symbol: &str, bid: f64) -> Tick {
        Tick {
            symbol: Some(sym(symbol)),
            bid: Some(bid),
            ..Tick::default()
        }
    }

    fn trade(symbol: &str, price: f64) -> Tick {
        Tick {
            symbol: Some(sym(symbol)),
            kind: TickKind::Trade,
            last: Some(price),
            ..Tick::default()
        }
    }

    fn subscribed(store: &SnapshotStore, symbols: &[&str], delivery: Delivery) -> Arc<Mailbox> {
        subscribed_with(store, symbols, delivery, 64)
    }

    fn subscribed_with(
        store: &SnapshotStore,
        symbols: &[&str],
        delivery: Delivery,
        trade_buffer: usize,
    ) -> Arc<Mailbox> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mailbox = Arc::new(Mailbox::new(id, trade_buffer, Instant::now()));
        let symbols: Vec<Symbol> = symbols.iter().map(|s| sym(s)).collect();
        subscriptions::subscribe(
            store,
            &mailbox,
            &symbols,
            subscriptions::SubscribeLimits {
                per_connection: 100,
                interest: 100,
            },
            delivery,
            &Default::default(),
            |_| Vec::new(),
        );
        mailbox.drain(Instant::now());
        mailbox
    }

    /// (symbol, seq, bid) of every quote in an update frame.
    fn quotes_of(frame: &str) -> Vec<(String, u64, f64)> {
        let value: serde_json::Value = serde_json::from_str(frame).expect("json");
        value["quotes"]
            .as_array()
            .expect("quotes")
            .iter()
            .map(|q| {
                (
                    q["symbol"].as_str().expect("symbol").to_string(),
                    q["seq"].as_u64().expect("seq"),
                    q["bid"].as_f64().unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn a_batch_marks_each_symbol_once_and_the_writer_sends_the_latest() {
        let store = SnapshotStore::new(16);
        let mailbox = subscribed(&store, &["AAPL", "MSFT"], Delivery::default());
        let mut fanout = Fanout::default();
        let batch = [
            quote("AAPL", 1.0),
            quote("MSFT", 5.0),
            quote("AAPL", 2.0),
            quote("AAPL", 3.0),
        ];
        let report = fanout.apply(&store, 0, &batch, NOW).clone();
        assert_eq!(report.accepted, 4);
        assert_eq!(report.symbols_touched, 2);
        assert_eq!(mailbox.lock().pending(), 2);
        let drain = mailbox.drain(Instant::now());
        let mut quotes = quotes_of(drain.update.as_deref().expect("an update"));
        quotes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            quotes,
            vec![("AAPL".into(), 3, 3.0), ("MSFT".into(), 1, 5.0)]
        );
        assert_eq!(drain.conflated, 2);
    }

    #[test]
    fn a_batch_reports_each_symbol_that_moved_feed_once() {
        let store = SnapshotStore::new(16);
        let mut fanout = Fanout::default();
        let first = [quote("AAPL", 1.0), quote("MSFT", 2.0), quote("AAPL", 3.0)];
        let id = |name| store.get(&sym(name)).expect("stored").id;
        let moved = fanout.apply(&store, 0, &first, NOW).moved.clone();
        assert_eq!(moved, vec![id("AAPL"), id("MSFT")], "first data");
        let moved = fanout.apply(&store, 0, &first, NOW).moved.clone();
        assert!(moved.is_empty(), "same feed again: {moved:?}");
        let moved = fanout
            .apply(&store, 1, &[quote("MSFT", 4.0), quote("MSFT", 5.0)], NOW)
            .moved
            .clone();
        assert_eq!(moved, vec![id("MSFT")], "a backup took MSFT over");
        let rejected = fanout.apply(&store, 1, &[quote("AAPL", -1.0)], NOW);
        assert!(rejected.moved.is_empty(), "a rejected tick moves nothing");
    }

    #[test]
    fn a_feed_publishing_a_waited_for_symbol_serves_its_clients_at_once() {
        let store = SnapshotStore::new(16);
        let trades = Delivery {
            trades: true,
            ..Delivery::default()
        };
        // No feed has published NEW: the client waits for it, no slot yet.
        let mailbox = subscribed_with(&store, &["NEW"], trades, 8);
        assert!(store.get(&sym("NEW")).is_none());
        assert_eq!(store.interest().symbol_count(), 1);

        let report = Fanout::default()
            .apply(&store, 0, &[quote("NEW", 1.0), trade("NEW", 1.5)], NOW)
            .clone();

        assert_eq!(report.accepted, 2);
        assert_eq!(store.interest().symbol_count(), 0, "handed over");
        let drain = mailbox.drain(Instant::now());
        assert_eq!(
            quotes_of(drain.update.as_deref().expect("an update")),
            vec![("NEW".into(), 2, 1.0)]
        );
        assert_eq!(drain.trade_count, 1, "its trade option came along");
    }

    #[test]
    fn unsubscribed_symbols_are_stored_but_reach_nobody() {
        let store = SnapshotStore::new(16);
        let mailbox = subscribed(&store, &["AAPL"], Delivery::default());
        let report = Fanout::default()
            .apply(&store, 0, &[quote("TSLA", 9.0)], NOW)
            .clone();
        assert_eq!(report.accepted, 1);
        assert!(store.get(&sym("TSLA")).and_then(|s| s.latest()).is_some());
        assert!(mailbox.drain(Instant::now()).is_empty());
    }

    #[test]
    fn rejected_ticks_are_counted_by_reason_and_change_nothing() {
        let store = SnapshotStore::new(1);
        let mut fanout = Fanout::default();
        fanout.apply(&store, 0, &[quote("AAPL", 1.0)], NOW);
        let stale = Tick {
            seq: Some(5),
            ..quote("AAPL", 2.0)
        };
        let older = Tick {
            seq: Some(4),
            ..quote("AAPL", 3.0)
        };
        let batch = [
            quote("AAPL", -1.0),
            Tick::default(),
            Tick {
                symbol: Some(sym("AAPL")),
                ..Tick::default()
            },
            quote("MSFT", 1.0),
            stale,
            older,
        ];
        let report = fanout.apply(&store, 0, &batch, NOW).clone();
        assert_eq!(report.accepted, 1);
        let rejected: HashMap<_, _> = report.rejections().collect();
        assert_eq!(
            rejected,
            HashMap::from([
                ("bad_price", 1),
                ("missing_symbol", 1),
                ("empty", 1),
                ("symbol_table_full", 1),
                ("stale_seq", 1),
            ])
        );
        let latest = store
            .get(&sym("AAPL"))
            .and_then(|s| s.latest())
            .expect("data");
        // The upstream seq is adopted; the older one after it changed nothing.
        assert_eq!((latest.quote.seq, latest.quote.bid), (5, Some(2.0)));
        assert!(store.get(&sym("MSFT")).is_none());
    }

    #[test]
    fn each_batch_starts_a_fresh_report() {
        let store = SnapshotStore::new(4);
        let mut fanout = Fanout::default();
        fanout.apply(&store, 0, &[quote("AAPL", -1.0)], NOW);
        let report = fanout.apply(&store, 0, &[quote("AAPL", 1.0)], NOW);
        assert_eq!(report.rejections().count(), 0);
        assert_eq!(report.accepted, 1);
    }

    #[test]
    fn the_feed_and_the_lag_of_each_tick_are_recorded() {
        let store = SnapshotStore::new(4);
        let stamped = Tick {
            ts: Some(NOW - 250_000),
            ..quote("AAPL", 1.0)
        };
        let report = Fanout::default()
            .apply(&store, 7, &[stamped, quote("MSFT", 1.0)], NOW)
            .clone();
        assert_eq!(report.lag_micros, vec![250_000]);
        let slot = store.get(&sym("AAPL")).expect("known");
        assert_eq!(slot.feed.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn trades_reach_only_those_who_asked_and_overflow_is_counted() {
        let store = SnapshotStore::new(4);
        let wants = Delivery {
            trades: true,
            ..Delivery::default()
        };
        let tape = subscribed_with(&store, &["AAPL"], wants, 2);
        let quotes_only = subscribed(&store, &["AAPL"], Delivery::default());
        let batch = [trade("AAPL", 1.0), trade("AAPL", 2.0), trade("AAPL", 3.0)];
        let report = Fanout::default().apply(&store, 0, &batch, NOW).clone();
        assert_eq!(report.trades_lost, 1);
        let drain = tape.drain(Instant::now());
        assert_eq!(drain.trade_count, 2);
        assert_eq!(drain.lost_count, 1);
        let trades = drain.trades.expect("trades");
        assert!(trades.find("2.0").expect("second") < trades.find("3.0").expect("third"));
        let plain = quotes_only.drain(Instant::now());
        assert!(plain.trades.is_none());
        assert_eq!(plain.quotes, 1);
    }

    proptest! {
        /// Whatever the batches and whenever the writer drains: each
        /// symbol appears at most once per update, its seq only grows, and
        /// the last value the client receives is the store's latest.
        #[test]
        fn conflation_keeps_order_and_the_last_value_always_arrives(
            steps in proptest::collection::vec(
                (proptest::collection::vec((0usize..4, 1u16..500), 0..20), any::<bool>()),
                1..60,
            )
        ) {
            let names = ["A", "B", "C", "D"];
            let store = SnapshotStore::new(8);
            let mailbox = subscribed(&store, &names[..3], Delivery::default());
            let mut fanout = Fanout::default();
            let mut held: HashMap<String, (u64, f64)> = HashMap::new();
            let mut receive = |frame: Option<String>| {
                let Some(frame) = frame else { return Ok(()) };
                let quotes = quotes_of(&frame);
                let mut seen = std::collections::HashSet::new();
                for (symbol, seq, bid) in quotes {
                    prop_assert!(seen.insert(symbol.clone()), "{symbol} twice in one update");
                    let before = held.get(&symbol).map_or(0, |h| h.0);
                    prop_assert!(seq > before, "{symbol}: seq {seq} after {before}");
                    held.insert(symbol, (seq, bid));
                }
                Ok(())
            };
            for (batch, drain) in steps {
                let ticks: Vec<Tick> = batch
                    .iter()
                    .map(|(i, price)| quote(names[*i], f64::from(*price)))
                    .collect();
                fanout.apply(&store, 0, &ticks, NOW);
                if drain {
                    receive(mailbox.drain(Instant::now()).update)?;
                }
            }
            receive(mailbox.drain(Instant::now()).update)?;
            for name in &names[..3] {
                let latest = store.get(&sym(name)).and_then(|s| s.latest());
                let expected = latest.map(|s| (s.quote.seq, s.quote.bid.unwrap_or_default()));
                prop_assert_eq!(held.get(*name).copied(), expected);
            }
            prop_assert!(!held.contains_key("D"));
        }
    }
}
