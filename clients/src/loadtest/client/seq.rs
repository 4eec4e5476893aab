//! What one client knows about delivery: per symbol, the seq it started from
//! and the last one it holds; after a stall, how many symbols still have to
//! catch up. Each quote is booked here into one read's [`Local`] totals. Pure:
//! no socket, no shared state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::loadtest::scan::QuoteRef;

/// Per-symbol seq bookkeeping of one client, indexed like its plan's
/// (sorted) symbols.
pub(super) struct Held {
    /// Seq of the first snapshot (0 when subscribed before any data).
    base: Vec<u64>,
    last: Vec<u64>,
    pub(super) snapshot_seen: bool,
    /// After a stall: the seq each symbol must reach to count as converged,
    /// how many have not yet, and since when.
    pub(super) targets: Option<(Vec<u64>, usize, Instant)>,
}

/// Totals of one read, added to [`Shared`](crate::loadtest::shared::Shared) at once.
#[derive(Default)]
pub(crate) struct Local {
    pub(crate) frames: u64,
    pub(crate) quotes: u64,
    pub(crate) gaps: u64,
    pub(crate) progress: u64,
    pub(crate) regressions: u64,
    pub(crate) unexpected: u64,
    /// Tick-to-client latency of each quote, µs.
    pub(crate) latencies: Vec<u64>,
}

impl Held {
    /// Nothing held yet for `symbols` symbols.
    pub(super) fn new(symbols: usize) -> Self {
        Self {
            base: vec![0; symbols],
            last: vec![0; symbols],
            snapshot_seen: false,
            targets: None,
        }
    }

    /// Seq each symbol must reach to count as caught up after a stall: what
    /// the feed had `published` per universe index when reading resumed.
    /// Without a feed of ours there is nothing to converge to.
    pub(super) fn convergence_targets(
        &self,
        symbols: &[u32],
        published: Option<&[AtomicU64]>,
    ) -> (Vec<u64>, usize, Instant) {
        let Some(published) = published else {
            return (Vec::new(), 0, Instant::now());
        };
        let targets: Vec<u64> = symbols
            .iter()
            .zip(&self.base)
            .map(|(&s, &base)| base + published[s as usize].load(Ordering::Relaxed))
            .collect();
        let remaining = targets
            .iter()
            .zip(&self.last)
            .filter(|(target, last)| last < target)
            .count();
        (targets, remaining, Instant::now())
    }

    /// Books one quote of universe `index` (`None`: not in the universe)
    /// received at `now` (µs). `update` is false for a snapshot's quotes,
    /// which count for progress but not for latency. Returns how long the
    /// stalled client took to converge when this quote was the last one
    /// missing.
    pub(super) fn on_quote(
        &mut self,
        symbols: &[u32],
        index: Option<u32>,
        local: &mut Local,
        quote: QuoteRef<'_>,
        now: u64,
        update: bool,
    ) -> Option<Duration> {
        let Some(index) = index else {
            local.unexpected += 1;
            return None;
        };
        let Ok(i) = symbols.binary_search(&index) else {
            local.unexpected += 1;
            return None;
        };
        let last = self.last[i];
        if !update && !self.snapshot_seen && last == 0 {
            // First snapshot: where this symbol's count starts.
            self.base[i] = quote.seq;
            self.last[i] = quote.seq;
            return None;
        }
        if update {
            local.quotes += 1;
            local.latencies.push(now.saturating_sub(quote.ts));
        }
        if quote.seq <= last {
            if update {
                local.regressions += 1;
            }
            return None;
        }
        local.gaps += quote.seq - last - 1;
        local.progress += quote.seq - last;
        self.last[i] = quote.seq;
        if let Some((targets, remaining, since)) = &mut self.targets
            && *remaining > 0
            && last < targets[i]
            && quote.seq >= targets[i]
        {
            *remaining -= 1;
            if *remaining == 0 {
                return Some(since.elapsed());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYMBOLS: [u32; 2] = [3, 7];

    fn quote(seq: u64, ts: u64) -> QuoteRef<'static> {
        QuoteRef {
            symbol: b"ignored: the index is looked up by the caller",
            seq,
            ts,
        }
    }

    #[test]
    fn the_first_snapshot_sets_where_counting_starts() {
        let mut held = Held::new(2);
        let mut local = Local::default();
        held.on_quote(&SYMBOLS, Some(3), &mut local, quote(40, 0), 1_000, false);
        assert_eq!((local.quotes, local.progress, local.gaps), (0, 0, 0));
        held.on_quote(&SYMBOLS, Some(3), &mut local, quote(43, 900), 1_000, true);
        assert_eq!(local.quotes, 1);
        assert_eq!(local.progress, 3, "seq 40 → 43");
        assert_eq!(local.gaps, 2, "41 and 42 were conflated away");
        assert_eq!(local.latencies, [100]);
    }

    #[test]
    fn an_old_seq_is_a_regression_and_no_progress() {
        let mut held = Held::new(2);
        let mut local = Local::default();
        held.on_quote(&SYMBOLS, Some(7), &mut local, quote(5, 0), 10, true);
        held.on_quote(&SYMBOLS, Some(7), &mut local, quote(5, 0), 10, true);
        held.on_quote(&SYMBOLS, Some(7), &mut local, quote(4, 0), 10, true);
        assert_eq!(local.quotes, 3);
        assert_eq!(local.progress, 5);
        assert_eq!(local.regressions, 2);
    }

    #[test]
    fn quotes_of_symbols_not_subscribed_are_unexpected() {
        let mut held = Held::new(2);
        let mut local = Local::default();
        held.on_quote(&SYMBOLS, None, &mut local, quote(1, 0), 10, true);
        held.on_quote(&SYMBOLS, Some(4), &mut local, quote(1, 0), 10, true);
        assert_eq!(local.unexpected, 2);
        assert_eq!(local.quotes, 0);
    }

    #[test]
    fn a_stalled_client_converges_when_every_symbol_reaches_its_target() {
        let published: Vec<AtomicU64> = (0..8).map(|_| AtomicU64::new(0)).collect();
        published[3].store(10, Ordering::Relaxed);
        published[7].store(20, Ordering::Relaxed);
        let mut held = Held::new(2);
        let mut local = Local::default();
        held.on_quote(&SYMBOLS, Some(7), &mut local, quote(20, 0), 10, true);
        let targets = held.convergence_targets(&SYMBOLS, Some(&published));
        assert_eq!((targets.0.as_slice(), targets.1), ([10, 20].as_slice(), 1));
        held.targets = Some(targets);
        assert_eq!(
            held.on_quote(&SYMBOLS, Some(3), &mut local, quote(9, 0), 10, true),
            None
        );
        assert!(
            held.on_quote(&SYMBOLS, Some(3), &mut local, quote(12, 0), 10, true)
                .is_some()
        );
        assert_eq!(
            held.on_quote(&SYMBOLS, Some(3), &mut local, quote(13, 0), 10, true),
            None,
            "converged once"
        );
    }

    #[test]
    fn without_our_feed_there_is_nothing_to_converge_to() {
        let held = Held::new(2);
        let (targets, remaining, _) = held.convergence_targets(&SYMBOLS, None);
        assert!(targets.is_empty());
        assert_eq!(remaining, 0);
    }
}
