//! The feed board: each feed's latest state, when it last delivered a tick
//! and whether `/readyz` waits for it. The ingest task writes it; `/readyz`,
//! metrics and new subscriptions read it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tickgate_feeds::FeedState;

use crate::fanout::FeedId;
use crate::telemetry;

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
    pub fn id(&self, feed: &Arc<str>) -> FeedId {
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
    pub fn set_state(&self, id: FeedId, state: FeedState) -> FeedState {
        let mut board = self.lock();
        let status = &mut board[id as usize];
        std::mem::replace(&mut status.state, state)
    }

    /// Feed `id` delivered a tick at `now`.
    pub fn ticked(&self, id: FeedId, now: Instant) {
        self.lock()[id as usize].last_tick = Some(now);
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
