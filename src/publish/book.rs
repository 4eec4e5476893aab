//! The publisher's quote book: the latest quote per symbol, and which of
//! them JetStream has not acknowledged yet. Decides what is published and in
//! which order; no clock, no metrics, no NATS.

use std::collections::HashMap;

use bytes::Bytes;
use indexmap::IndexSet;
use tickgate_feeds::{Quote, Symbol, Tick, TradingStatus, VenueEvent};

/// One quote ready to publish: its symbol, subject and JSON payload.
pub(super) type Outgoing = (Symbol, String, Bytes);

/// Latest quote per symbol and the pending set.
#[derive(Debug, Default)]
pub(super) struct QuoteBook {
    /// Latest quote per symbol; one entry per symbol ever seen.
    quotes: HashMap<Symbol, Quote>,
    /// Symbols whose latest quote is not acknowledged yet, oldest change
    /// first. At most one entry per symbol: a newer tick replaces the
    /// pending quote, it does not queue behind it.
    pending: IndexSet<Symbol>,
    /// Trading status of every symbol a venue halted since this publisher
    /// started (or the stream said so at load): published in each of its
    /// messages from then on. Never-halted symbols carry no status.
    trading: HashMap<Symbol, TradingStatus>,
}

/// What one feed batch did to the book; the caller counts it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Applied {
    /// Ticks merged into a quote.
    pub(super) accepted: u64,
    /// Pending quotes replaced by a newer quote of the same symbol.
    pub(super) superseded: u64,
    /// Refused ticks by reason: a `TickError` kind, or `stale_seq`.
    pub(super) rejected: HashMap<&'static str, u64>,
}

impl QuoteBook {
    /// Replaces the quotes with the stream's last ones, so `seq` continues
    /// from them.
    pub(super) fn load(&mut self, quotes: HashMap<Symbol, Quote>) {
        self.quotes = quotes;
    }

    /// Takes the trading statuses the stream's last messages carried.
    pub(super) fn load_trading(&mut self, trading: HashMap<Symbol, TradingStatus>) {
        self.trading = trading;
    }

    /// Applies trading statuses: a change makes the symbol pending with its
    /// `seq` one higher (a new message, which gateways take as newer), and
    /// a symbol with no quote yet gets an empty one stamped `now`. Returns,
    /// per event, whether it changed anything; corrections and cancels are
    /// not carried on the bus (docs/nats.md) and change nothing.
    pub(super) fn apply_venue(&mut self, events: &[VenueEvent], now: u64) -> Vec<bool> {
        events
            .iter()
            .map(|event| {
                let VenueEvent::TradingStatus { symbol, status, .. } = *event else {
                    return false;
                };
                let before = self.trading.insert(symbol, status);
                if before.unwrap_or(TradingStatus::Trading) == status {
                    return false;
                }
                let quote = self.quotes.entry(symbol).or_insert_with(|| Quote {
                    ts: now,
                    ..Quote::new(symbol)
                });
                quote.seq += 1;
                self.pending.insert(symbol);
                true
            })
            .collect()
    }

    /// Symbols in the book.
    pub(super) fn symbols(&self) -> usize {
        self.quotes.len()
    }

    /// Symbols whose latest quote waits for an acknowledgement.
    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Merges ticks received at `now` (microseconds) into the quotes; each
    /// accepted tick makes its symbol pending.
    pub(super) fn apply(&mut self, ticks: &[Tick], now: u64) -> Applied {
        let mut applied = Applied::default();
        for tick in ticks {
            let symbol = match tick.validate(now) {
                Ok(symbol) => symbol,
                Err(error) => {
                    *applied.rejected.entry(error.kind()).or_default() += 1;
                    continue;
                }
            };
            let quote = self
                .quotes
                .entry(symbol)
                .or_insert_with(|| Quote::new(symbol));
            if !quote.apply(tick, now) {
                *applied.rejected.entry("stale_seq").or_default() += 1;
                continue;
            }
            applied.accepted += 1;
            if !self.pending.insert(symbol) {
                applied.superseded += 1;
            }
        }
        applied
    }

