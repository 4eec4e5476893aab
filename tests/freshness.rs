//! Freshness end to end: the real gateway with TCP feeds the test controls
//! and real WebSocket clients. A reconnect is announced `down` once and
//! `live` once; failover to a live backup and fail-back are announced like
//! any other transition; a required feed gates only the first readiness.
//!
//! "Exactly once" is checked without timing luck: after the transition,
//! the feed sends a marker quote, and every frame the client received
//! before the marker is inspected.

mod common;

use common::*;
use serde_json::{Value, json};
use tickgate::config::Config;
use tickgate::{FeedSetup, Gateway};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

fn line(symbol: &str, bid: f64) -> String {
    format!(
        "{}\n",
        json!({"symbol": symbol, "bid": bid, "ask": bid + 0.02, "ts": tickgate_feeds::now_micros()})
    )
}

/// A `[[feeds]]` table for a TCP feed at `upstream`. The staleness window
/// is long so that a busy machine never turns a pause into `stale`.
fn tcp_feed(name: &str, upstream: &TcpListener, extra: &str) -> String {
    format!(
        r#"
[[feeds]]
name = "{name}"
kind = "tcp"
address = "{address}"
staleness_ms = 60000
backoff_min_ms = 50
backoff_max_ms = 200
{extra}
"#,
        address = upstream.local_addr().expect("addr")
    )
}

async fn start(feeds: &str) -> Gateway {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{feeds}
"#
    );
    let config = Config::from_toml(&text, "test").expect("valid config");
    Gateway::start(config, FeedSetup::Configured)
        .await
        .expect("starts")
}

async fn accept(upstream: &TcpListener) -> TcpStream {
    tokio::time::timeout(WAIT, upstream.accept())
        .await
        .expect("the gateway connects out")
        .expect("accept")
        .0
}

async fn send(socket: &mut TcpStream, text: &str) {
    socket.write_all(text.as_bytes()).await.expect("write");
}

/// A client subscribed to `symbol`, past its snapshot.
async fn subscriber(gateway: &Gateway, symbol: &str) -> Client {
    let mut client = Client::connect(gateway.client_addr()).await;
    client
        .send_json(json!({"op": "subscribe", "symbols": [symbol]}))
        .await;
    client.next_of_type("snapshot").await;
    client
}

