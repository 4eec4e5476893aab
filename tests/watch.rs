//! `tickgate watch` against a running gateway: JSON lines for tools, clear
//! errors for an unreachable URL and refused symbols.

// Test peers and helper tasks belong to the test and end with it; no
// gateway shutdown waits for them.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::Command;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_tickgate");

async fn watch(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .arg("watch")
            .args(args)
            .output()
            .expect("runs")
    })
    .await
    .expect("joined")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_json_prints_quotes_and_names_refused_symbols() {
    let gateway = gateway_without_feeds(test_config()).await;
    inject(
        &gateway,
        vec![quote_tick("AAPL", 230.0), quote_tick("MSFT", 410.0)],
    )
    .await;
    wait_for_seq(&gateway, "MSFT", 1).await;
    let url = format!("ws://{}/ws", gateway.client_addr());
    let feeder = {
        let sender = gateway.feed_sender();
        tokio::spawn(async move {
            for i in 0..30 {
                let batch = tickgate_feeds::TickBatch {
                    feed: "test".into(),
                    ticks: vec![quote_tick("AAPL", 230.0 + f64::from(i))],
                };
                let _ = sender.send(tickgate_feeds::FeedEvent::Ticks(batch)).await;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    let output = watch(vec![
        "--url".into(),
        url,
        "--json".into(),
        "--duration".into(),
        "1.5".into(),
        "AAPL".into(),
        "MSFT".into(),
        "BAD SYM".into(),
    ])
    .await;
    feeder.abort();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let quotes: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(
        quotes
            .iter()
            .any(|q| q["symbol"] == "MSFT" && q["bid"] == 410.0),
        "{stdout}"
    );
    let aapl: Vec<u64> = quotes
        .iter()
        .filter(|q| q["symbol"] == "AAPL")
        .map(|q| q["seq"].as_u64().expect("seq"))
        .collect();
    assert!(aapl.len() >= 3, "live AAPL updates expected: {stdout}");
    assert!(
        aapl.windows(2).all(|w| w[0] < w[1]),
        "seq increases: {aapl:?}"
    );
    assert!(
        stderr.contains("invalid_symbol") && stderr.contains("BAD SYM"),
        "{stderr}"
    );
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn watch_explains_an_unreachable_gateway_and_a_refused_request() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let output = watch(vec![
        "--url".into(),
        format!("ws://{free}/ws"),
        "AAPL".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot connect") && stderr.contains(&free.to_string()),
        "{stderr}"
    );

    // An admin port is HTTP but not a WebSocket endpoint: a refused upgrade.
    let gateway = gateway_without_feeds(test_config()).await;
    let output = watch(vec![
        "--url".into(),
        format!("ws://{}/ws", gateway.admin_addr()),
        "AAPL".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains("404"),
        "{stderr}"
    );

    // Every symbol refused: nothing to watch.
    let output = watch(vec![
        "--url".into(),
        format!("ws://{}/ws", gateway.client_addr()),
        "NOT VALID".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no symbol could be subscribed"));
    gateway.shutdown(WAIT).await;
}
