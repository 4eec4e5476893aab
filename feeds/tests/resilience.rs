//! Reconnects, staleness and recovery, failover and switch-back, and every
//! kind of bad input: counted, skipped, and the feed carries on.

// Test peers and helper tasks belong to the test and end with it; no
// gateway shutdown waits for them.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tickgate_feeds::{FeedEvent, FeedKind, FeedState, Quote, Tick, TickError, now_micros};
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, sleep};
use tokio_tungstenite::tungstenite::Message;

fn rejected(feed: &str, reason: &str) -> u64 {
    counter(
        "tickgate_ticks_rejected_total",
        &[("feed", feed), ("reason", reason)],
    )
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn feed_reconnects_after_the_upstream_drops() {
    recorder();
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        for round in 0..2 {
            let mut stream = accept(&listener).await;
            let line = format!("{{\"symbol\":\"R{round}\",\"bid\":1}}\n");
            stream.write_all(line.as_bytes()).await.expect("write");
            if round == 0 {
                drop(stream);
            } else {
                sleep(WAIT).await;
            }
        }
    });
    let mut config = quick("reconnects", FeedKind::Tcp);
    config.address = Some(address);
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(2).await;
    let names: Vec<_> = ticks
        .iter()
        .filter_map(|t| t.symbol)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, ["R0", "R1"]);
    use FeedState::*;
    assert_eq!(
        feeds.states("reconnects"),
        [Connecting, Live, Down, Connecting, Live]
    );
    assert_eq!(
        counter("tickgate_feed_reconnects_total", &[("feed", "reconnects")]),
        1
    );
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn refused_connections_retry_with_backoff_and_stay_down() {
    recorder();
    // Bind then drop: the port is (very likely) closed now.
    let (listener, address) = listener().await;
    drop(listener);
    let mut config = quick("refused", FeedKind::Tcp);
    config.address = Some(address);
    let mut feeds = Harness::start(&[config]);
    feeds.until_state("refused", FeedState::Down).await;
    eventually("a few retries", || {
        counter("tickgate_feed_reconnects_total", &[("feed", "refused")]) >= 3
    })
    .await;
    feeds.stop().await;
}

