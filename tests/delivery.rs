//! Opt-in delivery options of `subscribe` with real clients: rate caps,
//! delta mode, freshness metadata and resume.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    let final_seq = gateway
        .state()
        .store
        .get(&sym("AAPL"))
        .and_then(|s| s.latest())
        .map(|s| s.quote.seq);
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
        if !matches!(key.as_str(), "conflated" | "received_ts") {
            held.insert(key, value);
        }
    }
    let full: Value = serde_json::from_str(
        &gateway
            .state()
            .store
            .get(&sym("MSFT"))
            .and_then(|s| s.latest())
            .expect("data")
            .json,
    )
    .expect("JSON");
    assert_eq!(Value::Object(held), full);
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
    let held: Vec<(String, u64)> = quotes(&first.next_of_type("snapshot").await);
    drop(first);
    inject(&gateway, vec![quote_tick("MSFT", 2.5)]).await;
    wait_for_seq(&gateway, "MSFT", 2).await;

    let resume: serde_json::Map<String, Value> =
        held.into_iter().map(|(s, seq)| (s, json!(seq))).collect();
    let mut client = Client::connect(gateway.client_addr()).await;
    client
        .send_json(
            json!({"op":"subscribe","symbols":["AAPL","MSFT","NVDA"],"resume":resume,"id":4}),
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
    ] {
        client.send(request).await;
        let error = client.next_json().await;
        assert_eq!(error["code"], "bad_request", "{request}");
        assert_eq!(error["id"], 1);
        client.assert_usable().await;
    }
    gateway.shutdown(WAIT).await;
}