/// Every `status` frame the client receives before an update carrying
/// `marker` as `symbol`'s bid.
async fn statuses_until_marker(client: &mut Client, symbol: &str, marker: f64) -> Vec<Value> {
    let mut statuses = Vec::new();
    loop {
        let frame = client.next_json().await;
        match frame["type"].as_str() {
            Some("status") => statuses.push(frame),
            Some("update") => {
                let is_marker = frame["quotes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|q| q["symbol"] == symbol && q["bid"] == marker);
                if is_marker {
                    return statuses;
                }
            }
            _ => {}
        }
    }
}

fn status(feed: &str, state: &str, symbols: &[&str]) -> Value {
    json!({"type": "status", "feed": feed, "state": state, "symbols": symbols})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_is_announced_down_once_then_live_once() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gateway = start(&tcp_feed("lines", &upstream, "")).await;
    let mut socket = accept(&upstream).await;
    send(&mut socket, &line("AAPL", 100.0)).await;
    wait_for_seq(&gateway, "AAPL", 1).await;
    let mut client = subscriber(&gateway, "AAPL").await;

    // The upstream drops: `down`, once.
    drop(socket);
    assert_eq!(
        client.next_of_type("status").await,
        status("lines", "down", &["AAPL"])
    );
    // A client joining while the feed is away learns it after its snapshot.
    let mut late = Client::connect(gateway.client_addr()).await;
    late.send(r#"{"op":"subscribe","symbols":["AAPL"]}"#).await;
    late.next_of_type("snapshot").await;
    assert_eq!(late.next_json().await, status("lines", "down", &["AAPL"]));

    // The feed reconnects (through `connecting`): still down for a client
    // joining now. Then garbage, then data.
    let mut socket = accept(&upstream).await;
    let mut joining = Client::connect(gateway.client_addr()).await;
    joining
        .send(r#"{"op":"subscribe","symbols":["AAPL"]}"#)
        .await;
    joining.next_of_type("snapshot").await;
    assert_eq!(
        joining.next_json().await,
        status("lines", "down", &["AAPL"])
    );
    send(&mut socket, "{not json\n").await;
    send(&mut socket, &line("AAPL", 101.0)).await;
    assert_eq!(
        statuses_until_marker(&mut client, "AAPL", 101.0).await,
        vec![status("lines", "live", &["AAPL"])],
        "live once when data flows again"
    );
    send(&mut socket, &line("AAPL", 102.0)).await;
    assert_eq!(
        statuses_until_marker(&mut client, "AAPL", 102.0).await,
        Vec::<Value>::new(),
        "no second live"
    );
    assert_eq!(
        statuses_until_marker(&mut late, "AAPL", 102.0).await,
        vec![status("lines", "live", &["AAPL"])],
        "the late client hears live once too"
    );
    assert_eq!(
        statuses_until_marker(&mut joining, "AAPL", 102.0).await,
        vec![status("lines", "live", &["AAPL"])],
        "so does the one that joined while the feed was connecting"
    );
    let (_, metrics) = http_get(gateway.admin_addr(), "/metrics").await;
    assert!(
        metrics.contains(r#"tickgate_status_messages_total{state="live"} 3"#),
        "{metrics}"
    );
    gateway.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_live_backup_says_live_and_fail_back_says_nothing() {
    let primary = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backup = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let feeds = tcp_feed("main", &primary, "required = true")
        + &tcp_feed("spare", &backup, r#"backup_for = "main""#);
    let gateway = start(&feeds).await;
    let admin = gateway.admin_addr();
    let mut main = accept(&primary).await;
    let mut spare = accept(&backup).await;
    send(&mut main, &line("AAPL", 100.0)).await;
    wait_for_seq(&gateway, "AAPL", 1).await;
    let mut client = subscriber(&gateway, "AAPL").await;
    // The backup is live too, its ticks held back while the primary is.
    send(&mut spare, &line("AAPL", 50.0)).await;
    wait_until("the backup is live", WAIT, || async {
        let (_, metrics) = http_get(admin, "/metrics").await;
        metrics.contains(r#"tickgate_feed_state{feed="spare",state="live"} 1"#)
    })
    .await;

    // The primary drops: its symbols are down...
    drop(main);
    assert_eq!(
        client.next_of_type("status").await,
        status("main", "down", &["AAPL"])
    );
    // ...until the backup's data takes over: live again, from the backup.
    // The move is announced right after the batch that made it, so the
    // next batch is the marker.
    send(&mut spare, &line("AAPL", 51.0)).await;
    wait_for_seq(&gateway, "AAPL", 2).await;
    send(&mut spare, &line("AAPL", 52.0)).await;
    assert_eq!(
        statuses_until_marker(&mut client, "AAPL", 52.0).await,
        vec![status("spare", "live", &["AAPL"])]
    );
    // The primary returns and takes its symbols back: they were live all
    // along, so clients hear nothing new.
    let mut main = accept(&primary).await;
    send(&mut main, &line("AAPL", 101.0)).await;
    send(&mut main, &line("AAPL", 102.0)).await;
    assert_eq!(
        statuses_until_marker(&mut client, "AAPL", 102.0).await,
        Vec::<Value>::new()
    );
    // The backup failing now concerns no client: AAPL is the primary's.
    drop(spare);
    wait_until("the backup is down", WAIT, || async {
        let (_, metrics) = http_get(admin, "/metrics").await;
        metrics.contains(r#"tickgate_feed_state{feed="spare",state="live"} 0"#)
    })
    .await;
    send(&mut main, &line("AAPL", 103.0)).await;
    assert_eq!(
        statuses_until_marker(&mut client, "AAPL", 103.0).await,
        Vec::<Value>::new()
    );
    gateway.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_feed_gates_the_first_readiness_only() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gateway = start(&tcp_feed("lines", &upstream, "required = true")).await;
    let admin = gateway.admin_addr();

    // Before the first readiness: connected without data, then dropped
    // (down) and reconnecting: not ready throughout.
    let socket = accept(&upstream).await;
    let (code, body) = http_get(admin, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    drop(socket);
    let mut socket = accept(&upstream).await;
    let (code, body) = http_get(admin, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("required feed lines is"), "{body}");

    send(&mut socket, &line("AAPL", 100.0)).await;
    wait_until("ready once the required feed delivers", WAIT, || async {
        http_get(admin, "/readyz").await.0 == 200
    })
    .await;
    let mut client = subscriber(&gateway, "AAPL").await;

    // After it: the feed going down is told to clients, and the replica
    // stays in its Service.
    drop(socket);
    assert_eq!(
        client.next_of_type("status").await,
        status("lines", "down", &["AAPL"])
    );
    let (code, body) = http_get(admin, "/readyz").await;
    assert_eq!(code, 200, "a shared upstream failing later: {body}");
    let (_, metrics) = http_get(admin, "/metrics").await;
    assert!(
        metrics.contains(r#"tickgate_feed_up{feed="lines"} 0"#),
        "{metrics}"
    );
    gateway.shutdown(WAIT).await;
}
