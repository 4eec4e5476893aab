//! Symbols clients wait for that no feed has published yet. Sessions write
//! here; the fan-out step hands a symbol's waiting connections over to its
//! new slot when a feed first publishes it. Nothing here awaits.
//!
//! A client may subscribe to a well-formed symbol the gateway has not seen
//! (docs/protocol.md): it is listed under `no_data` and its first quote comes
//! as an `update`. Such a symbol is *interest*, not store state: it takes no
//! slot in the symbol table, so clients cannot use up `limits.max_symbols`,
//! which is kept for what feeds publish. Interest is bounded twice: per
//! connection it counts against the subscription limit like any held symbol,
//! and in total the distinct symbols waited for are capped
//! (`limits.max_interest`). It is released on unsubscribe and on disconnect.
//!
//! Lock order: the interest lock is taken before a connection's outbox and a
//! slot's subscriber set, never while holding either. Both the session's
//! changes and the hand-over run under it, so a symbol is never waited for
//! and subscribed at once, and a connection's held count (outbox plus
//! interest) never changes under its session.

use std::sync::{Arc, Mutex, MutexGuard};

use indexmap::IndexMap;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};
use tickgate_feeds::Symbol;

use super::delivery::{Delivery, Priority};
use super::mailbox::Mailbox;
use super::outbox::ConnId;

/// Every connection waiting for a symbol no feed has published yet.
#[derive(Default)]
pub struct Interest {
    book: Mutex<InterestBook>,
}

impl Interest {
    /// The book, for a change or a bounded run of them (one subscribe
    /// slice). A poisoned lock still holds a consistent book: every change
    /// updates both indexes before it can panic.
    pub fn lock(&self) -> MutexGuard<'_, InterestBook> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Distinct symbols waited for.
    pub fn symbol_count(&self) -> usize {
        self.lock().symbol_count()
    }
}

/// A connection waiting for a symbol, and how it asked to receive it.
pub struct Waiting {
    pub mailbox: Arc<Mailbox>,
    pub delivery: Delivery,
}

/// No more distinct symbols may be waited for: `limits.max_interest` are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the gateway already waits for {0} symbols no feed has published")]
pub struct InterestFull(pub usize);

/// Both directions of the interest relation. At most `max_interest` symbols;
/// per symbol, at most one entry per connection; per connection, at most
/// its subscription limit (checked by the caller, see
/// [`super::subscriptions::subscribe`]).
#[derive(Default)]
pub struct InterestBook {
    by_symbol: FxHashMap<Symbol, IndexMap<ConnId, Waiting, FxBuildHasher>>,
    by_conn: FxHashMap<ConnId, FxHashSet<Symbol>>,
}

impl InterestBook {
    /// Records that `mailbox`'s connection waits for `symbol` with
    /// `delivery` (idempotent: waiting again takes the new `delivery`).
    /// Refused when `symbol` is new and `max_symbols` are already waited for.
    pub fn add(
        &mut self,
        symbol: Symbol,
        mailbox: &Arc<Mailbox>,
        delivery: Delivery,
        max_symbols: usize,
    ) -> Result<(), InterestFull> {
        if !self.by_symbol.contains_key(&symbol) && self.by_symbol.len() >= max_symbols {
            return Err(InterestFull(max_symbols));
        }
        let waiting = self.by_symbol.entry(symbol).or_default();
        match waiting.get_mut(&mailbox.id) {
            // As for a subscription: asking again without a rank keeps it.
            Some(existing) => {
                let priority = delivery.priority.or(existing.delivery.priority);
                existing.delivery = Delivery {
                    priority,
                    ..delivery
                };
            }
            None => {
                let entry = Waiting {
                    mailbox: Arc::clone(mailbox),
                    delivery,
                };
                waiting.insert(mailbox.id, entry);
            }
        }
        self.by_conn.entry(mailbox.id).or_default().insert(symbol);
        Ok(())
    }

