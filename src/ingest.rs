//! The ingest task: takes feed events, applies tick batches through the
//! fan-out core ([`crate::fanout::Fanout`]), counts what happened once per
//! batch, keeps the feed board and tells clients what [`crate::freshness`]
//! decides: a feed their symbols come from went stale or down, or is live
//! again, or their symbols moved to a feed in another state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickgate_feeds::{FeedEvent, TickBatch, VenueBatch, now_micros};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::board::FeedBoard;
use crate::fanout::Fanout;
use crate::fanout::SnapshotStore;
use crate::freshness::Announcement;
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
            FeedEvent::Ticks(batch) => {
                if let Some(news) = batcher.apply(&store, &feeds, &batch) {
                    announce(&connections, &feeds, &news);
                }
            }
            FeedEvent::Venue(batch) => batcher.apply_venue(&store, &batch),
            FeedEvent::State {
                feed,
                state: feed_state,
            } => {
                let id = feeds.id(&feed);
                let Some(transition) = feeds.set_state(id, feed_state) else {
                    continue;
                };
                if transition.previous != feed_state {
                    info!(
                        feed = &*feed,
                        from = transition.previous.as_str(),
                        to = feed_state.as_str(),
                        "feed state"
                    );
                }
                if let Some(news) = &transition.announcement {
                    announce(&connections, &feeds, news);
                }
                feeds.publish_gauges(Instant::now());
            }
        }
    }
}

/// Sends one status message to every client holding any of the
/// announced symbols, naming only the ones it holds. What to announce and
/// when is decided by [`crate::freshness`]; status changes are rare, so
/// walking every connection is fine.
fn announce(connections: &Connections, feeds: &FeedBoard, news: &Announcement) {
    let Some(feed) = feeds.name_of(news.feed) else {
        return;
    };
    let mut sent = 0;
    for mailbox in connections.all() {
        let symbols = mailbox.lock().symbols_where(|slot| news.covers(slot.id));
        if !symbols.is_empty() {
            mailbox.push_control([protocol::status(&feed, news.status.as_str(), &symbols)]);
            sent += 1;
        }
    }
    telemetry::status_messages(news.status.as_str(), sent);
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
    /// Applies venue events (halts, resumptions, corrections, cancels) and
    /// counts them by kind and outcome.
    fn apply_venue(&mut self, store: &SnapshotStore, batch: &VenueBatch) {
        let report = self.fanout.apply_venue(store, &batch.events, now_micros());
        for (kind, outcome, count) in report.counted() {
            telemetry::venue_events(kind, outcome, count);
        }
        telemetry::symbols(store.symbol_count());
    }

    /// Returns what to tell clients whose symbols moved to this feed.
    fn apply(
        &mut self,
        store: &SnapshotStore,
        feeds: &FeedBoard,
        batch: &TickBatch,
    ) -> Option<Announcement> {
        let feed_id = feeds.id(&batch.feed);
        let report = self
            .fanout
            .apply(store, feed_id, &batch.ticks, now_micros());
        let mut news = None;
        if report.accepted > 0 {
            telemetry::ticks_received(&batch.feed, report.accepted);
            news = feeds.ticked(feed_id, Instant::now(), &report.moved);
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
        news
    }
}
