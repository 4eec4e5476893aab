//! Feeds wired into the gateway: a generic JSON-lines upstream on a local
//! TCP port, staleness and recovery seen by a real WebSocket client, and
//! readiness waiting for the required feed at start-up.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tickgate::config::Config;
use tickgate::{FeedSetup, Gateway};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn line(symbol: &str, bid: f64) -> String {
    format!(
        "{}\n",
        json!({"symbol": symbol, "bid": bid, "ask": bid + 0.02, "ts": tickgate_feeds::now_micros()})
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_feed_streams_goes_stale_and_recovers_before_a_clients_eyes() {
    let upstream = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let address = upstream.local_addr().expect("addr");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[feeds]]
name = "lines"
kind = "tcp"
address = "{address}"
staleness_ms = 400
backoff_min_ms = 50
backoff_max_ms = 200
required = true
"#
    );
    let config = Config::from_toml(&text, "test").expect("valid config");
    let gateway = Gateway::start(config, FeedSetup::Configured)
        .await
        .expect("starts");
    let admin = gateway.admin_addr();

    let (mut socket, _) = tokio::time::timeout(WAIT, upstream.accept())
        .await
        .expect("gateway connects out")
        .expect("accept");
    let (status, body) = http_get(admin, "/readyz").await;
    assert_eq!(
        status, 503,
        "not ready before the required feed delivers: {body}"
    );

    socket
        .write_all(line("AAPL", 100.0).as_bytes())
        .await
        .expect("write");
    wait_until("ready once the feed delivers", WAIT, || async {
        http_get(admin, "/readyz").await.0 == 200
    })
    .await;

    let mut client = Client::connect(gateway.client_addr()).await;
    client
        .send(r#"{"op":"subscribe","symbols":["AAPL"],"id":1}"#)
        .await;
    client.next_of_type("subscribed").await;
    let snapshot = client.next_json().await;
    assert_eq!(snapshot["quotes"][0]["bid"], 100.0);

    // Keep the feed alive for a moment: updates flow.
    for i in 1..=3 {
        socket
            .write_all(line("AAPL", 100.0 + f64::from(i)).as_bytes())
            .await
            .expect("write");
        // Paces the lines so they arrive as separate ticks.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let update = client.next_of_type("update").await;
    assert!(update["quotes"][0]["bid"].as_f64().expect("bid") > 100.0);

    // Silence: the feed goes stale and the client is told which symbols.
    let stale = client.next_of_type("status").await;
    assert_eq!(
        stale,
        json!({"type":"status","feed":"lines","state":"stale","symbols":["AAPL"]})
    );
    assert_eq!(
        http_get(admin, "/readyz").await.0,
        200,
        "once ready, a stale required feed is told to clients, not to /readyz"
    );
    let (_, metrics) = http_get(admin, "/metrics").await;
    assert!(
        metrics.contains(r#"tickgate_feed_state{feed="lines",state="stale"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"tickgate_feed_state{feed="lines",state="live"} 0"#));
    // A client subscribing now learns the state at once.
    let mut late = Client::connect(gateway.client_addr()).await;
    late.send(r#"{"op":"subscribe","symbols":["AAPL"]}"#).await;
    late.next_of_type("snapshot").await;
    assert_eq!(late.next_json().await["state"], "stale");

    // Data again: live, and the update follows.
    socket
        .write_all(line("AAPL", 120.0).as_bytes())
        .await
        .expect("write");
    let live = client.next_of_type("status").await;
    assert_eq!(live["state"], "live");
    let update = client.next_of_type("update").await;
    assert_eq!(update["quotes"][0]["bid"], 120.0);
    let seq_before_drop = update["quotes"][0]["seq"].as_u64().expect("seq");

    // The upstream drops: the feed reconnects by itself and data resumes
    // with seq still increasing.
    drop(socket);
    let (mut socket, _) = tokio::time::timeout(WAIT, upstream.accept())
        .await
        .expect("reconnects")
        .expect("accept");
    socket
        .write_all(line("AAPL", 130.0).as_bytes())
        .await
        .expect("write");
    loop {
        let frame = client.next_json().await;
        if frame["type"] == "update" {
            assert_eq!(frame["quotes"][0]["bid"], 130.0);
            assert!(frame["quotes"][0]["seq"].as_u64().expect("seq") > seq_before_drop);
            break;
        }
    }
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn bad_feed_lines_are_counted_and_skipped_while_good_ones_flow() {
    let upstream = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let mut config = test_config();
    let mut feed = tickgate_feeds::FeedConfig::new("lines", tickgate_feeds::FeedKind::Tcp);
    feed.address = Some(upstream.local_addr().expect("addr").to_string());
    config.feeds = vec![feed];
    let gateway = Gateway::start(config, FeedSetup::Configured)
        .await
        .expect("starts");
    let (mut socket, _) = tokio::time::timeout(WAIT, upstream.accept())
        .await
        .expect("connects")
        .expect("accept");
    let mut client = Client::connect(gateway.client_addr()).await;
    client
        .send(r#"{"op":"subscribe","symbols":["MSFT"]}"#)
        .await;
    client.next_of_type("snapshot").await;
    let garbage = [
        "{not json\n".to_owned(),
        "[1,2,3]\n".to_owned(),
        "{\"bid\":1.0}\n".to_owned(),
        "{\"symbol\":\"MSFT\",\"bid\":\"cheap\"}\n".to_owned(),
        "{\"symbol\":\"MSFT\",\"bid\":-5}\n".to_owned(),
        "{\"symbol\":\"MSFT\",\"bid\":1,\"ts\":5}\n".to_owned(),
        format!("{}\n", "x".repeat(2 * 1024 * 1024)),
        "\u{0}\u{1}\u{2}\u{ff}\n".to_owned(),
    ];
    for bad in &garbage {
        socket.write_all(bad.as_bytes()).await.expect("write");
    }
    socket
        .write_all(line("MSFT", 400.0).as_bytes())
        .await
        .expect("write");
    let update = client.next_of_type("update").await;
    assert_eq!(update["quotes"][0]["bid"], 400.0);
    assert_eq!(
        update["quotes"][0]["seq"], 1,
        "none of the bad lines reached the store"
    );
    let (_, metrics) = http_get(gateway.admin_addr(), "/metrics").await;
    let rejected: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("tickgate_ticks_rejected_total{feed=\"lines\""))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum();
    assert!(
        rejected >= 6.0,
        "only {rejected} rejects counted:\n{metrics}"
    );
    gateway.shutdown(WAIT).await;
}

#[test]
fn the_example_feed_config_combines_every_kind_with_failover() {
    let text = include_str!("../config/feeds.example.toml");
    let config = Config::from_toml(text, "config/feeds.example.toml").expect("valid");
    let kinds: Vec<&str> = config.feeds.iter().map(|f| f.kind.as_str()).collect();
    for kind in ["sim", "tcp", "ws", "replay", "coinbase", "binance"] {
        assert!(kinds.contains(&kind), "{kind} missing from the example");
    }
    assert!(
        config.feeds.iter().any(|f| f.backup_for.is_some()),
        "no failover in the example"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_fields_roll_over_at_the_feeds_session_boundary_for_clients() {
    let upstream = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let address = upstream.local_addr().expect("addr");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[feeds]]
name = "equities"
kind = "tcp"
address = "{address}"
session_start = "04:00"
session_tz = "America/New_York"
"#
    );
    let config = Config::from_toml(&text, "test").expect("valid config");
    let gateway = Gateway::start(config, FeedSetup::Configured)
        .await
        .expect("starts");
    let (mut socket, _) = tokio::time::timeout(WAIT, upstream.accept())
        .await
        .expect("gateway connects out")
        .expect("accept");
    // Monday 2026-03-09's trades, Tuesday's first print exactly at 04:00
    // New York (08:00Z, daylight time since Sunday), then a late Monday print.
    let trades = [
        (10.0, 100.0, 1_773_066_600_000_000_u64), // 2026-03-09T14:30:00Z
        (11.0, 50.0, 1_773_129_599_000_000),      // 2026-03-10T07:59:59Z
        (11.5, 7.0, 1_773_129_600_000_000),       // 2026-03-10T08:00:00Z
        (99.0, 5000.0, 1_773_129_000_000_000),    // 2026-03-10T07:50:00Z
    ];
    for (price, size, ts) in trades {
        let text = format!(
            "{}\n",
            json!({"symbol": "AAPL", "last": price, "last_size": size, "ts": ts})
        );
        socket.write_all(text.as_bytes()).await.expect("write");
    }
    wait_for_seq(&gateway, "AAPL", 4).await;

    let mut client = Client::connect(gateway.client_addr()).await;
    client
        .send(r#"{"op":"subscribe","symbols":["AAPL"],"id":1}"#)
        .await;
    client.next_of_type("subscribed").await;
    let snapshot = client.next_json().await;
    let quote = &snapshot["quotes"][0];
    assert_eq!(
        (
            &quote["volume"],
            &quote["open"],
            &quote["high"],
            &quote["low"]
        ),
        (&json!(7.0), &json!(11.5), &json!(11.5), &json!(11.5)),
        "Tuesday's session only: {quote}"
    );
    assert_eq!(quote["prev_close"], 11.0, "Monday's last price: {quote}");
    assert_eq!(quote["last"], 99.0, "the late print still stands as last");
    gateway.shutdown(WAIT).await;
}
