//! The publish loop: applies feed ticks to the quote book, publishes pending
//! quotes one batch at a time, heartbeats, and rechecks the stream after
//! every reconnect. It drives the pure parts and counts what they report.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream;
use bytes::Bytes;
use tickgate_feeds::backoff::Backoff;
use tickgate_feeds::nats::{Heartbeat, Link, NatsPlan};
use tickgate_feeds::{FeedEvent, TickBatch, VenueBatch, now_micros};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::book::QuoteBook;
use super::job::{Job, JobDone, publish_batch};
use super::lease::Lease;
use super::readiness::Readiness;
use super::stream::{ensure_stream, load_quotes};
use super::upstream::Upstream;
use crate::config::PublishConfig;
use crate::telemetry;

/// Everything the publish loop owns once connected to NATS.
pub(super) struct PublishLoop {
    pub(super) config: PublishConfig,
    pub(super) plan: NatsPlan,
    pub(super) client: async_nats::Client,
    pub(super) context: jetstream::Context,
    pub(super) link: watch::Receiver<Link>,
    pub(super) readiness: Arc<Readiness>,
    pub(super) book: QuoteBook,
    pub(super) backoff: Backoff,
}

impl PublishLoop {
    /// Connects, makes sure the stream exists with our settings, and loads
    /// its last quotes into the book; retries with backoff until done.
    /// False when shutdown came first.
    pub(super) async fn load(&mut self, shutdown: &CancellationToken) -> bool {
        loop {
            let connected = tokio::select! {
                _ = shutdown.cancelled() => return false,
                up = self.link.wait_for(|l| l.connected) => up.is_ok(),
            };
            if !connected {
                return false;
            }
            self.readiness.connected.store(true, Ordering::Relaxed);
            let attempt = async {
                ensure_stream(&self.context, &self.plan, &self.config).await?;
                load_quotes(&self.context, &self.plan).await
            };
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return false,
                outcome = attempt => outcome,
            };
            match outcome {
                Ok((quotes, trading)) => {
                    info!(
                        stream = %self.plan.stream,
                        symbols = quotes.len(),
                        "loaded the stream's last quotes; seq continues from them"
                    );
                    self.book.load(quotes);
                    self.book.load_trading(trading);
                    telemetry::publish_symbols(self.book.symbols());
                    self.readiness.loaded.store(true, Ordering::Relaxed);
                    self.backoff.reset();
                    return true;
                }
                Err(error) => {
                    warn!("cannot load the stream yet: {error}");
                    let delay = self.backoff.next_delay();
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// The publish loop, until shutdown or the feeds are gone; then one
    /// last bounded attempt at what is pending. With a `lease`, publishes
    /// only while it is valid, renews it, and returns false at once when it
    /// is lost (another publisher is active now; nothing more is sent).
    pub(super) async fn run(
        &mut self,
        mut events: mpsc::Receiver<FeedEvent>,
        mut upstream: Upstream,
        shutdown: &CancellationToken,
        mut lease: Option<Lease>,
    ) -> bool {
        let heartbeat_every = self.config.heartbeat_interval;
        let mut heartbeat_at = Instant::now();
        let mut job: Option<Job> = None;
        let mut retry_at: Option<Instant> = None;
        let mut generation = self.link.borrow().generation;
        let mut stream_checked = true;
        loop {
            let link = *self.link.borrow();
            self.readiness
                .connected
                .store(link.connected, Ordering::Relaxed);
            telemetry::publish_nats_connected(link.connected);
            if link.generation != generation {
                // A new connection: what failed on the old one is retried at
                // once, not after the backoff it earned there.
                generation = link.generation;
                stream_checked = false;
                retry_at = None;
                self.backoff.reset();
            }
            let leased = lease.as_ref().is_none_or(|l| l.valid(Instant::now()));
            let may_start = leased && link.connected && job.is_none() && retry_at.is_none();
            if may_start && !stream_checked {
                stream_checked = true;
                let (context, plan, config) =
                    (self.context.clone(), self.plan.clone(), self.config.clone());
                job = Some(Box::pin(async move {
                    JobDone::Stream(ensure_stream(&context, &plan, &config).await)
                }));
            } else if may_start && self.book.pending() > 0 {
                job = Some(self.next_batch());
            }
            telemetry::publish_pending(self.book.pending());
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Some(FeedEvent::Ticks(batch)) => self.apply(&batch),
                    Some(FeedEvent::Venue(batch)) => self.apply_venue(&batch),
                    Some(FeedEvent::State { feed, state }) => {
                        info!(feed = &*feed, state = state.as_str(), "feed state");
                        telemetry::feed_up(&feed, state);
                        let live = upstream.set(feed, state);
                        self.readiness.upstream_live.store(live, Ordering::Relaxed);
                    }
                    None => break,
                },
                done = async { job.as_mut().expect("guarded by the if").await }, if job.is_some() => {
                    job = None;
                    if self.finish(done) {
                        self.backoff.reset();
                    } else {
                        retry_at = Some(Instant::now() + self.backoff.next_delay());
                    }
                }
                _ = sleep_until(retry_at.unwrap_or(heartbeat_at)), if retry_at.is_some() => {
                    retry_at = None;
                }
                _ = sleep_until(heartbeat_at) => {
                    heartbeat_at = Instant::now() + heartbeat_every;
                    if link.connected {
                        // Live only while quotes really reach the stream: a
                        // heartbeat that outlives failing publishes would keep
                        // gateways announcing old quotes as current.
                        let failing = self.readiness.failing.load(Ordering::Relaxed);
                        self.heartbeat(upstream.live() && !failing).await;
                    }
                }
                _ = self.link.changed() => {}
                _ = sleep_until(lease.as_ref().map_or(heartbeat_at, Lease::renew_at)), if lease.is_some() => {
                    let held = lease.as_mut().expect("guarded by the if");
                    if !held.renew().await {
                        warn!("the publisher lease is lost: stopping, another publisher takes over");
                        return false;
                    }
                }
            }
        }
        self.final_flush().await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        true
    }

    /// Merges a batch into the book and counts what happened, once per batch.
    fn apply(&mut self, batch: &TickBatch) {
        let applied = self.book.apply(&batch.ticks, now_micros());
        let feed = &*batch.feed;
        if applied.accepted > 0 {
            telemetry::ticks_received(feed, applied.accepted);
        }
        for (reason, count) in applied.rejected {
            telemetry::ticks_rejected(feed, reason, count);
        }
        if applied.superseded > 0 {
            telemetry::publish_superseded(applied.superseded);
        }
        telemetry::publish_symbols(self.book.symbols());
    }

    /// Venue events: a trading status travels to the gateways inside the
    /// symbol's next published quote (docs/nats.md, "Trading status").
    fn apply_venue(&mut self, batch: &VenueBatch) {
        let applied = self.book.apply_venue(&batch.events, now_micros());
        let mut report = crate::fanout::VenueReport::default();
        for (event, applied) in batch.events.iter().zip(applied) {
            report.count(event, applied);
        }
        for (kind, outcome, count) in report.counted() {
            telemetry::venue_events(kind, outcome, count);
        }
        telemetry::publish_symbols(self.book.symbols());
    }

    /// Publishes up to `max_in_flight` pending quotes, oldest change first.
    fn next_batch(&mut self) -> Job {
        let batch = self
            .book
            .take(self.config.max_in_flight, &self.plan.subject_prefix);
        Box::pin(publish_batch(
            self.context.clone(),
            batch,
            self.config.publish_timeout,
        ))
    }

    /// Handles a finished job; false when it failed (back off before the next).
    fn finish(&mut self, done: JobDone) -> bool {
        match done {
            JobDone::Published {
                acked,
                failed,
                error,
            } => {
                telemetry::publish_acked(acked);
                let failing = error.is_some();
                self.readiness.failing.store(failing, Ordering::Relaxed);
                let Some((reason, error)) = error else {
                    return true;
                };
                telemetry::publish_failed(reason, failed.len() as u64);
                warn!(
                    failed = failed.len(),
                    "publishing to NATS failed; the latest quotes stay pending: {error}"
                );
                self.book.retry_first(failed);
                false
            }
            JobDone::Stream(Ok(created)) => {
                if created {
                    // The stream was lost (memory storage, deleted): republish
                    // every quote so new gateways see the whole universe.
                    warn!(
                        stream = %self.plan.stream,
                        symbols = self.book.symbols(),
                        "stream was missing and has been recreated; republishing every quote"
                    );
                    self.book.republish_all();
                }
                true
            }
            JobDone::Stream(Err(error)) => {
                warn!("checking the stream after a reconnect failed: {error}");
                false
            }
        }
    }

    async fn heartbeat(&self, live: bool) {
        let beat = Heartbeat {
            ts: now_micros(),
            live,
        };
        let Ok(payload) = serde_json::to_vec(&beat) else {
            return;
        };
        if let Err(error) = self
            .client
            .publish(self.plan.heartbeat_subject(), Bytes::from(payload))
            .await
        {
            debug!("heartbeat not sent: {error}");
        }
    }

    /// On shutdown: one last attempt at what is pending, bounded in time.
    async fn final_flush(&mut self) {
        if self.book.pending() == 0 || !self.link.borrow().connected {
            return;
        }
        let count = self.book.pending();
        let bound = self.config.publish_timeout;
        while self.book.pending() > 0 {
            let job = self.next_batch();
            match timeout(bound, job).await {
                Ok(done) => {
                    if !self.finish(done) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        info!(
            published = count - self.book.pending(),
            left = self.book.pending(),
            "final publish before exit"
        );
    }
}
