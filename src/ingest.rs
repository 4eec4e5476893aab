//! The single writer of the snapshot store: takes feed events, validates and
//! merges ticks, and marks each touched symbol dirty on every connection
//! subscribed to it (once per batch, however many ticks it had). It also
//! keeps the feed board (state, last tick, which feed feeds which symbol) and
//! tells clients when a feed their symbols come from goes stale or recovers.
//!
//! One task owns every write, so each symbol's `seq` grows by exactly one per
//! accepted tick with no lock on the quote.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tickgate_feeds::{FeedEvent, FeedState, TickBatch, TickKind, now_micros};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::protocol;
use crate::state::AppState;
use crate::store::{Slot, StoreFull};
use crate::subscriptions::lock_subscribers;
use crate::telemetry;

/// Feed events waiting for the ingest task. A full queue makes feeds wait.
pub const FEED_QUEUE: usize = 1024;

/// How often a rejected-tick warning may be logged per feed and reason.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Dense index of a feed, stored on each slot it updates.
pub type FeedId = u32;

/// Latest known state of each feed, for `/readyz`, metrics and status messages.
#[derive(Default)]
pub struct FeedBoard {
    feeds: Mutex<Vec<FeedStatus>>,
}

/// One feed's state and when it last delivered a tick.
#[derive(Debug, Clone)]
pub struct FeedStatus {
    pub name: Arc<str>,
    pub state: FeedState,
    pub last_tick: Option<Instant>,
    /// `/readyz` waits for this feed to be live.
    pub required: bool,
}

impl FeedBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FeedStatus>> {
        self.feeds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the feeds the gateway starts with (name, required), so
    /// `/readyz` knows what to wait for before any of them reports.
    pub fn expect(&self, feeds: &[(Arc<str>, bool)]) {
        let mut board = self.lock();
        for (name, required) in feeds {
            if !board.iter().any(|f| &f.name == name) {
                board.push(FeedStatus {
                    name: Arc::clone(name),
                    state: FeedState::Connecting,
                    last_tick: None,
                    required: *required,
                });
            }
        }
    }

    /// The id of `feed`, registering it on first sight.
    fn id(&self, feed: &Arc<str>) -> FeedId {
        let mut board = self.lock();
        if let Some(i) = board.iter().position(|f| &f.name == feed) {
            return i as FeedId;
        }
        board.push(FeedStatus {
            name: Arc::clone(feed),
            state: FeedState::Connecting,
            last_tick: None,
            required: false,
        });
        (board.len() - 1) as FeedId
    }

    /// Sets a feed's state; returns the previous one.
    fn set_state(&self, id: FeedId, state: FeedState) -> FeedState {
        let mut board = self.lock();
        let status = &mut board[id as usize];
        std::mem::replace(&mut status.state, state)
    }

    fn ticked(&self, id: FeedId) {
        self.lock()[id as usize].last_tick = Some(Instant::now());
    }

    /// State of the feed with this id, if any.
    pub fn state_of(&self, id: FeedId) -> Option<(Arc<str>, FeedState)> {
        self.lock()
            .get(id as usize)
            .map(|f| (Arc::clone(&f.name), f.state))
    }

    /// Every feed's status.
    pub fn snapshot(&self) -> Vec<FeedStatus> {
        self.lock().clone()
    }

    /// Why the feeds keep the gateway from being ready: a required feed that
    /// is not live.
    pub fn not_ready(&self) -> Option<String> {
        self.lock()
            .iter()
            .find(|f| f.required && f.state != FeedState::Live)
            .map(|f| format!("required feed {} is {}", f.name, f.state.as_str()))
    }

    /// Publishes `tickgate_feed_up`, `tickgate_feed_state` and
    /// `tickgate_feed_last_tick_age_seconds`.
    pub fn publish_gauges(&self) {
        for feed in self.snapshot() {
            let age = feed.last_tick.map(|last| last.elapsed());
            telemetry::feed_status(&feed.name, feed.state, age);
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
                let id = state.feeds.id(&feed);
                let previous = state.feeds.set_state(id, feed_state);
                if previous != feed_state {
                    info!(
                        feed = &*feed,
                        from = previous.as_str(),
                        to = feed_state.as_str(),
                        "feed state"
                    );
                    announce(&state, id, &feed, previous, feed_state);
                }
                state.feeds.publish_gauges();
            }
        }
    }
}