    /// Takes up to `max` pending symbols, oldest change first, with their
    /// latest quotes as `<prefix>.<escaped symbol>` messages. They leave the
    /// pending set now; [`QuoteBook::retry_first`] puts failures back.
    pub(super) fn take(&mut self, max: usize, prefix: &str) -> Vec<Outgoing> {
        let take = self.pending.len().min(max);
        let mut batch = Vec::with_capacity(take);
        for symbol in self.pending.drain(..take) {
            let Some(quote) = self.quotes.get(&symbol) else {
                continue;
            };
            let trading = self.trading.get(&symbol).copied();
            let Some(payload) = tickgate_feeds::nats::encode_quote(quote, trading) else {
                continue;
            };
            let subject = tickgate_feeds::nats::subject_for(prefix, &symbol);
            batch.push((symbol, subject, Bytes::from(payload)));
        }
        batch
    }

    /// Puts symbols whose publish failed back in front: they are the oldest
    /// changes. A symbol that ticked again meanwhile keeps one entry.
    pub(super) fn retry_first(&mut self, failed: Vec<Symbol>) {
        let newer: Vec<Symbol> = self.pending.drain(..).collect();
        self.pending.extend(failed);
        self.pending.extend(newer);
    }

    /// Makes every symbol pending, for a stream that was lost and recreated.
    pub(super) fn republish_all(&mut self) {
        self.pending.extend(self.quotes.keys().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    /// 2025-01-01T00:00:00Z in microseconds: a plausible receive time.
    const NOW: u64 = 1_735_689_600_000_000;

    fn symbol(name: &str) -> Symbol {
        Symbol::parse(name).expect("valid symbol")
    }

    fn bid(name: &str, price: f64) -> Tick {
        Tick {
            symbol: Some(symbol(name)),
            bid: Some(price),
            ..Tick::default()
        }
    }

    fn pending_symbols(book: &QuoteBook) -> Vec<&str> {
        book.pending.iter().map(Symbol::as_str).collect()
    }

    fn payload(outgoing: &Outgoing) -> serde_json::Value {
        serde_json::from_slice(&outgoing.2).expect("quote JSON")
    }

    #[test]
    fn a_status_change_is_a_new_message_carrying_trading_and_a_repeat_is_none() {
        let mut book = QuoteBook::default();
        book.apply(&[bid("AAPL", 1.0)], NOW);
        book.take(10, "md.quote");
        let halt = |status| VenueEvent::TradingStatus {
            symbol: symbol("AAPL"),
            status,
            ts: None,
        };
        // A resumption of a never-halted symbol is no news.
        assert_eq!(
            book.apply_venue(&[halt(TradingStatus::Trading)], NOW),
            [false]
        );
        assert_eq!(book.pending(), 0);
        assert_eq!(
            book.apply_venue(
                &[halt(TradingStatus::Halted), halt(TradingStatus::Halted)],
                NOW
            ),
            [true, false]
        );
        let batch = book.take(10, "md.quote");
        let message = payload(&batch[0]);
        assert_eq!(
            (&message["seq"], &message["trading"]),
            (&json!(2), &json!("halted"))
        );
        assert_eq!(message["bid"], 1.0, "the quote itself is unchanged");
        book.apply_venue(&[halt(TradingStatus::Trading)], NOW);
        book.apply(&[bid("AAPL", 2.0)], NOW);
        let message = payload(&book.take(10, "md.quote")[0]);
        assert_eq!(
            (&message["seq"], &message["trading"]),
            (&json!(4), &json!("trading"))
        );
    }

    #[test]
    fn a_symbol_that_ticks_twice_is_pending_once() {
        let mut book = QuoteBook::default();
        let applied = book.apply(&[bid("AAPL", 1.0), bid("AAPL", 2.0)], NOW);
        assert_eq!(applied.accepted, 2);
        assert_eq!(applied.superseded, 1);
        assert_eq!(book.pending(), 1);
        let batch = book.take(10, "md.quote");
        assert_eq!(batch.len(), 1);
        assert_eq!(
            payload(&batch[0])["bid"],
            2.0,
            "the latest quote is published"
        );
        assert_eq!(payload(&batch[0])["seq"], 2);
    }

    #[test]
    fn refused_ticks_are_counted_by_reason_and_publish_nothing() {
        let mut book = QuoteBook::default();
        let no_symbol = Tick {
            bid: Some(1.0),
            ..Tick::default()
        };
        let stale = Tick {
            seq: Some(1),
            ..bid("MSFT", 3.0)
        };
        let fresh = Tick {
            seq: Some(5),
            ..bid("MSFT", 2.0)
        };
        let applied = book.apply(&[no_symbol, bid("MSFT", -1.0), fresh, stale], NOW);
        assert_eq!(applied.accepted, 1);
        assert_eq!(
            applied.rejected,
            HashMap::from([("missing_symbol", 1), ("bad_price", 1), ("stale_seq", 1)])
        );
        let batch = book.take(10, "md.quote");
        assert_eq!(payload(&batch[0])["seq"], 5);
        assert_eq!(payload(&batch[0])["bid"], 2.0);
    }

    #[test]
    fn batches_take_the_oldest_changes_first_up_to_the_limit() {
        let mut book = QuoteBook::default();
        book.apply(&[bid("C", 1.0), bid("A", 1.0), bid("B", 1.0)], NOW);
        let first: Vec<String> = book.take(2, "md.quote").into_iter().map(|o| o.1).collect();
        assert_eq!(first, ["md.quote.C", "md.quote.A"]);
        assert_eq!(pending_symbols(&book), ["B"]);
    }

    #[test]
    fn subjects_escape_the_symbol_under_the_prefix() {
        let mut book = QuoteBook::default();
        book.apply(&[bid("BRK.B", 1.0)], NOW);
        let batch = book.take(1, "prices");
        assert_eq!(batch[0].0, symbol("BRK.B"));
        assert_eq!(batch[0].1, "prices.BRK%2EB");
        assert_eq!(payload(&batch[0])["symbol"], "BRK.B");
    }

    #[test]
    fn failed_symbols_go_back_before_newer_changes() {
        let mut book = QuoteBook::default();
        book.apply(&[bid("A", 1.0), bid("B", 1.0)], NOW);
        let in_flight: Vec<Symbol> = book.take(2, "md.quote").into_iter().map(|o| o.0).collect();
        book.apply(&[bid("C", 1.0), bid("B", 2.0)], NOW);
        book.retry_first(in_flight);
        assert_eq!(pending_symbols(&book), ["A", "B", "C"]);
        let batch = book.take(3, "md.quote");
        assert_eq!(payload(&batch[1])["bid"], 2.0, "B's latest quote, once");
    }

    #[test]
    fn loaded_quotes_continue_their_seq() {
        let mut book = QuoteBook::default();
        let mut loaded = Quote::new(symbol("AAPL"));
        assert!(loaded.apply(
            &Tick {
                seq: Some(41),
                ..bid("AAPL", 1.0)
            },
            NOW
        ));
        book.load(HashMap::from([(symbol("AAPL"), loaded)]));
        assert_eq!((book.symbols(), book.pending()), (1, 0));
        book.apply(&[bid("AAPL", 2.0)], NOW);
        let batch = book.take(1, "md.quote");
        assert_eq!(payload(&batch[0])["seq"], 42);
    }

    #[test]
    fn a_recreated_stream_gets_every_symbol_again() {
        let mut book = QuoteBook::default();
        book.apply(&[bid("A", 1.0), bid("B", 1.0)], NOW);
        book.take(2, "md.quote");
        assert_eq!(book.pending(), 0);
        book.republish_all();
        let mut pending = pending_symbols(&book);
        pending.sort_unstable();
        assert_eq!(pending, ["A", "B"]);
    }
}
