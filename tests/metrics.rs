//! `/metrics` on a gateway with real traffic: every metric is exported with
//! its type and moves when the thing it counts happens.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Parses the Prometheus text format into `series -> value` and `name -> type`.
fn parse(text: &str) -> (HashMap<String, f64>, HashMap<String, String>) {
    let mut series = HashMap::new();
    let mut types = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                types.insert(name.to_owned(), kind.to_owned());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            if let Some((key, value)) = line.rsplit_once(' ') {
                series.insert(key.to_owned(), value.parse().unwrap_or(f64::NAN));
            }
        }
    }
    (series, types)
}

async fn scrape(gateway: &tickgate::Gateway) -> (HashMap<String, f64>, HashMap<String, String>) {
    let (status, body) = http_get(gateway.admin_addr(), "/metrics").await;
    assert_eq!(status, 200);
    parse(&body)
}

fn value(series: &HashMap<String, f64>, key: &str) -> f64 {
    series.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_exported_with_its_type_and_moves_with_traffic() {
    let mut config = test_config();
    config.connection.slow_consumer = Duration::from_millis(200);
    let gateway = gateway_without_feeds(config).await;
    let (before, _) = scrape(&gateway).await;

    let symbols: Vec<String> = (0..300).map(|i| format!("M{i}")).collect();
    let mut fast = Client::connect(gateway.client_addr()).await;
    fast.send_json(json!({"op":"subscribe","symbols":symbols}))
        .await;
    fast.next_of_type("snapshot").await;
    let mut slow = Client::connect_small_buffer(gateway.client_addr()).await;
    slow.send_json(json!({"op":"subscribe","symbols":symbols}))
        .await;
    slow.next_of_type("snapshot").await;
    fast.send("not json").await;
    assert_eq!(fast.next_json().await["code"], "bad_request");

    let (during, _) = scrape(&gateway).await;
    assert_eq!(
        value(&during, r#"tickgate_connections{transport="ws"}"#),
        2.0
    );
    assert_eq!(
        value(&during, "tickgate_subscriptions") - value(&before, "tickgate_subscriptions"),
        600.0
    );
    // No feed has published these symbols yet: they are clients' interest,
    // not symbols of the store.
    assert_eq!(value(&during, "tickgate_interest_symbols"), 300.0);
    assert_eq!(value(&during, "tickgate_symbols"), 0.0);
    for reason in [
        "invalid",
        "not_entitled",
        "over_limit",
        "interest_full",
        "symbol_budget",
    ] {
        let key = format!(r#"tickgate_symbols_refused_total{{reason="{reason}"}}"#);
        assert_eq!(before.get(&key), Some(&0.0), "{key} exported at 0");
    }
    assert_eq!(
        value(
            &during,
            r#"tickgate_connections_opened_total{transport="ws"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &during,
            r#"tickgate_client_errors_total{code="bad_request"}"#
        ),
        1.0
    );

    // Hot feed while `slow` reads nothing: updates flow to `fast`, ticks
    // conflate for `slow`, and `slow` shows up as a slow consumer.
    let mut bad = quote_tick("M0", 1.0);
    bad.bid = Some(-1.0);
    inject(&gateway, vec![bad]).await;
    // Keeps the feed hot until every counter has moved, scraping now and
    // then: on a loaded machine that takes longer, never fails.
    let moving = [
        ("tickgate_updates_sent_total", "quotes delivered"),
        ("tickgate_frames_sent_total", "frames written"),
        ("tickgate_bytes_sent_total", "bytes written"),
        ("tickgate_updates_conflated_total", "conflated ticks"),
        (
            r#"tickgate_ticks_received_total{feed="test"}"#,
            "ticks received",
        ),
        (
            r#"tickgate_ticks_rejected_total{feed="test",reason="bad_price"}"#,
            "rejected ticks",
        ),
        (
            "tickgate_tick_to_send_seconds_count",
            "tick-to-send samples",
        ),
        (
            r#"tickgate_feed_lag_seconds_count{feed="test"}"#,
            "feed lag samples",
        ),
        ("tickgate_write_queue_bytes_count", "write queue samples"),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last_scrape = tokio::time::Instant::now();
    let mut price = 1.0;
    let mut saw_slow = false;
    let mut still: Vec<String> = moving.iter().map(|(k, w)| format!("{w} ({k})")).collect();
    while !(saw_slow && still.is_empty()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "after 60 s of traffic: slow consumer counted: {saw_slow}; did not move: {still:?}"
        );
        price += 0.01;
        inject(
            &gateway,
            symbols.iter().map(|s| quote_tick(s, price)).collect(),
        )
        .await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(
            Duration::from_millis(1),
            futures_util::StreamExt::next(&mut fast.ws),
        )
        .await
        {}
        if last_scrape.elapsed() >= Duration::from_millis(100) {
            let (now, _) = scrape(&gateway).await;
            last_scrape = tokio::time::Instant::now();
            saw_slow |= value(&now, "tickgate_slow_consumers") >= 1.0;
            still = moving
                .iter()
                .filter(|(key, _)| value(&now, key) <= value(&before, key))
                .map(|(key, what)| format!("{what} ({key}) did not move"))
                .collect();
        }
        // Paces the feed (a tick batch every few ms), not a wait for an event.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let (after, _) = scrape(&gateway).await;
    // The feed published them: store symbols now, and nobody waits any more.
    assert!(value(&after, "tickgate_symbols") >= 300.0);
    assert_eq!(value(&after, "tickgate_interest_symbols"), 0.0);
    assert_eq!(
        value(&after, "tickgate_subscriptions") - value(&before, "tickgate_subscriptions"),
        600.0,
        "being published changes no client's subscription count"
    );

    drop(slow);
    wait_until(
        "the closed connection is no longer counted",
        WAIT,
        || async {
            let (now, _) = scrape(&gateway).await;
            value(&now, r#"tickgate_connections{transport="ws"}"#) == 1.0
        },
    )
    .await;
    // One scrape renders counters and gauges one after the other, so it can
    // catch the close half-way; the next one sees all of it.
    let (after_close, _) = scrape(&gateway).await;
    assert!(
        after_close
            .keys()
            .any(|k| k.starts_with("tickgate_connections_closed_total{reason="))
    );

    let (_, types) = scrape(&gateway).await;
    let expected_types = [
        ("tickgate_connections", "gauge"),
        ("tickgate_connections_opened_total", "counter"),
        ("tickgate_connections_closed_total", "counter"),
        ("tickgate_subscriptions", "gauge"),
        ("tickgate_symbols", "gauge"),
        ("tickgate_interest_symbols", "gauge"),
        ("tickgate_symbols_refused_total", "counter"),
        ("tickgate_ticks_received_total", "counter"),
        ("tickgate_ticks_rejected_total", "counter"),
        ("tickgate_updates_sent_total", "counter"),
        ("tickgate_frames_sent_total", "counter"),
        ("tickgate_bytes_sent_total", "counter"),
        ("tickgate_updates_conflated_total", "counter"),
        ("tickgate_client_errors_total", "counter"),
        ("tickgate_tick_to_send_seconds", "histogram"),
        ("tickgate_feed_lag_seconds", "histogram"),
        ("tickgate_slow_consumers", "gauge"),
        ("tickgate_write_queue_bytes", "histogram"),
        ("tickgate_build_info", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_open_fds", "gauge"),
    ];
    for (name, kind) in expected_types {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    assert!(value(&after, "process_resident_memory_bytes") > 1e6);
    assert!(after.keys().any(|k| k.starts_with("tickgate_build_info{")));
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn histogram_samples_are_folded_into_buckets_without_a_scrape() {
    // The recorder keeps each histogram sample until it is folded into the
    // buckets; the gateway does that every second, scraped or not. Kept,
    // these 4 M samples grew RSS by 66 MB; folded, memory stays near one
    // chunk's. The clock is paused, so each sleep below lets exactly 1.5 s
    // of gateway time pass: one upkeep tick, however busy the machine.
    tokio::time::pause();
    let gateway = gateway_without_feeds(test_config()).await;
    let record = |n: u32| {
        let latency = tickgate::telemetry::delivery_handles().latency;
        for i in 0..n {
            latency.record(f64::from(i % 1000) / 1e6);
        }
    };
    record(1_000_000);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = rss_bytes();
    for _ in 0..4 {
        record(1_000_000);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let growth = rss_bytes().saturating_sub(before);
    tokio::time::resume();
    assert!(
        growth < 16 * 1024 * 1024,
        "RSS grew {growth} bytes over 4 M samples with no scrape"
    );
    // The samples are all there, in the buckets.
    let (series, _) = scrape(&gateway).await;
    let count = value(&series, "tickgate_tick_to_send_seconds_count");
    assert!(count >= 5_000_000.0, "count {count}");
    gateway.shutdown(WAIT).await;
}
