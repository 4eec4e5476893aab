//! Venue events applied to the store: a halt or resumption sets a symbol's
//! trading status and queues a `trading` message for exactly its
//! subscribers; a correction or cancel of the trade shown as `last`
//! revises the quote from a small history of recent trades.
//!
//! Pure and synchronous like [`super::apply`]: the receive time is a
//! parameter, and [`VenueReport`] says what happened for the caller to count.
//!
//! The rule for `last` (docs/feeds.md, "Halts, corrections and cancels"):
//! each symbol keeps its last [`RECENT_TRADES`] trades with their venue ids.
//! A cancel of the trade shown as `last` reverts `last`/`last_size` to the
//! newest trade still standing, or clears them when none is left; a
//! correction of it replaces them. A cancel or correction of an older trade
//! (or one too old to be remembered) changes nothing clients see: the
//! history is still revised, so a later cancel reverts to corrected values.

use std::collections::VecDeque;

use tickgate_feeds::{Cleared, Symbol, Tick, TradingStatus, VenueEvent};

use super::store::{SnapshotStore, StoreFull, SymbolId};
use super::subscriptions::{hand_over, lock_subscribers};

/// Trades remembered per symbol for corrections and cancels. 24 bytes each
/// (id, price, size), allocated at the symbol's first trade: about 400
/// bytes per traded symbol with the deque's header.
pub const RECENT_TRADES: usize = 16;

/// The `kind` label of `tickgate_venue_events_total`, a closed set.
pub const VENUE_EVENT_KINDS: [&str; 4] = ["halt", "resume", "correction", "cancel"];

/// The `outcome` label: `applied` changed what clients see; `ignored` did
/// not (a repeated status, an older or unknown trade, an invalid value).
pub const VENUE_EVENT_OUTCOMES: [&str; 2] = ["applied", "ignored"];

/// What applying one batch of venue events did, for the caller to count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VenueReport {
    /// Per kind of [`VENUE_EVENT_KINDS`], per outcome of
    /// [`VENUE_EVENT_OUTCOMES`] (same order).
    pub counts: [[u64; 2]; 4],
}

impl VenueReport {
    /// Every (kind, outcome) with at least one event, and its count.
    pub fn counted(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        VENUE_EVENT_KINDS
            .iter()
            .zip(self.counts)
            .flat_map(|(kind, outcomes)| {
                VENUE_EVENT_OUTCOMES
                    .iter()
                    .zip(outcomes)
                    .map(move |(outcome, n)| (*kind, *outcome, n))
            })
            .filter(|(_, _, n)| *n > 0)
    }

    /// Counts one event.
    pub fn count(&mut self, event: &VenueEvent, applied: bool) {
        let kind = match event {
            VenueEvent::TradingStatus {
                status: TradingStatus::Halted,
                ..
            } => 0,
            VenueEvent::TradingStatus { .. } => 1,
            VenueEvent::TradeCorrected { .. } => 2,
            VenueEvent::TradeCancelled { .. } => 3,
        };
        self.counts[kind][usize::from(!applied)] += 1;
    }
}

/// One remembered trade.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Trade {
    id: Option<u64>,
    price: f64,
    size: Option<f64>,
}

/// The last [`RECENT_TRADES`] trades of every symbol, by symbol id. Only the
/// ingest task (through [`super::Fanout`]) touches it.
#[derive(Default)]
pub struct RecentTrades {
    by_symbol: Vec<VecDeque<Trade>>,
}

impl RecentTrades {
    /// Remembers a trade just applied as `id`'s `last`; the oldest one goes
    /// when [`RECENT_TRADES`] are held.
    pub fn record(&mut self, id: SymbolId, trade_id: Option<u64>, price: f64, size: Option<f64>) {
        let index = id as usize;
        if self.by_symbol.len() <= index {
            self.by_symbol.resize_with(index + 1, VecDeque::new);
        }
        let trades = &mut self.by_symbol[index];
        if trades.len() == RECENT_TRADES {
            trades.pop_front();
        }
        trades.push_back(Trade {
            id: trade_id,
            price,
            size,
        });
    }

