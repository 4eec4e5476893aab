//! The ingest task: takes feed events, applies tick batches through the
//! fan-out core ([`crate::fanout::Fanout`]), counts what happened once per
//! batch, keeps the feed board and tells clients when a feed their symbols
//! come from goes stale or recovers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tickgate_feeds::{FeedEvent, FeedState, TickBatch, now_micros};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::board::FeedBoard;
use crate::fanout::SnapshotStore;
use crate::fanout::{Fanout, FeedId};
use crate::protocol;
use crate::registry::Connections;
use crate::shutdown::Shutdown;
use crate::telemetry::{self, FeedLag};

/// Feed events waiting for the ingest task. A full queue makes feeds wait.
pub const FEED_QUEUE: usize = 1024;

/// How often a rejected-tick warning may be logged per feed and reason.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the ingest task writes to and reads from, one handle per owner.
pub struct Ingest {
    /// The task is the store's only writer.
    pub store: Arc<SnapshotStore>,
    pub feeds: Arc<FeedBoard>,
    /// Whom to tell when a feed goes stale or recovers.
    pub connections: Arc<Connections>,
    pub shutdown: Shutdown,
}

/// Runs until every feed sender is gone or the gateway shuts down.
pub async fn run(ingest: Ingest, mut events: mpsc::Receiver<FeedEvent>) {
    let Ingest {
        store,
        feeds,
        connections,
        shutdown,
    } = ingest;
    let mut batcher = Batcher::default();
    loop {
        let event = tokio::select! {
            () = shutdown.stopped() => break,
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        match event {
            FeedEvent::Ticks(batch) => batcher.apply(&store, &feeds, &batch),
            FeedEvent::State {
                feed,
                state: feed_state,
            } => {
                let id = feeds.id(&feed);
                let previous = feeds.set_state(id, feed_state);
                if previous != feed_state {
                    info!(
                        feed = &*feed,
                        from = previous.as_str(),
                        to = feed_state.as_str(),
                        "feed state"
                    );
                    announce(&connections, id, &feed, previous, feed_state);
                }
                feeds.publish_gauges(Instant::now());
            }
        }
    }
}

/// Tells clients holding symbols of `feed` that it went stale or down, or
/// recovered. Feed state changes are rare, so walking every connection is
/// fine.
fn announce(
    connections: &Connections,
    id: FeedId,
    feed: &str,
    previous: FeedState,
    now: FeedState,
) {
    let troubled = |s: FeedState| matches!(s, FeedState::Stale | FeedState::Down);
    if !(troubled(now) || (troubled(previous) && now == FeedState::Live)) {
        return;
    }
    for mailbox in connections.all() {
        let symbols = mailbox
            .lock()
            .symbols_where(|slot| slot.feed.load(Ordering::Relaxed) == id);
        if !symbols.is_empty() {
            mailbox.push_control([protocol::status(feed, now.as_str(), &symbols)]);
        }
    }
}

/// Applies batches and counts them: the fan-out core plus the
/// rate-limited logging of rejected ticks.
#[derive(Default)]
struct Batcher {
    fanout: Fanout,
    /// Last warning per (feed, reason), for rate-limited logging.
    last_warning: HashMap<(Arc<str>, &'static str), Instant>,
}

impl Batcher {
    fn apply(&mut self, store: &SnapshotStore, feeds: &FeedBoard, batch: &TickBatch) {
        let feed_id = feeds.id(&batch.feed);
        let report = self
            .fanout
            .apply(store, feed_id, &batch.ticks, now_micros());
        if report.accepted > 0 {
            telemetry::ticks_received(&batch.feed, report.accepted);
            feeds.ticked(feed_id, Instant::now());
        }
        if !report.lag_micros.is_empty() {
            let lag = FeedLag::of(&batch.feed);
            for &micros in &report.lag_micros {
                lag.record_micros(micros);
            }
        }
        if report.trades_lost > 0 {
            telemetry::trades_lost(report.trades_lost);
        }
        for (reason, count) in report.rejections() {
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
        telemetry::symbols(store.symbol_count());
    }
}