    /// Whether connection `conn` waits for `symbol`.
    pub fn holds(&self, conn: ConnId, symbol: &Symbol) -> bool {
        self.by_conn
            .get(&conn)
            .is_some_and(|symbols| symbols.contains(symbol))
    }

    /// Symbols connection `conn` waits for.
    pub fn count_of(&self, conn: ConnId) -> usize {
        self.by_conn.get(&conn).map_or(0, FxHashSet::len)
    }

    /// Stops `conn` waiting for `symbol`; returns whether it was.
    pub fn remove(&mut self, conn: ConnId, symbol: &Symbol) -> bool {
        let Some(symbols) = self.by_conn.get_mut(&conn) else {
            return false;
        };
        if !symbols.remove(symbol) {
            return false;
        }
        if symbols.is_empty() {
            self.by_conn.remove(&conn);
        }
        self.forget(conn, symbol);
        true
    }

    /// Stops `conn` waiting for anything (it is closing); returns how many
    /// symbols it waited for.
    pub fn remove_all(&mut self, conn: ConnId) -> usize {
        let Some(symbols) = self.by_conn.remove(&conn) else {
            return 0;
        };
        for symbol in &symbols {
            self.forget(conn, symbol);
        }
        symbols.len()
    }

    /// Takes every connection waiting for `symbol`, which a feed has just
    /// published: they become its subscribers.
    pub fn take(&mut self, symbol: &Symbol) -> Vec<Waiting> {
        let Some(waiting) = self.by_symbol.remove(symbol) else {
            return Vec::new();
        };
        for conn in waiting.keys() {
            if let Some(symbols) = self.by_conn.get_mut(conn) {
                symbols.remove(symbol);
                if symbols.is_empty() {
                    self.by_conn.remove(conn);
                }
            }
        }
        waiting.into_values().collect()
    }

    /// Distinct symbols waited for.
    pub fn symbol_count(&self) -> usize {
        self.by_symbol.len()
    }

    /// Ranks `symbol` for connection `conn`, which keeps the rank once the
    /// symbol is published. Returns whether `conn` waits for it.
    pub fn set_priority(&mut self, conn: ConnId, symbol: &Symbol, priority: Priority) -> bool {
        let Some(waiting) = self
            .by_symbol
            .get_mut(symbol)
            .and_then(|waiting| waiting.get_mut(&conn))
        else {
            return false;
        };
        waiting.delivery.priority = Some(priority);
        true
    }

    /// The symbols connection `conn` waits for that match `pick`.
    pub fn symbols_where(&self, conn: ConnId, pick: impl Fn(&Symbol) -> bool) -> Vec<Symbol> {
        self.by_conn.get(&conn).map_or_else(Vec::new, |symbols| {
            symbols.iter().filter(|s| pick(s)).copied().collect()
        })
    }

