//! The single writer of the snapshot store: takes feed events, validates and
//! merges ticks, and marks each touched symbol dirty on every connection
//! subscribed to it (once per batch, however many ticks it had).
//!
//! One task owns every write, so each symbol's `seq` grows by exactly one per
//! accepted tick with no lock on the quote.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tickgate_feeds::{FeedEvent, FeedState, TickBatch, now_micros};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::metrics as m;
use crate::state::AppState;
use crate::store::{Slot, StoreFull};
use crate::subscriptions::lock_subscribers;

/// Feed events waiting for the ingest task. A full queue makes feeds wait.
pub const FEED_QUEUE: usize = 1024;

/// Latest known state of each feed, for `/readyz` and metrics.
#[derive(Default)]
pub struct FeedBoard {
    feeds: Mutex<HashMap<Arc<str>, FeedStatus>>,
}

/// One feed's state and when it last delivered a tick.
#[derive(Debug, Clone, Copy)]
pub struct FeedStatus {
    pub state: FeedState,
    pub last_tick: Option<Instant>,
}

impl FeedBoard {
    fn update(&self, feed: &Arc<str>, change: impl FnOnce(&mut FeedStatus)) {
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        let status = feeds.entry(Arc::clone(feed)).or_insert(FeedStatus {
            state: FeedState::Connecting,
            last_tick: None,
        });
        change(status);
    }

    /// Every feed's status, by name.
    pub fn snapshot(&self) -> Vec<(Arc<str>, FeedStatus)> {
        let feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = feeds
            .iter()
            .map(|(name, status)| (Arc::clone(name), *status))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Publishes `tickgate_feed_up` and `tickgate_feed_last_tick_age_seconds`.
    pub fn publish_gauges(&self) {
        for (feed, status) in self.snapshot() {
            let up = if status.state == FeedState::Live {
                1.0
            } else {
                0.0
            };
            metrics::gauge!(m::FEED_UP, "feed" => feed.to_string()).set(up);
            if let Some(last) = status.last_tick {
                metrics::gauge!(m::FEED_LAST_TICK_AGE, "feed" => feed.to_string())
                    .set(last.elapsed().as_secs_f64());
            }
        }
    }
}

/// Runs until every feed sender is gone or the gateway shuts down.
pub async fn run(state: Arc<AppState>, mut events: mpsc::Receiver<FeedEvent>) {
    let mut batcher = Batcher::default();
    loop {
        let event = tokio::select! {
            () = state.shutdown.cancelled() => break,
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        match event {
            FeedEvent::Ticks(batch) => batcher.apply(&state, &batch),
            FeedEvent::State {
                feed,
                state: feed_state,
            } => {
                info!(feed = &*feed, state = feed_state.as_str(), "feed state");
                state.feeds.update(&feed, |s| s.state = feed_state);
                state.feeds.publish_gauges();
            }
        }
    }
}

/// Reusable scratch space for applying batches.
#[derive(Default)]
struct Batcher {
    touched: Vec<Arc<Slot>>,
    /// `touched_flag[id]`: symbol already in `touched` for this batch.
    touched_flag: Vec<bool>,
}

impl Batcher {
    fn apply(&mut self, state: &AppState, batch: &TickBatch) {
        let now = now_micros();
        let mut accepted = 0u64;
        let mut rejected: HashMap<&'static str, u64> = HashMap::new();
        let lag = metrics::histogram!(m::FEED_LAG, "feed" => batch.feed.to_string());
        for tick in &batch.ticks {
            let symbol = match tick.validate(now) {
                Ok(symbol) => symbol,
                Err(error) => {
                    *rejected.entry(error.kind()).or_default() += 1;
                    continue;
                }
            };
            let slot = match state.store.get_or_create(symbol) {
                Ok(slot) => slot,
                Err(StoreFull(_)) => {
                    *rejected.entry("symbol_table_full").or_default() += 1;
                    continue;
                }
            };
            if state.store.apply(&slot, tick, now).is_none() {
                *rejected.entry("stale_seq").or_default() += 1;
                continue;
            }
            accepted += 1;
            if let Some(ts) = tick.ts {
                lag.record(now.saturating_sub(ts) as f64 / 1e6);
            }
            let id = slot.id as usize;
            if self.touched_flag.len() <= id {
                self.touched_flag.resize(id + 1, false);
            }
            if !self.touched_flag[id] {
                self.touched_flag[id] = true;
                self.touched.push(slot);
            }
        }
        for slot in self.touched.drain(..) {
            self.touched_flag[slot.id as usize] = false;
            for mailbox in lock_subscribers(&slot).iter() {
                mailbox.mark_dirty(slot.id);
            }
        }
        let feed = batch.feed.to_string();
        if accepted > 0 {
            metrics::counter!(m::TICKS_RECEIVED, "feed" => feed.clone()).increment(accepted);
            state
                .feeds
                .update(&batch.feed, |s| s.last_tick = Some(Instant::now()));
        }
        for (reason, count) in rejected {
            warn!(feed = &*batch.feed, reason, count, "ticks rejected");
            metrics::counter!(m::TICKS_REJECTED, "feed" => feed.clone(), "reason" => reason)
                .increment(count);
        }
        metrics::gauge!(m::SYMBOLS).set(state.store.symbol_count() as f64);
    }
}