/// Tells clients holding symbols of `feed` that it went stale or down, or
/// recovered. Feed state changes are rare, so walking every connection is
/// fine.
fn announce(state: &AppState, id: FeedId, feed: &str, previous: FeedState, now: FeedState) {
    let troubled = |s: FeedState| matches!(s, FeedState::Stale | FeedState::Down);
    if !(troubled(now) || (troubled(previous) && now == FeedState::Live)) {
        return;
    }
    for mailbox in state.connections() {
        let symbols = mailbox
            .lock()
            .symbols_where(|slot| slot.feed.load(Ordering::Relaxed) == id);
        if !symbols.is_empty() {
            mailbox.push_control([protocol::status(feed, now.as_str(), &symbols)]);
        }
    }
}

/// A trade as clients receive it in `trades` frames.
#[derive(serde::Serialize)]
struct TradeJson {
    symbol: tickgate_feeds::Symbol,
    /// The symbol's quote seq once this trade was applied: the quote with
    /// this seq (or a later one) already reflects it.
    seq: u64,
    price: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<f64>,
    ts: u64,
}

/// Encodes a trade once and queues it on every connection that asked for
/// this symbol's trades, in feed order. The quote it changed is marked dirty
/// after the batch, and the writer sends that quote before the trade.
fn fan_out_trade(slot: &Slot, tick: &tickgate_feeds::Tick, seq: u64, received_micros: u64) {
    let Some(price) = tick.last else {
        return;
    };
    let trade = TradeJson {
        symbol: slot.symbol,
        seq,
        price,
        size: tick.last_size,
        ts: tick.ts.unwrap_or(received_micros),
    };
    // A struct of numbers and a validated symbol always serializes.
    let json: Arc<str> = serde_json::to_string(&trade).unwrap_or_default().into();
    for (mailbox, index) in lock_subscribers(slot).iter() {
        mailbox.push_trade(index, slot.id, &json);
    }
}

/// Reusable scratch space for applying batches.
#[derive(Default)]
struct Batcher {
    touched: Vec<Arc<Slot>>,
    /// `touched_flag[id]`: symbol already in `touched` for this batch.
    touched_flag: Vec<bool>,
    /// Last warning per (feed, reason), for rate-limited logging.
    last_warning: HashMap<(Arc<str>, &'static str), Instant>,
}

impl Batcher {
    fn apply(&mut self, state: &AppState, batch: &TickBatch) {
        let now = now_micros();
        let feed_id = state.feeds.id(&batch.feed);
        let mut accepted = 0u64;
        let mut rejected: HashMap<&'static str, u64> = HashMap::new();
        let lag = telemetry::FeedLag::of(&batch.feed);
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
            let Some(snapshot) = state.store.apply(&slot, tick, now) else {
                *rejected.entry("stale_seq").or_default() += 1;
                continue;
            };
            if tick.kind == TickKind::Trade && slot.wants_trades() {
                fan_out_trade(&slot, tick, snapshot.quote.seq, now);
            }
            accepted += 1;
            slot.feed.store(feed_id, Ordering::Relaxed);
            if let Some(ts) = tick.ts {
                lag.record_micros(now.saturating_sub(ts));
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
            for (mailbox, index) in lock_subscribers(&slot).iter() {
                mailbox.mark_dirty_at(index, slot.id);
            }
        }
        if accepted > 0 {
            telemetry::ticks_received(&batch.feed, accepted);
            state.feeds.ticked(feed_id);
        }
        for (reason, count) in rejected {
            telemetry::ticks_rejected(&batch.feed, reason, count);
            let key = (Arc::clone(&batch.feed), reason);
            if self
                .last_warning
                .get(&key)
                .is_none_or(|at| at.elapsed() >= REJECT_LOG_EVERY)
            {
                self.last_warning.insert(key, Instant::now());
                warn!(
                    feed = &*batch.feed,
                    reason,
                    count,
                    "ticks rejected (logged at most every 10 s per reason; see tickgate_ticks_rejected_total)"
                );
            }
        }
        telemetry::symbols(state.store.symbol_count());
    }
}
