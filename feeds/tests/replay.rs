//! Replay of `.jsonl` recordings: final state reproduced exactly, pacing by
//! the recorded `ts`, looping, venue-format recordings.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use tickgate_feeds::{FeedEvent, FeedKind, FeedState, Quote, Symbol, Tick};
use tokio::time::Instant;

/// Applies ticks as the gateway's store does (each tick carries its `ts`).
fn final_state(ticks: &[Tick]) -> BTreeMap<Symbol, Quote> {
    let mut quotes = BTreeMap::new();
    for tick in ticks {
        let symbol = tick.symbol.expect("symbol");
        quotes
            .entry(symbol)
            .or_insert_with(|| Quote::new(symbol))
            .apply(tick, 0);
    }
    quotes
}

#[tokio::test]
async fn replay_as_fast_as_possible_reproduces_the_recordings_final_state() {
    let mut config = quick("replay-fast", FeedKind::Replay);
    config.path = Some(fixture("generic.jsonl"));
    config.speed = Some(0.0);
    let expected = expected_generic_ticks();
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(expected.len()).await;
    assert_eq!(final_state(&ticks), final_state(&expected));
    assert_eq!(ticks, expected);
    // The end of a non-looping recording: the feed goes stale.
    feeds.until_state("replay-fast", FeedState::Stale).await;
    feeds.stop().await;
}

#[tokio::test]
async fn replay_at_recorded_pace_spreads_ticks_like_the_recording() {
    // The fixture spans 450 ms of recorded time.
    let mut config = quick("replay-paced", FeedKind::Replay);
    config.path = Some(fixture("generic.jsonl"));
    let expected = expected_generic_ticks();
    let mut feeds = Harness::start(&[config]);
    let first = feeds.ticks(1).await;
    let started = Instant::now();
    let rest = feeds.ticks(expected.len() - first.len()).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(400), "took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    let all: Vec<Tick> = first.into_iter().chain(rest).collect();
    assert_eq!(final_state(&all), final_state(&expected));
    feeds.stop().await;
}

#[tokio::test]
async fn replay_speed_scales_the_pace() {
    let mut config = quick("replay-x4", FeedKind::Replay);
    config.path = Some(fixture("generic.jsonl"));
    config.speed = Some(4.0);
    let expected = expected_generic_ticks();
    let mut feeds = Harness::start(&[config]);
    let first = feeds.ticks(1).await;
    let started = Instant::now();
    feeds.ticks(expected.len() - first.len()).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(100), "took {elapsed:?}");
    assert!(elapsed < Duration::from_millis(400), "took {elapsed:?}");
    feeds.stop().await;
}

#[tokio::test]
async fn looping_replay_starts_over_and_restamp_uses_send_time() {
    let mut config = quick("replay-loop", FeedKind::Replay);
    config.path = Some(fixture("generic.jsonl"));
    config.speed = Some(0.0);
    config.looped = true;
    config.restamp = true;
    let expected = expected_generic_ticks();
    let before = tickgate_feeds::now_micros();
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(expected.len() * 3).await;
    assert_eq!(ticks[expected.len()].symbol, expected[0].symbol);
    assert!(ticks.iter().all(|t| t.ts.is_some_and(|ts| ts >= before)));
    feeds.stop().await;
}

#[tokio::test]
async fn replay_reads_venue_recordings_in_their_format() {
    let mut config = quick("replay-coinbase", FeedKind::Replay);
    config.path = Some(fixture("coinbase.jsonl"));
    config.format = Some("coinbase".into());
    config.speed = Some(0.0);
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(4).await;
    let names: Vec<String> = ticks
        .iter()
        .filter_map(|t| t.symbol)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, ["BTC-USD", "BTC-USD", "BTC-USD", "SOL-USD"]);
    feeds.stop().await;
}

#[tokio::test]
async fn a_missing_recording_is_down_and_retried() {
    let mut config = quick("replay-missing", FeedKind::Replay);
    config.path = Some(fixture("does-not-exist.jsonl"));
    let mut feeds = Harness::start(&[config]);
    feeds.until_state("replay-missing", FeedState::Down).await;
    assert!(!feeds.seen.iter().any(|e| matches!(e, FeedEvent::Ticks(_))));
    feeds.stop().await;
}
