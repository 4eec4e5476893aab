//! Opt-in delivery options of `subscribe` with real clients: rate caps,
//! delta mode, freshness metadata and resume.

// Test peers and helper tasks belong to the test and end with it; no
// gateway shutdown waits for them.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

// The clock is paused: feed pacing, the cap's slots and the reader's
// timestamps all run on the gateway's clock, so a busy machine cannot make
// the feed look slower than the cap.
#[tokio::test(start_paused = true)]
async fn a_4_hz_cap_sends_at_most_4_updates_a_second_each_the_latest() {
    let gateway = gateway_without_feeds(test_config()).await;
    inject(&gateway, vec![quote_tick("AAPL", 1.0)]).await;
    wait_for_seq(&gateway, "AAPL", 1).await;
    let mut client = Client::connect(gateway.client_addr()).await;
    client
        .send(r#"{"op":"subscribe","symbols":["AAPL"],"max_rate":4}"#)
        .await;
    client.next_of_type("snapshot").await;
    let feeder = {
        let sender = gateway.feed_sender();
        tokio::spawn(async move {
            for i in 0..100 {
                let batch = tickgate_feeds::TickBatch {
                    feed: "test".into(),
                    ticks: vec![quote_tick("AAPL", 2.0 + f64::from(i))],
                };
                let _ = sender.send(tickgate_feeds::FeedEvent::Ticks(batch)).await;
                // Paces the feed (50 ticks/s against a 4 Hz limit): the
                // time between ticks is the behaviour under test.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let start = tokio::time::Instant::now();
    let mut arrivals = Vec::new();
    // The feed runs for about 2 s; keep reading until a slot after it ended.
    while start.elapsed() < Duration::from_millis(2800) {
        let Ok(frame) = tokio::time::timeout(Duration::from_millis(300), client.next_json()).await
        else {
            continue;
        };
        if frame["type"] == "update" {
            arrivals.push((
                start.elapsed(),
                frame["quotes"][0]["seq"].as_u64().expect("seq"),
            ));
        }
    }
    feeder.await.expect("feeder");
    // At most one update per 250 ms slot (a little scheduling slack allowed).
    for pair in arrivals.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_millis(240),
            "updates too close: {arrivals:?}"
        );
    }
    assert!(
        (7..=12).contains(&arrivals.len()),
        "{} updates in 2.8 s at 4 Hz: {arrivals:?}",
        arrivals.len()
    );
    assert!(
        arrivals.windows(2).all(|p| p[1].1 > p[0].1 + 1),
        "each slot skips to the latest: {arrivals:?}"
    );
    // The last slot delivered the final value.
    let final_seq = latest_seq(&gateway, "AAPL");
    assert_eq!(arrivals.last().map(|a| a.1), final_seq, "{arrivals:?}");
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn delta_updates_merge_into_the_full_quote_and_meta_reports_freshness() {
    let gateway = gateway_without_feeds(test_config()).await;
    inject(&gateway, vec![quote_tick("MSFT", 400.0)]).await;
    wait_for_seq(&gateway, "MSFT", 1).await;
    let mut client = Client::connect(gateway.client_addr()).await;
    client
        .send(r#"{"op":"subscribe","symbols":["MSFT"],"delta":true,"meta":true}"#)
        .await;
    client.next_of_type("subscribed").await;
    let snapshot = client.next_json().await;
    let Value::Object(mut held) = snapshot["quotes"][0].clone() else {
        panic!("full quote in the snapshot")
    };
    assert!(held.contains_key("bid_size"), "the snapshot is complete");
    assert_eq!(held.remove("conflated"), Some(json!(0)));
    assert!(held.remove("received_ts").is_some_and(|ts| ts.is_u64()));
    assert_eq!(held.remove("stale"), Some(json!(false)), "no status: live");

    let mut bid_only = quote_tick("MSFT", 401.0);
    bid_only.ask = None;
    bid_only.bid_size = None;
    bid_only.ask_size = None;
    inject(&gateway, vec![bid_only]).await;
    let update = client.next_of_type("update").await;
    let quote = &update["quotes"][0];
    assert_eq!(quote["bid"], 401.0);
    assert!(
        quote.get("ask").is_none() && quote.get("bid_size").is_none(),
        "unchanged fields are left out: {quote}"
    );
    assert_eq!(quote["conflated"], 0);
    assert!(quote["received_ts"].is_u64());
    let Value::Object(delta) = quote.clone() else {
        panic!("object")
    };
    for (key, value) in delta {
        if !matches!(key.as_str(), "conflated" | "received_ts" | "stale") {
            held.insert(key, value);
        }
    }
    let full: Value =
        serde_json::from_str(&latest_quote_json(&gateway, "MSFT").expect("data")).expect("JSON");
    assert_eq!(Value::Object(held), full);
    gateway.shutdown(WAIT).await;
}

/// A gateway with one TCP feed, `lines`, that connects out to `upstream`.
/// The staleness window is long, so a busy machine never turns a pause into
/// `stale`: only the test drops the feed.
async fn gateway_with_tcp_feed(upstream: &TcpListener) -> tickgate::Gateway {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[feeds]]
name = "lines"
kind = "tcp"
address = "{address}"
staleness_ms = 60000
backoff_min_ms = 50
backoff_max_ms = 200
"#,
        address = upstream.local_addr().expect("addr")
    );
    let config = tickgate::config::Config::from_toml(&text, "test").expect("valid config");
    tickgate::Gateway::start(config, tickgate::FeedSetup::Configured)
        .await
        .expect("starts")
}

async fn feed_line(socket: &mut TcpStream, symbol: &str, bid: f64) {
    let line = json!({"symbol": symbol, "bid": bid, "ask": bid + 0.02, "ts": tickgate_feeds::now_micros()});
    socket
        .write_all(format!("{line}\n").as_bytes())
        .await
        .expect("write");
}

async fn accept_feed(upstream: &TcpListener) -> TcpStream {
    tokio::time::timeout(WAIT, upstream.accept())
        .await
        .expect("the gateway connects out")
        .expect("accept")
        .0
}

/// The first update quote of `symbol` whose bid is `bid`.
async fn quote_with_bid(client: &mut Client, symbol: &str, bid: f64) -> Value {
    loop {
        let frame = client.next_of_type("update").await;
        let found = frame["quotes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|q| q["symbol"] == symbol && q["bid"] == bid)
            .cloned();
        if let Some(quote) = found {
            return quote;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_quotes_say_stale_while_their_feed_is_down_and_not_once_it_is_live() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gateway = gateway_with_tcp_feed(&upstream).await;
    let mut socket = accept_feed(&upstream).await;
    feed_line(&mut socket, "AAPL", 100.0).await;
    wait_for_seq(&gateway, "AAPL", 1).await;
    let mut plain = Client::connect(gateway.client_addr()).await;
    plain.send(r#"{"op":"subscribe","symbols":["AAPL"]}"#).await;
    let plain_snapshot = loop {
        let message = plain.next_message().await;
        let text = message.to_text().expect("text frame").to_owned();
        if text.contains(r#""type":"snapshot""#) {
            break text;
        }
    };
    let shared = latest_quote_json(&gateway, "AAPL").expect("data");
    assert_eq!(
        plain_snapshot,
        format!(r#"{{"type":"snapshot","quotes":[{shared}]}}"#),
        "a plain snapshot is the shared quote, byte for byte"
    );

    // The upstream drops; the plain client hearing `down` shows the
    // gateway knows.
    drop(socket);
    assert_eq!(plain.next_of_type("status").await["state"], "down");

    // A meta client joining during the outage sees it on the quote itself.
    let mut meta = Client::connect(gateway.client_addr()).await;
    meta.send(r#"{"op":"subscribe","symbols":["AAPL"],"meta":true}"#)
        .await;
    let snapshot = meta.next_of_type("snapshot").await;
    let quote = &snapshot["quotes"][0];
    assert_eq!(quote["stale"], true, "{snapshot}");
    assert_eq!(quote["bid"], 100.0);
    assert_eq!(quote["conflated"], 0);
    assert!(quote["received_ts"].is_u64(), "{snapshot}");
    assert_eq!(
        meta.next_json().await["state"],
        "down",
        "status still follows"
    );

    // The feed comes back; garbage first, then data: updates say not stale.
    let mut socket = accept_feed(&upstream).await;
    socket.write_all(b"{not json\n").await.expect("write");
    feed_line(&mut socket, "AAPL", 101.0).await;
    let quote = quote_with_bid(&mut meta, "AAPL", 101.0).await;
    assert_eq!(quote["stale"], false, "{quote}");
    assert!(quote["received_ts"].is_u64(), "{quote}");
    feed_line(&mut socket, "AAPL", 102.0).await;
    assert_eq!(
        quote_with_bid(&mut meta, "AAPL", 102.0).await["stale"],
        false
    );

    // Plain subscribers never see the metadata.
    let quote = quote_with_bid(&mut plain, "AAPL", 102.0).await;
    for key in ["stale", "received_ts", "conflated"] {
        assert!(quote.get(key).is_none(), "{quote}");
    }
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn resume_sends_only_what_changed_since_the_clients_seq() {
    let gateway = gateway_without_feeds(test_config()).await;
    inject(
        &gateway,
        vec![
            quote_tick("AAPL", 1.0),
            quote_tick("MSFT", 2.0),
            quote_tick("NVDA", 3.0),
        ],
    )
    .await;
    wait_for_seq(&gateway, "NVDA", 1).await;
    let mut first = Client::connect(gateway.client_addr()).await;
    first
        .send(r#"{"op":"subscribe","symbols":["AAPL","MSFT","NVDA"]}"#)
        .await;
    let epoch = first.next_of_type("subscribed").await["epoch"].clone();
    let held: Vec<(String, u64)> = quotes(&first.next_of_type("snapshot").await);
    drop(first);
    inject(&gateway, vec![quote_tick("MSFT", 2.5)]).await;
    wait_for_seq(&gateway, "MSFT", 2).await;

    let resume: serde_json::Map<String, Value> =
        held.into_iter().map(|(s, seq)| (s, json!(seq))).collect();
    let mut client = Client::connect(gateway.client_addr()).await;
    client
        .send_json(
            json!({"op":"subscribe","symbols":["AAPL","MSFT","NVDA"],"resume":resume,"epoch":epoch,"id":4}),
        )
        .await;
    assert_eq!(
        client.next_json().await["symbols"],
        json!(["AAPL", "MSFT", "NVDA"])
    );
    let snapshot = client.next_json().await;
    assert_eq!(snapshot["resumed"], true);
    assert_eq!(snapshot["unchanged"], 2);
    assert_eq!(quotes(&snapshot), vec![("MSFT".to_owned(), 2)]);
    gateway.shutdown(WAIT).await;
}

/// A restarted gateway counts seq from 1 again, so the seq a client holds
/// from the old process can be the new one's for another value. The
/// `subscribed` reply names the process's epoch; a resume from another epoch
/// gets every quote in full and is never answered "unchanged".
#[tokio::test]
async fn resume_after_a_restart_never_keeps_a_changed_quote() {
    let before = gateway_without_feeds(test_config()).await;
    inject(&before, vec![quote_tick("AAPL", 1.0)]).await;
    wait_for_seq(&before, "AAPL", 1).await;
    let mut client = Client::connect(before.client_addr()).await;
    client
        .send(r#"{"op":"subscribe","symbols":["AAPL"]}"#)
        .await;
    let old_epoch = client.next_of_type("subscribed").await["epoch"].clone();
    assert_eq!(
        quotes(&client.next_of_type("snapshot").await),
        vec![("AAPL".to_owned(), 1)]
    );
    drop(client);
    before.shutdown(WAIT).await;

    // The restarted process: the same seq, a different value.
    let after = gateway_without_feeds(test_config()).await;
    inject(&after, vec![quote_tick("AAPL", 2.0)]).await;
    wait_for_seq(&after, "AAPL", 1).await;
    let mut client = Client::connect(after.client_addr()).await;
    client
        .send_json(
            json!({"op":"subscribe","symbols":["AAPL"],"resume":{"AAPL":1},"epoch":old_epoch}),
        )
        .await;
    let new_epoch = client.next_of_type("subscribed").await["epoch"].clone();
    assert_ne!(new_epoch, old_epoch, "every process has its own epoch");
    let snapshot = client.next_of_type("snapshot").await;
    assert_eq!(snapshot["resumed"], false, "{snapshot}");
    assert_eq!(snapshot["quotes"][0]["bid"], 2.0, "{snapshot}");
    assert_eq!(snapshot["quotes"][0]["seq"], 1, "{snapshot}");

    // Within the new epoch the same seq is current again.
    client
        .send_json(
            json!({"op":"subscribe","symbols":["AAPL"],"resume":{"AAPL":1},"epoch":new_epoch}),
        )
        .await;
    let snapshot = client.next_of_type("snapshot").await;
    assert_eq!(snapshot["resumed"], true, "{snapshot}");
    assert_eq!(snapshot["unchanged"], 1, "{snapshot}");
    after.shutdown(WAIT).await;
}

#[tokio::test]
async fn malformed_delivery_options_are_bad_requests() {
    let gateway = gateway_without_feeds(test_config()).await;
    let mut client = Client::connect(gateway.client_addr()).await;
    for request in [
        r#"{"op":"subscribe","symbols":["A"],"max_rate":0,"id":1}"#,
        r#"{"op":"subscribe","symbols":["A"],"max_rate":"fast","id":1}"#,
        r#"{"op":"subscribe","symbols":["A"],"max_rate":1e9,"id":1}"#,
        r#"{"op":"subscribe","symbols":["A"],"delta":"yes","id":1}"#,
        r#"{"op":"subscribe","symbols":["A"],"resume":[1],"id":1}"#,
        r#"{"op":"subscribe","symbols":["A"],"resume":{"A":-1},"id":1}"#,
        r#"{"op":"subscribe","symbols":["A"],"resume":{"A":1},"epoch":7,"id":1}"#,
        r#"{"op":"subscribe","symbols":["A"],"resume":{"A":1},"epoch":"","id":1}"#,
    ] {
        client.send(request).await;
        let error = client.next_json().await;
        assert_eq!(error["code"], "bad_request", "{request}");
        assert_eq!(error["id"], 1);
        client.assert_usable().await;
    }
    gateway.shutdown(WAIT).await;
}

fn trade_tick(symbol: &str, price: f64) -> tickgate_feeds::Tick {
    tickgate_feeds::Tick {
        symbol: Some(sym(symbol)),
        kind: tickgate_feeds::TickKind::Trade,
        last: Some(price),
        last_size: Some(100.0),
        ts: Some(tickgate_feeds::now_micros()),
        ..tickgate_feeds::Tick::default()
    }
}

/// Reads frames until `done` says so (bounded by the wait).
async fn collect_until(client: &mut Client, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let frame = tokio::time::timeout_at(deadline, client.next_json())
            .await
            .expect("frames keep coming");
        let finished = done(&frame);
        frames.push(frame);
        if finished {
            return frames;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trade_arrives_in_order_after_its_quote_while_quotes_conflate() {
    let gateway = gateway_without_feeds(test_config()).await;
    inject(&gateway, vec![quote_tick("T1", 1.0), quote_tick("T2", 1.0)]).await;
    wait_for_seq(&gateway, "T2", 1).await;
    let mut client = Client::connect(gateway.client_addr()).await;
    // A 2 Hz cap conflates the quotes heavily; trades are events and are not.
    client
        .send(r#"{"op":"subscribe","symbols":["T1","T2"],"trades":true,"max_rate":2}"#)
        .await;
    client.next_of_type("snapshot").await;
    let mut quote_ticks = 0u64;
    for batch in 0..40u32 {
        let mut ticks = Vec::new();
        for i in 0..10u32 {
            let n = f64::from(batch * 10 + i + 1);
            for symbol in ["T1", "T2"] {
                ticks.push(quote_tick(symbol, n));
                quote_ticks += 1;
                ticks.push(trade_tick(symbol, n));
            }
        }
        inject(&gateway, ticks).await;
        // Paces the feed, not a wait for an event.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let frames = collect_until(&mut client, |frame| {
        frame["type"] == "trades"
            && frame["trades"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["symbol"] == "T2" && t["price"] == 400.0))
    })
    .await;
    let mut held: HashMap<String, u64> = HashMap::new();
    let mut prices: HashMap<String, Vec<f64>> = HashMap::new();
    let mut updates = 0u64;
    for frame in &frames {
        match frame["type"].as_str() {
            Some("update") => {
                for (symbol, seq) in quotes(frame) {
                    updates += 1;
                    held.insert(symbol, seq);
                }
            }
            Some("trades") => {
                for trade in frame["trades"].as_array().expect("trades") {
                    let symbol = trade["symbol"].as_str().expect("symbol").to_owned();
                    let seq = trade["seq"].as_u64().expect("seq");
                    assert!(
                        held.get(&symbol).is_some_and(|&q| q >= seq),
                        "trade {trade} before a quote at least as new (held {:?})",
                        held.get(&symbol)
                    );
                    assert_eq!(trade["size"], 100.0);
                    assert!(trade["ts"].is_u64());
                    prices
                        .entry(symbol)
                        .or_default()
                        .push(trade["price"].as_f64().expect("price"));
                }
            }
            Some("trades_lost") => panic!("nothing may be lost here: {frame}"),
            _ => {}
        }
    }
    let expected: Vec<f64> = (1..=400).map(f64::from).collect();
    assert_eq!(prices["T1"], expected, "every T1 trade, in order");
    assert_eq!(prices["T2"], expected, "every T2 trade, in order");
    assert!(
        updates * 4 < quote_ticks,
        "quotes conflate: {updates} updates for {quote_ticks} quote ticks"
    );
    gateway.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_trade_buffer_announces_exactly_what_was_lost() {
    let mut config = test_config();
    config.connection.trade_buffer = std::num::NonZeroUsize::new(16).expect("positive");
    let gateway = gateway_without_feeds(config).await;
    inject(&gateway, vec![quote_tick("FX", 1.0)]).await;
    wait_for_seq(&gateway, "FX", 1).await;
    let mut client = Client::connect_small_buffer(gateway.client_addr()).await;
    client
        .send(r#"{"op":"subscribe","symbols":["FX"],"trades":true}"#)
        .await;
    client.next_of_type("snapshot").await;
    // The client reads nothing while 5,000 trades arrive: far more than the
    // socket buffers and the 16-trade buffer hold.
    const TRADES: u32 = 5_000;
    for batch in 0..50u32 {
        let ticks = (0..100u32)
            .map(|i| trade_tick("FX", f64::from(batch * 100 + i + 1)))
            .collect();
        inject(&gateway, ticks).await;
    }
    wait_for_seq(&gateway, "FX", 1 + u64::from(TRADES)).await;
    // A dropped trade is counted the moment it is dropped: read only once
    // the buffer has overflowed.
    wait_until("the trade buffer overflows", WAIT, || async {
        metric_value(gateway.admin_addr(), "tickgate_trades_lost_total").await > 0.0
    })
    .await;
    let mut received = Vec::new();
    let mut lost = 0u64;
    let frames = collect_until(&mut client, |frame| {
        frame["type"] == "trades"
            && frame["trades"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["price"] == f64::from(TRADES)))
    })
    .await;
    for frame in frames {
        match frame["type"].as_str() {
            Some("trades") => received.extend(
                frame["trades"]
                    .as_array()
                    .expect("trades")
                    .iter()
                    .map(|t| t["price"].as_f64().expect("price")),
            ),
            Some("trades_lost") => {
                let n = frame["lost"].as_u64().expect("lost");
                assert_eq!(frame["symbols"]["FX"], n, "{frame}");
                lost += n;
            }
            _ => {}
        }
    }
    assert!(lost > 0, "the buffer overflowed");
    assert_eq!(
        received.len() as u64 + lost,
        u64::from(TRADES),
        "every trade is delivered or announced as lost"
    );
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "what arrives is in order"
    );
    let (_, metrics) = http_get(gateway.admin_addr(), "/metrics").await;
    assert!(
        metrics.contains(&format!("tickgate_trades_lost_total {lost}")),
        "lost trades are counted"
    );
    gateway.shutdown(WAIT).await;
}