#[tokio::test]
async fn silent_feed_goes_stale_then_live_again_when_data_returns() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let mut stream = accept(&listener).await;
        stream
            .write_all(b"{\"symbol\":\"A\",\"bid\":1}\n")
            .await
            .expect("write");
        sleep(Duration::from_millis(700)).await;
        stream
            .write_all(b"{\"symbol\":\"A\",\"bid\":2}\n")
            .await
            .expect("write");
        sleep(WAIT).await;
    });
    let mut config = quick("stale", FeedKind::Tcp);
    config.address = Some(address);
    config.staleness_ms = 200;
    let mut feeds = Harness::start(&[config]);
    feeds.until_state("stale", FeedState::Live).await;
    let went_stale = Instant::now();
    feeds.until_state("stale", FeedState::Stale).await;
    feeds.until_state("stale", FeedState::Live).await;
    assert!(went_stale.elapsed() >= Duration::from_millis(150));
    assert_eq!(feeds.ticks(1).await[0].bid, Some(2.0));
    use FeedState::*;
    assert_eq!(feeds.states("stale"), [Connecting, Live, Stale, Live]);
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn a_peer_that_never_sends_is_stale_and_then_dropped_after_the_idle_timeout() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(accept(&listener).await);
        }
    });
    let mut config = quick("silent", FeedKind::Tcp);
    config.address = Some(address);
    config.staleness_ms = 100;
    config.idle_timeout_ms = 400;
    let mut feeds = Harness::start(&[config]);
    feeds.until_state("silent", FeedState::Stale).await;
    feeds.until_state("silent", FeedState::Down).await;
    feeds.until_state("silent", FeedState::Connecting).await;
    assert!(!feeds.states("silent").contains(&FeedState::Live));
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn a_websocket_upstream_that_never_finishes_its_handshake_times_out() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(accept(&listener).await);
        }
    });
    let mut config = quick("hung-handshake", FeedKind::Ws);
    config.url = Some(format!("ws://{address}/"));
    config.connect_timeout_ms = 150;
    let started = Instant::now();
    let mut feeds = Harness::start(&[config]);
    feeds.until_state("hung-handshake", FeedState::Down).await;
    assert!(started.elapsed() >= Duration::from_millis(140));
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn every_kind_of_bad_line_is_counted_and_skipped_and_the_feed_carries_on() {
    recorder();
    let (listener, address) = listener().await;
    let huge = format!("{{\"symbol\":\"BIG\",\"pad\":\"{}\"}}\n", "x".repeat(4096));
    let lines: Vec<Vec<u8>> = vec![
        b"{\"symbol\":\"OK1\",\"bid\":1.5}\n".to_vec(),
        b"{\"symbol\":\"BAD\",\"bid\":\n".to_vec(), // malformed
        b"{\"symbol\":\"BAD\",\"bid\":\"1.5\"}\n".to_vec(), // wrong type
        b"{\"bid\":1.5}\n".to_vec(),                // missing symbol
        b"{\"symbol\":\"BAD SYM\",\"bid\":1.5}\n".to_vec(), // invalid symbol
        b"{\"symbol\":\"NAN\",\"bid\":NaN}\n".to_vec(), // NaN is not JSON
        huge.into_bytes(),                          // oversize
        b"\x00\xff\xfe\x89PNG\r\n\x1a\x00garbage\n".to_vec(), // binary garbage
        b"[{\"symbol\":\"OK2\",\"ask\":2},{\"symbol\":7}]\n".to_vec(), // one good, one bad
        b"{\"symbol\":\"NEG\",\"bid\":-3}\n".to_vec(), // parses; validation refuses
        b"{\"symbol\":\"OLD\",\"bid\":3,\"ts\":5}\n".to_vec(), // parses; validation refuses
        b"{\"symbol\":\"OK3\",\"bid\":3}\n".to_vec(),
        b"{\"symbol\":\"CUT\",\"bi".to_vec(), // peer closes mid-message
    ];
    let server = tokio::spawn(async move {
        let mut stream = accept(&listener).await;
        for line in lines {
            stream.write_all(&line).await.expect("write");
        }
        drop(stream);
        let _again = accept(&listener).await;
        sleep(WAIT).await;
    });
    let mut config = quick("bad-input", FeedKind::Tcp);
    config.address = Some(address);
    config.max_message_bytes = 1024;
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(5).await;
    let names: Vec<_> = ticks
        .iter()
        .filter_map(|t| t.symbol)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, ["OK1", "OK2", "NEG", "OLD", "OK3"]);
    // What the gateway's validation does with the two that parse but lie.
    let now = now_micros();
    assert_eq!(ticks[2].validate(now), Err(TickError::BadPrice));
    assert_eq!(ticks[3].validate(now), Err(TickError::BadTimestamp));
    feeds.until_state("bad-input", FeedState::Down).await;
    feeds.until_state("bad-input", FeedState::Connecting).await;
    for (reason, count) in [
        // Truncated object, NaN, and the garbage, which holds a newline: two lines.
        ("malformed_json", 4),
        ("wrong_type", 2),
        ("missing_symbol", 1),
        ("invalid_symbol", 1),
        ("oversize", 1),
        ("truncated", 1),
    ] {
        assert_eq!(rejected("bad-input", reason), count, "reason {reason}");
    }
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn a_websocket_peer_closing_mid_frame_and_oversize_frames_are_survived() {
    recorder();
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept_ws(&listener).await;
        ws.send(Message::text(format!("[{}]", "1,".repeat(200) + "1")))
            .await
            .expect("send");
        ws.send(Message::binary(vec![0xff, 0x00, 0x13]))
            .await
            .expect("send");
        ws.send(Message::text(r#"{"symbol":"FIRST","bid":1}"#))
            .await
            .expect("send");
        // Close the TCP stream under the WebSocket, mid-frame.
        let mut tcp = ws.into_inner();
        tcp.write_all(&[0x81, 0x7e, 0x10, 0x00, b'{'])
            .await
            .expect("write");
        drop(tcp);
        let mut ws = accept_ws(&listener).await;
        ws.send(Message::text(r#"{"symbol":"SECOND","bid":2}"#))
            .await
            .expect("send");
        sleep(WAIT).await;
    });
    let mut config = quick("ws-bad", FeedKind::Ws);
    config.url = Some(format!("ws://{address}/"));
    config.max_message_bytes = 256;
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(2).await;
    let names: Vec<_> = ticks
        .iter()
        .filter_map(|t| t.symbol)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, ["FIRST", "SECOND"]);
    assert_eq!(rejected("ws-bad", "oversize"), 1);
    assert_eq!(rejected("ws-bad", "malformed_json"), 1);
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn backup_feeds_only_while_the_primary_is_stale_and_seq_stays_monotonic() {
    let (primary_listener, primary_address) = listener().await;
    let (backup_listener, backup_address) = listener().await;
    // Primary: ticks for 300 ms, silent for 600 ms, then ticks again.
    let primary = tokio::spawn(async move {
        let mut stream = accept(&primary_listener).await;
        for phase in [0, 1] {
            for i in 0..6 {
                let line = format!(
                    "{{\"symbol\":\"BTC-USD\",\"bid\":{}}}\n",
                    100 + phase * 10 + i
                );
                stream.write_all(line.as_bytes()).await.expect("write");
                sleep(Duration::from_millis(50)).await;
            }
            if phase == 0 {
                sleep(Duration::from_millis(600)).await;
            }
        }
        sleep(WAIT).await;
    });
    // Backup: ticks every 40 ms throughout.
    let backup = tokio::spawn(async move {
        let mut stream = accept(&backup_listener).await;
        for i in 0..200 {
            let line = format!("{{\"symbol\":\"BTC-USD\",\"bid\":{}}}\n", 500 + i);
            if stream.write_all(line.as_bytes()).await.is_err() {
                return;
            }
            sleep(Duration::from_millis(40)).await;
        }
    });
    let mut main = quick("primary", FeedKind::Tcp);
    main.address = Some(primary_address);
    main.staleness_ms = 200;
    let mut spare = quick("spare", FeedKind::Tcp);
    spare.address = Some(backup_address);
    spare.backup_for = Some("primary".into());
    let mut feeds = Harness::start(&[main, spare]);
    feeds.until_state("primary", FeedState::Live).await;
    feeds.until_state("primary", FeedState::Stale).await;
    feeds.until_state("primary", FeedState::Live).await;
    let settle = feeds.ticks(3).await;
    assert!(!settle.is_empty());
    // Walk the event stream as the gateway would: assign seq per symbol and
    // check which feed's ticks were let through in each primary state.
    let mut quote = Quote::new(tickgate_feeds::Symbol::parse("BTC-USD").expect("symbol"));
    let mut last_seq = 0;
    let mut primary_live = false;
    let (mut spare_while_live, mut spare_while_stale) = (0, 0);
    for event in &feeds.seen {
        match event {
            FeedEvent::State { feed, state } if &**feed == "primary" => {
                primary_live = *state == FeedState::Live;
            }
            FeedEvent::Ticks(batch) => {
                for tick in &batch.ticks {
                    if &*batch.feed == "spare" {
                        if primary_live {
                            spare_while_live += 1;
                        } else {
                            spare_while_stale += 1;
                        }
                    }
                    quote.apply(tick, now_micros());
                    assert!(quote.seq > last_seq);
                    last_seq = quote.seq;
                }
            }
            FeedEvent::State { .. } | FeedEvent::Venue(_) => {}
        }
    }
    assert_eq!(
        spare_while_live, 0,
        "backup ticks never pass while the primary is live"
    );
    assert!(
        spare_while_stale >= 3,
        "backup took over while the primary was stale"
    );
    primary.abort();
    backup.abort();
    feeds.stop().await;
}

#[test]
fn spawn_all_reports_every_bad_feed_before_starting_any() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let mut bad_ca = quick("bad-ca", FeedKind::Ws);
        bad_ca.url = Some("wss://localhost:1/".into());
        bad_ca.ca_file = Some("/nonexistent/ca.pem".into());
        let mut orphan = quick("orphan", FeedKind::Sim);
        orphan.backup_for = Some("ghost".into());
        let tracker = tokio_util::task::TaskTracker::new();
        let errors = tickgate_feeds::spawn_all(
            &[bad_ca.clone(), orphan],
            tx.clone(),
            tokio_util::sync::CancellationToken::new(),
            &tracker,
        )
        .expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].to_string().contains("ghost"));
        let errors = tickgate_feeds::spawn_all(
            &[bad_ca],
            tx,
            tokio_util::sync::CancellationToken::new(),
            &tracker,
        )
        .expect_err("refused");
        assert!(errors[0].to_string().contains("ca_file"), "{errors:?}");
        assert!(tracker.is_empty(), "nothing was started");
    });
}

#[allow(dead_code)]
fn _tick_is_copy(t: Tick) -> (Tick, Tick) {
    (t, t)
}
