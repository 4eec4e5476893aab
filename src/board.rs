//! The feed board: each feed's name and when it last delivered a tick,
//! around the [`Freshness`] state machine (feed states, which feed serves
//! each symbol, what clients were told, first readiness). The ingest task
//! writes it; `/readyz`, metrics and new subscriptions read it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tickgate_feeds::FeedState;

use crate::fanout::{FeedId, SymbolId};
use crate::freshness::{Announcement, Freshness, Status, Transition};
use crate::telemetry;

/// Latest known state of each feed, for `/readyz`, metrics and status
/// messages. One short lock; never held across an await.
#[derive(Default)]
pub struct FeedBoard {
    inner: Mutex<Board>,
}

#[derive(Default)]
struct Board {
    /// Indexed by [`FeedId`], like the feeds of `freshness`.
    feeds: Vec<FeedEntry>,
    freshness: Freshness,
}

struct FeedEntry {
    name: Arc<str>,
    last_tick: Option<Instant>,
}

/// One feed's state and when it last delivered a tick.
#[derive(Debug, Clone)]
pub struct FeedStatus {
    pub name: Arc<str>,
    pub state: FeedState,
    pub last_tick: Option<Instant>,
    /// `/readyz` waits for this feed to be live before the first readiness.
    pub required: bool,
}

impl FeedBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the feeds the gateway starts with (name, required), so
    /// `/readyz` knows what to wait for before any of them reports.
    pub fn expect(&self, feeds: &[(Arc<str>, bool)]) {
        let mut board = self.lock();
        for (name, required) in feeds {
            if board.position(name).is_none() {
                board.add(name, *required);
            }
        }
    }

    /// The id of `feed`, registering it on first sight.
    pub fn id(&self, feed: &Arc<str>) -> FeedId {
        let mut board = self.lock();
        match board.position(feed) {
            Some(id) => id,
            None => board.add(feed, false),
        }
    }

    /// Sets a feed's state; returns the previous one and what to tell
    /// clients (see [`Freshness::set_state`]).
    pub fn set_state(&self, id: FeedId, state: FeedState) -> Option<Transition> {
        self.lock().freshness.set_state(id, state)
    }

    /// Feed `id` delivered ticks at `now`; `moved` are the symbols it
    /// serves now and did not before. Returns what to tell their clients
    /// (see [`Freshness::delivered`]).
    pub fn ticked(&self, id: FeedId, now: Instant, moved: &[SymbolId]) -> Option<Announcement> {
        let mut board = self.lock();
        let entry = board.feeds.get_mut(id as usize)?;
        entry.last_tick = Some(now);
        board.freshness.delivered(id, moved)
    }

    /// The feed with this id: its name and the state its symbols' clients
    /// are told, as a [`FeedState`] (`live`, `stale` or `down`: a feed that
    /// is reconnecting reads `down`).
    pub fn state_of(&self, id: FeedId) -> Option<(Arc<str>, FeedState)> {
        let board = self.lock();
        let name = Arc::clone(&board.feeds.get(id as usize)?.name);
        let status = board.freshness.status_of_feed(id)?;
        Some((name, status.feed_state()))
    }

    /// The feeds whose symbols' clients are told `stale` or `down` right
    /// now (a reconnecting feed reads `down`): the `stale` flag of `meta`
    /// quotes. The board's lock is a leaf, so this may be read under a
    /// mailbox lock.
    pub fn feeds_not_live(&self) -> Vec<FeedId> {
        let board = self.lock();
        (0..board.feeds.len() as FeedId)
            .filter(|&id| {
                board
                    .freshness
                    .status_of_feed(id)
                    .is_some_and(|status| status != Status::Live)
            })
            .collect()
    }

    /// The name of the feed with this id.
    pub fn name_of(&self, id: FeedId) -> Option<Arc<str>> {
        self.lock()
            .feeds
            .get(id as usize)
            .map(|f| Arc::clone(&f.name))
    }

    /// Every feed's status.
    pub fn snapshot(&self) -> Vec<FeedStatus> {
        let board = self.lock();
        board
            .feeds
            .iter()
            .enumerate()
            .map(|(id, feed)| FeedStatus {
                name: Arc::clone(&feed.name),
                state: board
                    .freshness
                    .feed_state(id as FeedId)
                    .unwrap_or(FeedState::Connecting),
                last_tick: feed.last_tick,
                required: board.freshness.is_required(id as FeedId),
            })
            .collect()
    }

    /// Why the feeds keep the gateway from being ready: before its first
    /// readiness, a required feed that is not live. After it, feeds never
    /// make the replica unready (see [`Freshness::not_ready`]).
    pub fn not_ready(&self) -> Option<String> {
        let board = self.lock();
        let (id, state) = board.freshness.not_ready()?;
        let name = board.feeds.get(id as usize).map_or("?", |f| &*f.name);
        Some(format!("required feed {name} is {}", state.as_str()))
    }

    /// Publishes `tickgate_feed_up`, `tickgate_feed_state` and
    /// `tickgate_feed_last_tick_age_seconds` as of `now`.
    pub fn publish_gauges(&self, now: Instant) {
        for feed in self.snapshot() {
            let age = feed
                .last_tick
                .map(|last| now.saturating_duration_since(last));
            telemetry::feed_status(&feed.name, feed.state, age);
        }
    }
}

impl Board {
    fn position(&self, name: &Arc<str>) -> Option<FeedId> {
        self.feeds
            .iter()
            .position(|f| &f.name == name)
            .map(|i| i as FeedId)
    }

    fn add(&mut self, name: &Arc<str>, required: bool) -> FeedId {
        self.feeds.push(FeedEntry {
            name: Arc::clone(name),
            last_tick: None,
        });
        self.freshness.add_feed(required)
    }
}
