//! One client session: `RUSTC_BOOTSTRAP=1 cargo fuzz run session`.
//!
//! Each input line is one frame (first byte: kind and clock step, the rest:
//! text). The session never panics, every frame it queues is a JSON object
//! with a `type`, it never holds more than its 20 subscriptions, and a close
//! is its last word. Same body as `session` in `tests/fuzz_replay.rs`.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tickgate::auth::Grant;
use tickgate::board::FeedBoard;
use tickgate::config::Config;
use tickgate::fanout::store::SnapshotStore;
use tickgate::fanout::{Fanout, Mailbox};
use tickgate::session::{Inbound, Outcome, Session, SessionLimits};
use tickgate_feeds::{Symbol, Tick};

fuzz_target!(|data: &[u8]| {
    let store = SnapshotStore::new(64);
    let ticks: Vec<Tick> = ["AAPL", "MSFT", "BTC-USD"]
        .iter()
        .map(|name| Tick {
            symbol: Symbol::parse(name).ok(),
            bid: Some(1.0),
            ..Tick::default()
        })
        .collect();
    Fanout::default().apply(&store, 0, &ticks, 1_764_000_000_000_000);
    let board = FeedBoard::default();
    let start = Instant::now();
    let mailbox = Arc::new(Mailbox::new(1, 8, start));
    let mut limits = SessionLimits::from_config(&Config::default());
    limits.max_subscriptions = 20;
    let mut session = Session::new(
        &store,
        &board,
        None,
        Arc::clone(&mailbox),
        limits,
        Some(Grant::unrestricted()),
        start,
        Duration::from_secs(1_764_000_000),
    );
    let mut now = start;
    for line in data.split(|&b| b == b'\n') {
        let Some((&head, rest)) = line.split_first() else {
            continue;
        };
        now += Duration::from_millis(u64::from(head >> 3) * 10);
        let text = String::from_utf8_lossy(rest);
        let frame = match head & 7 {
            1 => Inbound::Binary,
            2 => Inbound::Ping,
            3 => Inbound::Pong,
            4 => Inbound::Close,
            _ => Inbound::Text(&text),
        };
        let mut outcome = session.handle(frame, now);
        while outcome == Outcome::Continue && session.has_unfinished_request() {
            session.continue_request();
        }
        if outcome == Outcome::Continue && session.deadline().is_some_and(|d| now >= d) {
            outcome = session.on_deadline(now);
        }
        for frame in mailbox.drain(now).into_frames() {
            let value: serde_json::Value = serde_json::from_str(&frame).expect("frames are JSON");
            assert!(value["type"].is_string(), "{frame}");
        }
        assert!(mailbox.lock().subscription_count() <= 20);
        if let Outcome::Close(_) = outcome {
            if let Some(words) = session.take_last_words() {
                let value: serde_json::Value = serde_json::from_str(&words).expect("last words are JSON");
                assert_eq!(value["type"], "error");
            }
            break;
        }
    }
    session.end();
});