    /// Drops `conn` from `symbol`'s waiting list, and the symbol with the
    /// last one.
    fn forget(&mut self, conn: ConnId, symbol: &Symbol) {
        if let Some(waiting) = self.by_symbol.get_mut(symbol) {
            waiting.swap_remove(&conn);
            if waiting.is_empty() {
                self.by_symbol.remove(symbol);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn sym(name: &str) -> Symbol {
        Symbol::parse(name).expect("valid")
    }

    fn mailbox(id: ConnId) -> Arc<Mailbox> {
        Arc::new(Mailbox::new(id, 8, Instant::now()))
    }

    #[test]
    fn waiting_is_counted_per_connection_and_per_symbol() {
        let mut book = InterestBook::default();
        let (a, b) = (mailbox(1), mailbox(2));
        book.add(sym("X"), &a, Delivery::default(), 10)
            .expect("room");
        book.add(sym("X"), &b, Delivery::default(), 10)
            .expect("room");
        book.add(sym("Y"), &a, Delivery::default(), 10)
            .expect("room");
        // Waiting again changes nothing but the delivery.
        book.add(sym("Y"), &a, Delivery::default(), 10)
            .expect("room");
        assert_eq!((book.count_of(1), book.count_of(2)), (2, 1));
        assert_eq!(book.symbol_count(), 2);
        assert!(book.holds(2, &sym("X")));
        assert!(!book.holds(2, &sym("Y")));
    }

    #[test]
    fn unsubscribe_releases_and_the_last_waiter_frees_the_symbol() {
        let mut book = InterestBook::default();
        let (a, b) = (mailbox(1), mailbox(2));
        book.add(sym("X"), &a, Delivery::default(), 10)
            .expect("room");
        book.add(sym("X"), &b, Delivery::default(), 10)
            .expect("room");
        assert!(book.remove(1, &sym("X")));
        assert!(!book.remove(1, &sym("X")), "already released");
        assert_eq!((book.count_of(1), book.symbol_count()), (0, 1));
        assert!(book.remove(2, &sym("X")));
        assert_eq!(book.symbol_count(), 0);
        assert!(book.by_conn.is_empty());
    }

    #[test]
    fn disconnect_releases_everything_the_connection_waited_for() {
        let mut book = InterestBook::default();
        let (a, b) = (mailbox(1), mailbox(2));
        for name in ["X", "Y", "Z"] {
            book.add(sym(name), &a, Delivery::default(), 10)
                .expect("room");
        }
        book.add(sym("Z"), &b, Delivery::default(), 10)
            .expect("room");
        assert_eq!(book.remove_all(1), 3);
        assert_eq!(book.remove_all(1), 0);
        assert_eq!(book.symbol_count(), 1, "Z is still waited for by 2");
        assert!(book.holds(2, &sym("Z")));
    }

    #[test]
    fn the_total_cap_counts_distinct_symbols() {
        let mut book = InterestBook::default();
        let (a, b) = (mailbox(1), mailbox(2));
        book.add(sym("X"), &a, Delivery::default(), 2)
            .expect("room");
        book.add(sym("Y"), &a, Delivery::default(), 2)
            .expect("room");
        assert_eq!(
            book.add(sym("Z"), &b, Delivery::default(), 2),
            Err(InterestFull(2))
        );
        // A symbol already waited for costs nothing more.
        book.add(sym("X"), &b, Delivery::default(), 2)
            .expect("shared");
        assert!(
            !book.holds(2, &sym("Z")),
            "a refused symbol is not recorded"
        );
        assert_eq!(book.symbol_count(), 2);
        book.remove(1, &sym("Y"));
        book.add(sym("Z"), &b, Delivery::default(), 2)
            .expect("freed");
    }

    #[test]
    fn waiting_again_takes_the_new_options_and_keeps_the_rank() {
        let mut book = InterestBook::default();
        let a = mailbox(1);
        let ranked = Delivery {
            priority: Some(Priority::Background),
            ..Delivery::default()
        };
        book.add(sym("X"), &a, ranked, 10).expect("room");
        let trades = Delivery {
            trades: true,
            ..Delivery::default()
        };
        book.add(sym("X"), &a, trades, 10).expect("room");
        let taken = book.take(&sym("X"));
        assert!(taken[0].delivery.trades);
        assert_eq!(taken[0].delivery.priority, Some(Priority::Background));
    }

    #[test]
    fn take_hands_over_every_waiting_connection_once() {
        let mut book = InterestBook::default();
        let (a, b) = (mailbox(1), mailbox(2));
        book.add(sym("X"), &a, Delivery::default(), 10)
            .expect("room");
        book.add(sym("X"), &b, Delivery::default(), 10)
            .expect("room");
        book.add(sym("Y"), &a, Delivery::default(), 10)
            .expect("room");
        let mut taken: Vec<ConnId> = book.take(&sym("X")).iter().map(|w| w.mailbox.id).collect();
        taken.sort_unstable();
        assert_eq!(taken, [1, 2]);
        assert!(book.take(&sym("X")).is_empty());
        assert_eq!((book.count_of(1), book.count_of(2)), (1, 0));
        assert_eq!(book.symbol_count(), 1);
    }
}
