//! The publisher's own feeds: starting them from the config, and whether
//! they are live enough for `/readyz`.

use std::collections::HashMap;
use std::sync::Arc;

use tickgate_feeds::sim::{SimConfig, Simulator};
use tickgate_feeds::{FeedEvent, FeedState};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::PublishError;
use crate::config::Config;

/// Starts `[[feeds]]` (or the `[simulator]` feed when there are none);
/// returns the feeds `/readyz` waits for (all of them when none is marked
/// `required`: then any one live feed will do).
pub(super) fn start_feeds(
    config: &Config,
    tx: mpsc::Sender<FeedEvent>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<Upstream, PublishError> {
    if config.feeds.is_empty() {
        let sim = &config.simulator;
        let simulator = Simulator::new(SimConfig {
            ticks_per_second: sim.ticks_per_second,
            seed: sim.seed,
            symbols: sim.symbols,
            bursts: sim.bursts,
        });
        tracker.spawn(simulator.run("sim".into(), tx, shutdown.clone()));
        return Ok(Upstream::new(Vec::new()));
    }
    tickgate_feeds::spawn_all(&config.feeds, tx, shutdown.clone(), tracker).map_err(|errors| {
        PublishError::Feeds(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let required = config
        .feeds
        .iter()
        .filter(|f| f.required)
        .map(|f| Arc::from(f.name.as_str()))
        .collect();
    Ok(Upstream::new(required))
}

/// The states of the publisher's own feeds. Live when every required feed
/// is live, or (none required) when any feed is.
#[derive(Debug)]
pub(super) struct Upstream {
    required: Vec<Arc<str>>,
    /// One entry per configured feed that reported a state.
    states: HashMap<Arc<str>, FeedState>,
}

impl Upstream {
    pub(super) fn new(required: Vec<Arc<str>>) -> Self {
        Self {
            required,
            states: HashMap::new(),
        }
    }

    /// Records a feed's new state; returns whether the upstream is live now.
    pub(super) fn set(&mut self, feed: Arc<str>, state: FeedState) -> bool {
        self.states.insert(feed, state);
        self.live()
    }

    pub(super) fn live(&self) -> bool {
        let is_live = |name: &Arc<str>| self.states.get(name) == Some(&FeedState::Live);
        if self.required.is_empty() {
            self.states.values().any(|s| *s == FeedState::Live)
        } else {
            self.required.iter().all(is_live)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|name| Arc::from(*name)).collect()
    }

    #[test]
    fn nothing_reported_is_not_live() {
        assert!(!Upstream::new(Vec::new()).live());
        assert!(!Upstream::new(names(&["a"])).live());
    }

    #[test]
    fn with_none_required_any_live_feed_will_do() {
        let mut upstream = Upstream::new(Vec::new());
        assert!(!upstream.set("a".into(), FeedState::Connecting));
        assert!(upstream.set("b".into(), FeedState::Live));
        assert!(!upstream.set("b".into(), FeedState::Connecting));
    }

    #[test]
    fn every_required_feed_must_be_live() {
        let mut upstream = Upstream::new(names(&["a", "b"]));
        assert!(!upstream.set("a".into(), FeedState::Live));
        assert!(!upstream.set("other".into(), FeedState::Live));
        assert!(upstream.set("b".into(), FeedState::Live));
        assert!(!upstream.set("a".into(), FeedState::Connecting));
    }
}
