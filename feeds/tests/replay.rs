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

#[tokio::test]
async fn day_fields_roll_over_at_the_feeds_session_boundary() {
    // Trades around Tuesday 2026-03-10 04:00 New York (08:00Z, daylight
    // time since Sunday), then one late print from Monday.
    let recording = [
        r#"{"symbol":"AAPL","last":10.0,"last_size":100,"ts":1773066600000000}"#,
        r#"{"symbol":"AAPL","last":12.0,"last_size":200,"ts":1773086340000000}"#,
        r#"{"symbol":"AAPL","last":11.0,"last_size":50,"ts":1773129599000000}"#,
        r#"{"symbol":"AAPL","last":11.5,"last_size":7,"ts":1773129600000000}"#,
        r#"{"symbol":"AAPL","last":13.0,"last_size":3,"ts":1773149400000000}"#,
        r#"{"symbol":"AAPL","last":99.0,"last_size":5000,"ts":1773129000000000}"#,
    ];
    let dir = std::env::temp_dir().join(format!("tickgate-feeds-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("session.jsonl");
    std::fs::write(&path, recording.join("\n") + "\n").expect("write recording");
    let mut config = quick("replay-session", FeedKind::Replay);
    config.path = Some(path);
    config.speed = Some(0.0);
    config.session_start = Some("04:00".into());
    config.session_tz = Some("America/New_York".into());
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(recording.len()).await;
    feeds.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let days: Vec<String> = ticks
        .iter()
        .map(|t| t.session.expect("stamped").date().to_string())
        .collect();
    assert_eq!(
        days,
        [
            "2026-03-09",
            "2026-03-09",
            "2026-03-09",
            "2026-03-10",
            "2026-03-10",
            "2026-03-09"
        ]
    );
    let quote = &final_state(&ticks)[&Symbol::parse("AAPL").expect("symbol")];
    assert_eq!(
        (quote.volume, quote.open, quote.high, quote.low),
        (Some(10.0), Some(11.5), Some(13.0), Some(11.5)),
        "Tuesday's day fields, untouched by Monday's late print"
    );
    assert_eq!(quote.prev_close, Some(11.0), "Monday's last price");
}