    /// Applies a cancel (`correction == None`) or a correction of trade
    /// `trade_id`. Returns the `last`/`last_size` tick clients must get when
    /// the trade was the one shown as `last` (`shown_last` is the quote's
    /// current `last`), `None` when nothing visible changes.
    fn revise(
        &mut self,
        id: SymbolId,
        trade_id: u64,
        correction: Option<(Option<f64>, Option<f64>)>,
        shown_last: Option<f64>,
    ) -> Option<Tick> {
        let trades = self.by_symbol.get_mut(id as usize)?;
        let position = trades.iter().rposition(|t| t.id == Some(trade_id))?;
        let shown = position + 1 == trades.len() && shown_last == Some(trades[position].price);
        match correction {
            None => {
                trades.remove(position);
            }
            Some((price, size)) => {
                let trade = &mut trades[position];
                trade.price = price.unwrap_or(trade.price);
                trade.size = size.or(trade.size);
            }
        }
        if !shown {
            return None;
        }
        let mut tick = Tick::default();
        match trades.back() {
            Some(standing) => {
                tick.last = Some(standing.price);
                match standing.size {
                    Some(size) => tick.last_size = Some(size),
                    None => tick.cleared = Cleared::LAST_SIZE,
                }
            }
            None => tick.cleared = Cleared::LAST.with(Cleared::LAST_SIZE),
        }
        Some(tick)
    }
}

/// A corrected price must be a positive finite number and a size finite and
/// non-negative, as for any tick.
fn valid_correction(price: Option<f64>, size: Option<f64>) -> bool {
    price.is_none_or(|p| p.is_finite() && p > 0.0) && size.is_none_or(|s| s.is_finite() && s >= 0.0)
}

/// Applies venue events in order; see the module docs. `touched` collects
/// the slots whose quote changed, for the caller to mark dirty once.
pub(super) fn apply_venue(
    store: &SnapshotStore,
    recent: &mut RecentTrades,
    events: &[VenueEvent],
    now_micros: u64,
    report: &mut VenueReport,
    mut touched: impl FnMut(std::sync::Arc<super::store::Slot>),
) {
    for event in events {
        let applied = match *event {
            VenueEvent::TradingStatus { symbol, status, .. } => set_trading(store, symbol, status),
            VenueEvent::TradeCorrected {
                symbol,
                trade_id,
                price,
                size,
                ts,
                ..
            } => {
                valid_correction(price, size)
                    && revise(
                        store,
                        recent,
                        (symbol, trade_id, ts),
                        Some((price, size)),
                        now_micros,
                        &mut touched,
                    )
            }
            VenueEvent::TradeCancelled {
                symbol,
                trade_id,
                ts,
                ..
            } => revise(
                store,
                recent,
                (symbol, trade_id, ts),
                None,
                now_micros,
                &mut touched,
            ),
        };
        report.count(event, applied);
    }
}

/// Sets `symbol`'s trading status (creating its slot, like a first tick
/// would) and queues the change on each of its subscribers. The status is
/// changed while the subscriber set is locked, so a connection joining at
/// the same time either is in the set or reads the new status when it
/// catches up (`Outbox::catch_up`): never both, never neither.
fn set_trading(store: &SnapshotStore, symbol: Symbol, status: TradingStatus) -> bool {
    let slot = match store.get_or_insert(symbol) {
        Ok((slot, created)) => {
            if created {
                hand_over(store, &slot);
            }
            slot
        }
        Err(StoreFull(_)) => return false,
    };
    let subscribers = lock_subscribers(&slot);
    if !slot.set_trading(status) {
        return false;
    }
    for (mailbox, index) in subscribers.iter() {
        mailbox.sync_trading(index, slot.id);
    }
    true
}

