//! What a connection's writer takes out of its outbox in one go: queued
//! replies, one `update` frame with the latest quote of each changed symbol,
//! the trades-lost notice and the trades. Pure: `now` is a parameter.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::delivery::interval_of;
use super::encode::{self, Meta, UpdateFrame};
use super::outbox::{Outbox, Subscription};
use super::store::FeedId;

/// Which feeds are not `live` as a frame is built: the `stale` flag of
/// `meta` quotes. The feeds are read at most once per frame, and only when
/// a meta quote goes into it, so plain subscriptions never ask.
pub struct FeedLiveness<'a> {
    read: Option<&'a dyn Fn() -> Vec<FeedId>>,
    not_live: Vec<FeedId>,
}

impl<'a> FeedLiveness<'a> {
    /// Reads the feeds that are not live with `read` when first needed.
    /// `read` must not lock a mailbox: it runs under one.
    pub fn new(read: &'a dyn Fn() -> Vec<FeedId>) -> Self {
        Self {
            read: Some(read),
            not_live: Vec::new(),
        }
    }

    /// Every feed live: for drains that only take control frames, and
    /// tests.
    pub fn all_live() -> Self {
        Self {
            read: None,
            not_live: Vec::new(),
        }
    }

    /// Whether `feed` is live (a feed never reported as not live is).
    pub fn is_live(&mut self, feed: FeedId) -> bool {
        if let Some(read) = self.read.take() {
            self.not_live = read();
        }
        !self.not_live.contains(&feed)
    }
}

/// What a writer takes out of the outbox in one go.
#[derive(Debug, Default)]
pub struct Drain {
    /// Replies to requests, in order; sent before `update`.
    pub control: Vec<String>,
    /// One `update` frame holding each changed symbol at most once.
    pub update: Option<String>,
    /// `{"type":"trades_lost"}`: trades dropped since the last drain because
    /// the trade buffer was full; sent after `update`, before `trades`.
    pub trades_lost: Option<String>,
    /// One `trades` frame with every waiting trade, oldest first; the latest
    /// quote of each of their symbols is in `update` (or was sent before).
    pub trades: Option<String>,
    /// Quotes in `update`.
    pub quotes: u64,
    /// Trades in `trades`.
    pub trade_count: u64,
    /// Trades announced as lost in `trades_lost`.
    pub lost_count: u64,
    /// Ticks this client will never see because a newer value replaced them
    /// (sum of seq gaps in `update`).
    pub conflated: u64,
    /// Oldest gateway receive time (µs) among the quotes in `update`.
    pub oldest_received_micros: Option<u64>,
    /// Earliest time a rate-capped symbol still pending may be sent.
    pub next_due: Option<Instant>,
}

impl Drain {
    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.control.is_empty()
            && self.update.is_none()
            && self.trades.is_none()
            && self.trades_lost.is_none()
    }

    /// The frames in the order they must be written.
    pub fn into_frames(self) -> impl Iterator<Item = String> {
        self.control
            .into_iter()
            .chain(self.update)
            .chain(self.trades_lost)
            .chain(self.trades)
    }

    /// Number of frames and bytes to write.
    pub fn size(&self) -> (u64, usize) {
        let mut frames = self.control.len() as u64;
        let mut bytes: usize = self.control.iter().map(String::len).sum();
        for frame in [&self.update, &self.trades_lost, &self.trades]
            .into_iter()
            .flatten()
        {
            frames += 1;
            bytes += frame.len();
        }
        (frames, bytes)
    }
}

impl Outbox {
    /// Takes everything owed: queued replies first, then one `update` frame
    /// with the latest quote of each dirty symbol whose seq is newer than what
    /// the client already holds, then the trades.
    ///
    /// A rate-capped (or ladder-slowed) symbol whose slot has not come yet
    /// stays pending, and `next_due` says when to drain again, unless a trade
    /// of it is waiting: then its latest quote goes first, so a trade never
    /// arrives after a quote older than itself.
    ///
    /// Meta quotes read as `stale: false`: the writer uses
    /// [`Outbox::drain_with`].
    pub fn drain(&mut self, now: Instant) -> Drain {
        self.drain_with(now, &mut FeedLiveness::all_live())
    }

