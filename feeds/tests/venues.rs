//! Venue behaviour across connections, each against a local WebSocket
//! server playing the venue: rejected credentials back off instead of
//! hammering the venue, and a venue's ordering survives a reconnect.

// Test peers and helper tasks belong to the test and end with it; no
// gateway shutdown waits for them.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tickgate_feeds::{FeedKind, FeedState};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// An Alpaca-like venue that greets every connection, reads the `auth`
/// message, refuses the key (code 402) and closes, as Alpaca does. Each
/// accepted connection's time is sent on the returned channel.
async fn venue_refusing_the_key() -> (String, mpsc::Receiver<Instant>) {
    let (listener, address) = listener().await;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let mut ws = accept_ws(&listener).await;
            if tx.send(Instant::now()).await.is_err() {
                return;
            }
            ws.send(Message::text(r#"[{"T":"success","msg":"connected"}]"#))
                .await
                .expect("greeting");
            let auth = read_text(&mut ws).await;
            assert!(auth.contains(r#""action":"auth""#), "{auth}");
            ws.send(Message::text(
                r#"[{"T":"error","code":402,"msg":"auth failed"}]"#,
            ))
            .await
            .expect("refusal");
            let _ = ws.close(None).await;
        }
    });
    (format!("ws://{address}/"), rx)
}

#[tokio::test]
async fn a_refused_key_backs_off_exponentially_and_never_goes_live() {
    recorder();
    let (url, mut attempts) = venue_refusing_the_key().await;
    let mut config = quick("alpaca-refused", FeedKind::Alpaca);
    config.url = Some(url);
    config.symbols = vec!["AAPL".into()];
    config.credentials = Some(tickgate_feeds::venue::Credentials {
        key: Some("wrong".into()),
        secret: Some("wrong".into()),
        ..Default::default()
    });
    config.backoff_min_ms = 100;
    config.backoff_max_ms = 10_000;
    let mut feeds = Harness::start(&[config]);
    let mut times = Vec::new();
    while times.len() < 5 {
        let at = tokio::time::timeout(WAIT, attempts.recv())
            .await
            .expect("a reconnect within the wait")
            .expect("server running");
        times.push(at);
    }
    // Delay k is drawn from [d/2, d] with d = 100 ms · 2^k: a lower bound
    // on each gap holds however slow the machine is. A reset backoff would
    // keep every gap near 100 ms.
    for (k, pair) in times.windows(2).enumerate() {
        let floor = Duration::from_millis(50 << k);
        let gap = pair[1] - pair[0];
        assert!(gap >= floor, "gap {k} was {gap:?}, below {floor:?}");
    }
    let failures = counter(
        "tickgate_feed_auth_failures_total",
        &[("feed", "alpaca-refused")],
    );
    assert!(failures >= 4, "each refusal counted, got {failures}");
    feeds.until_state("alpaca-refused", FeedState::Down).await;
    let states = feeds.states("alpaca-refused");
    assert!(
        !states.contains(&FeedState::Live),
        "a greeting is not data: {states:?}"
    );
    feeds.stop().await;
}

/// A Coinbase-like venue: the first connection sends a newer ticker and
/// drops; the second replays an older one, then a newer one.
async fn coinbase_replaying_after_reconnect() -> String {
    let (listener, address) = listener().await;
    tokio::spawn(async move {
        let ticker = |seq: u64, second: u32, price: &str| {
            Message::text(format!(
                r#"{{"type":"ticker","product_id":"BTC-USD","sequence":{seq},"time":"2026-01-05T10:00:{second:02}.000000Z","price":"{price}","best_bid":"{price}","best_ask":"{price}"}}"#
            ))
        };
        let mut first = accept_ws(&listener).await;
        read_text(&mut first).await;
        first.send(ticker(1_000, 10, "97000")).await.expect("send");
        drop(first);
        let mut second = accept_ws(&listener).await;
        read_text(&mut second).await;
        second.send(ticker(990, 9, "96000")).await.expect("send");
        second.send(ticker(1_010, 11, "98000")).await.expect("send");
        tokio::time::sleep(WAIT).await;
    });
    format!("ws://{address}/")
}

#[tokio::test]
async fn an_older_coinbase_ticker_after_a_reconnect_never_overwrites_a_newer_one() {
    recorder();
    let mut config = quick("coinbase-reconnect", FeedKind::Coinbase);
    config.url = Some(coinbase_replaying_after_reconnect().await);
    config.symbols = vec!["BTC-USD".into()];
    let mut feeds = Harness::start(&[config]);
    let first = feeds.ticks(1).await;
    let second = feeds.ticks(1).await;
    let prices: Vec<_> = first.iter().chain(&second).map(|t| t.last).collect();
    assert_eq!(prices, [Some(97000.0), Some(98000.0)]);
    assert_eq!(
        counter(
            "tickgate_ticks_rejected_total",
            &[("feed", "coinbase-reconnect"), ("reason", "out_of_order")]
        ),
        1
    );
    use FeedState::*;
    assert_eq!(
        feeds.states("coinbase-reconnect"),
        [Connecting, Live, Down, Connecting, Live]
    );
    feeds.stop().await;
}

#[tokio::test]
async fn heartbeats_and_acknowledgements_alone_never_make_a_feed_live() {
    let (listener, address) = listener().await;
    tokio::spawn(async move {
        let mut ws = accept_ws(&listener).await;
        read_text(&mut ws).await;
        ws.send(Message::text(
            r#"{"type":"subscriptions","channels":[{"name":"ticker","product_ids":["BTC-USD"]}]}"#,
        ))
        .await
        .expect("send");
        for sequence in 1..=5 {
            let heartbeat = format!(
                r#"{{"type":"heartbeat","product_id":"BTC-USD","sequence":{sequence},"last_trade_id":0}}"#
            );
            ws.send(Message::text(heartbeat)).await.expect("send");
        }
        // Far past the staleness window: a feed that saw no data is stale.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        ws.send(Message::text(
            r#"{"type":"ticker","product_id":"BTC-USD","sequence":9,"price":"97000"}"#,
        ))
        .await
        .expect("send");
        tokio::time::sleep(WAIT).await;
    });
    let mut config = quick("coinbase-heartbeats", FeedKind::Coinbase);
    config.url = Some(format!("ws://{address}/"));
    config.symbols = vec!["BTC-USD".into()];
    config.staleness_ms = 200;
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds
        .until_state("coinbase-heartbeats", FeedState::Live)
        .await;
    assert!(ticks.is_empty(), "live is reported before the first ticks");
    assert_eq!(feeds.ticks(1).await[0].last, Some(97000.0));
    use FeedState::*;
    assert_eq!(
        feeds.states("coinbase-heartbeats"),
        [Connecting, Stale, Live],
        "the acknowledgement and heartbeats left it stale; the ticker made it live"
    );
    feeds.stop().await;
}

#[tokio::test]
async fn a_null_field_reaches_the_gateway_as_a_clear() {
    use tokio::io::AsyncWriteExt;
    let (listener, address) = listener().await;
    tokio::spawn(async move {
        let mut stream = accept(&listener).await;
        stream
            .write_all(
                b"{\"symbol\":\"A\",\"bid\":1.5,\"ask\":1.6}\n{\"symbol\":\"A\",\"bid\":null}\n",
            )
            .await
            .expect("write");
        tokio::time::sleep(WAIT).await;
    });
    let mut config = quick("nulls", FeedKind::Tcp);
    config.address = Some(address);
    config.prefix = Some("X.".into());
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(2).await;
    let mut quote = tickgate_feeds::Quote::new(ticks[0].symbol.expect("symbol"));
    for tick in &ticks {
        quote.apply(tick, tickgate_feeds::now_micros());
    }
    assert_eq!(quote.symbol.as_str(), "X.A");
    assert_eq!(
        (quote.bid, quote.ask),
        (None, Some(1.6)),
        "null cleared the bid through filter and prefix; the absent ask stayed"
    );
    feeds.stop().await;
}