/// A cancel or correction of `trade_id`: revises the history and, when the
/// trade was the one shown as `last`, the quote (seq advances by one).
fn revise(
    store: &SnapshotStore,
    recent: &mut RecentTrades,
    (symbol, trade_id, ts): (Symbol, Option<u64>, Option<u64>),
    correction: Option<(Option<f64>, Option<f64>)>,
    now_micros: u64,
    touched: &mut impl FnMut(std::sync::Arc<super::store::Slot>),
) -> bool {
    let (Some(slot), Some(trade_id)) = (store.get(&symbol), trade_id) else {
        return false;
    };
    let shown_last = slot.latest().and_then(|s| s.quote.last);
    let Some(mut tick) = recent.revise(slot.id, trade_id, correction, shown_last) else {
        return false;
    };
    tick.symbol = Some(symbol);
    tick.ts = ts;
    if tick.validate(now_micros).is_err() {
        // An implausible venue time: the gateway's receive time stands in.
        tick.ts = None;
    }
    if store.apply(&slot, &tick, now_micros).is_none() {
        return false;
    }
    touched(slot);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_of_last_reverts_to_the_newest_trade_still_standing() {
        let mut recent = RecentTrades::default();
        recent.record(0, Some(1), 10.0, Some(100.0));
        recent.record(0, Some(2), 11.0, None);
        recent.record(0, Some(3), 12.0, Some(300.0));
        // Trade 2 is older than `last`: nothing visible, but it is gone.
        assert_eq!(recent.revise(0, 2, None, Some(12.0)), None);
        let tick = recent.revise(0, 3, None, Some(12.0)).expect("visible");
        assert_eq!((tick.last, tick.last_size), (Some(10.0), Some(100.0)));
        let tick = recent.revise(0, 1, None, Some(10.0)).expect("visible");
        assert_eq!((tick.last, tick.last_size), (None, None));
        assert!(
            tick.cleared
                .contains(Cleared::LAST.with(Cleared::LAST_SIZE))
        );
        assert_eq!(recent.revise(0, 1, None, None), None, "already gone");
    }

    #[test]
    fn a_correction_of_last_replaces_it_and_of_an_older_trade_is_kept_for_later() {
        let mut recent = RecentTrades::default();
        recent.record(4, Some(1), 10.0, Some(100.0));
        recent.record(4, Some(2), 11.0, Some(200.0));
        assert_eq!(
            recent.revise(4, 1, Some((Some(9.5), None)), Some(11.0)),
            None
        );
        let tick = recent
            .revise(4, 2, Some((Some(11.5), Some(250.0))), Some(11.0))
            .expect("visible");
        assert_eq!((tick.last, tick.last_size), (Some(11.5), Some(250.0)));
        let tick = recent.revise(4, 2, None, Some(11.5)).expect("visible");
        assert_eq!(
            (tick.last, tick.last_size),
            (Some(9.5), Some(100.0)),
            "the earlier correction stands"
        );
    }

    #[test]
    fn last_set_by_something_else_is_not_reverted_and_history_is_bounded() {
        let mut recent = RecentTrades::default();
        recent.record(0, Some(1), 10.0, None);
        // A quote moved `last` after the trade: the trade is not shown.
        assert_eq!(recent.revise(0, 1, None, Some(10.5)), None);
        for id in 0..100 {
            recent.record(1, Some(id), 1.0 + id as f64, None);
        }
        assert_eq!(recent.by_symbol[1].len(), RECENT_TRADES);
        assert_eq!(recent.revise(1, 50, None, Some(100.0)), None, "forgotten");
        assert!(recent.revise(1, 99, None, Some(100.0)).is_some());
    }

    #[test]
    fn invalid_corrections_are_refused() {
        assert!(valid_correction(Some(1.0), Some(0.0)));
        assert!(valid_correction(None, None));
        for (price, size) in [
            (Some(0.0), None),
            (Some(-1.0), None),
            (Some(f64::NAN), None),
            (None, Some(-5.0)),
            (None, Some(f64::INFINITY)),
        ] {
            assert!(!valid_correction(price, size), "{price:?} {size:?}");
        }
    }
}