    /// [`Outbox::drain`], with the `stale` flag of meta quotes read from
    /// `feeds` as the frame is built.
    pub fn drain_with(&mut self, now: Instant, feeds: &mut FeedLiveness<'_>) -> Drain {
        let mut drain = Drain {
            control: self.control.drain(..).collect(),
            ..Drain::default()
        };
        // After the replies (a subscriber's snapshot comes first), before
        // the update.
        drain.control.extend(self.take_trading());
        if self.dirty.is_empty() && self.waiting.is_empty() && self.trades.is_empty() {
            return drain;
        }
        self.epoch += 1;
        let epoch = self.epoch;
        let slowdown = self.slowdown;
        let mut frame = UpdateFrame::with_capacity(self.dirty.len());
        // Reuse the dirty list's allocation; held-back symbols go back to
        // `waiting`.
        let mut candidates = std::mem::take(&mut self.dirty);
        candidates.append(&mut self.waiting);
        for index in candidates.drain(..) {
            let Some(Some(sub)) = self.subs.get_mut(index as usize) else {
                continue;
            };
            if sub.trades_queued == 0
                && let (Some(interval), Some(at)) = (
                    interval_of(&sub.delivery, sub.priority, slowdown),
                    sub.last_sent_at,
                )
                && now < at + interval
            {
                let due = at + interval;
                drain.next_due = Some(drain.next_due.map_or(due, |d| d.min(due)));
                self.waiting.push(index);
                continue;
            }
            sub.dirty = false;
            sub.seen_in = epoch;
            emit(&mut frame, &mut drain, sub, now, feeds);
        }
        self.dirty = candidates;
        // Symbols with a trade waiting whose newest quote is not marked dirty
        // yet (the ingest task marks after its whole batch): flush it too.
        for index in self.trades.indices() {
            if let Some(Some(sub)) = self.subs.get_mut(index as usize)
                && sub.seen_in != epoch
            {
                sub.seen_in = epoch;
                emit(&mut frame, &mut drain, sub, now, feeds);
            }
        }
        drain.quotes = frame.quotes();
        drain.update = frame.finish();
        if let Some(lost) = self.trades.take_lost() {
            let (count, frame) = encode::trades_lost(lost);
            drain.lost_count = count;
            drain.trades_lost = Some(frame);
        }
        let trades = self.trades.take();
        if !trades.is_empty() {
            for (index, _) in &trades {
                if let Some(Some(sub)) = self.subs.get_mut(*index as usize) {
                    sub.trades_queued -= 1;
                }
            }
            drain.trade_count = trades.len() as u64;
            drain.trades = Some(encode::trades(trades.iter().map(|(_, t)| &**t)));
        }
        drain
    }
}

/// Appends the latest quote of `sub` to the update frame if it is newer
/// than what the client holds: the shared encoding, or one for this
/// connection alone in delta and meta modes.
fn emit(
    frame: &mut UpdateFrame,
    drain: &mut Drain,
    sub: &mut Subscription,
    now: Instant,
    feeds: &mut FeedLiveness<'_>,
) {
    let Some(snapshot) = sub.slot.latest() else {
        return;
    };
    let seq = snapshot.quote.seq;
    if seq <= sub.last_seq {
        return;
    }
    let conflated = seq - sub.last_seq - 1;
    drain.conflated += conflated;
    sub.last_seq = seq;
    sub.last_sent_at = Some(now);
    if sub.delivery.personal() {
        let previous = sub.last_sent.as_deref().filter(|_| sub.delivery.delta);
        let body = encode::personal_quote(&snapshot, previous);
        if sub.delivery.delta {
            sub.last_sent = Some(Arc::clone(&snapshot));
        }
        if sub.delivery.meta {
            let feed = sub.slot.feed.load(Ordering::Relaxed);
            let meta = Meta {
                conflated,
                received_micros: snapshot.received_micros,
                stale: !feeds.is_live(feed),
            };
            frame.push_with_meta(&body, meta);
        } else {
            frame.push(&body);
        }
    } else {
        frame.push(&snapshot.json);
    }
    let received = snapshot.received_micros;
    drain.oldest_received_micros = Some(
        drain
            .oldest_received_micros
            .map_or(received, |o| o.min(received)),
    );
}
