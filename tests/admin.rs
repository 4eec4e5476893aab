//! The admin listener's introspection and control, and optional rebalancing.

mod common;

use std::time::Duration;

use common::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn get_json(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = http_get(addr, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("JSON body")
}

#[tokio::test]
async fn connections_and_symbols_are_listed_and_one_connection_can_be_closed() {
    let gateway = gateway_without_feeds(test_config()).await;
    let admin = gateway.admin_addr();
    // Only symbols a feed has published are store symbols, listed below.
    inject(
        &gateway,
        vec![quote_tick("AAPL", 1.0), quote_tick("MSFT", 2.0)],
    )
    .await;
    wait_for_seq(&gateway, "MSFT", 1).await;
    let mut a = Client::connect(gateway.client_addr()).await;
    a.send(r#"{"op":"subscribe","symbols":["AAPL","MSFT"]}"#)
        .await;
    a.next_of_type("snapshot").await;
    let mut b = Client::connect(gateway.client_addr()).await;
    b.send(r#"{"op":"subscribe","symbols":["AAPL"]}"#).await;
    b.next_of_type("snapshot").await;

    let connections = get_json(admin, "/connections").await;
    let rows = connections.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    let mut subs: Vec<u64> = rows
        .iter()
        .map(|r| r["subscriptions"].as_u64().expect("count"))
        .collect();
    subs.sort();
    assert_eq!(subs, [1, 2]);
    for key in [
        "id",
        "age_seconds",
        "pending",
        "blocked_ms",
        "inflight_bytes",
        "updates_sent",
        "conflated",
        "slow",
    ] {
        assert!(rows[0].get(key).is_some(), "{key} missing");
    }
    let symbols = get_json(admin, "/symbols?top=1").await;
    assert_eq!(
        symbols,
        serde_json::json!([{"symbol":"AAPL","subscribers":2,"seq":1}])
    );
    // A symbol only a client has named is interest, not a store symbol.
    b.send(r#"{"op":"subscribe","symbols":["NEVER"]}"#).await;
    b.next_of_type("snapshot").await;
    let symbols = get_json(admin, "/symbols?top=10").await;
    assert_eq!(symbols.as_array().map(Vec::len), Some(2), "{symbols}");

    let id = rows
        .iter()
        .find(|r| r["subscriptions"] == 2)
        .expect("a's row")["id"]
        .as_u64()
        .expect("id");
    let close =
        format!("POST /connections/{id}/close HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(http_raw(admin, &close).await.0, 202);
    let frame = a.expect_close().await.expect("close frame");
    assert_eq!(frame.code, CloseCode::Policy);
    assert_eq!(frame.reason.as_str(), "closed by the operator");
    b.assert_usable().await;
    drop(a);
    wait_until(
        "the closed connection is no longer listed",
        WAIT,
        || async { http_raw(admin, &close).await.0 == 404 },
    )
    .await;
    assert_eq!(
        http_raw(
            admin,
            "POST /connections/x/close HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        )
        .await
        .0,
        400
    );
    assert_eq!(http_get(admin, "/connections/1/close").await.0, 405);
    assert_eq!(
        http_get(gateway.client_addr(), "/connections").await.0,
        404,
        "never on the client listener"
    );
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn only_the_exact_close_path_closes_a_connection() {
    let gateway = gateway_without_feeds(test_config()).await;
    let admin = gateway.admin_addr();
    let mut client = Client::connect(gateway.client_addr()).await;
    client.assert_usable().await;
    let rows = get_json(admin, "/connections").await;
    let id = rows[0]["id"].as_u64().expect("id");
    let post = |path: &str| format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    for (path, want) in [
        (format!("/connections/{id}/close/close"), 404),
        (format!("/connections/{id}/close/"), 404),
        (format!("/connections/{id}//close"), 404),
        (format!("/connections//{id}/close"), 404),
        (format!("/connections/+{id}/close"), 400),
        (format!("/connections/{id}x/close"), 400),
        (format!("/connections/%3{id}/close"), 400),
    ] {
        assert_eq!(http_raw(admin, &post(&path)).await.0, want, "{path}");
    }
    assert_eq!(
        http_raw(admin, &post(&format!("/connections/{id}/close")))
            .await
            .0,
        202
    );
    let frame = client.expect_close().await.expect("close frame");
    assert_eq!(frame.code, CloseCode::Policy);
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn above_its_target_an_instance_sheds_its_oldest_connections_with_1013_at_a_bounded_rate() {
    let mut config = test_config();
    config.rebalance.target_connections = 4;
    config.rebalance.tolerance_pct = 0.0;
    config.rebalance.shed_per_second = std::num::NonZeroU32::new(2).expect("positive");
    let gateway = gateway_without_feeds(config).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut client = Client::connect(gateway.client_addr()).await;
        client.assert_usable().await;
        clients.push(client);
    }
    let start = tokio::time::Instant::now();
    let mut shed = Vec::new();
    for (i, client) in clients.iter_mut().enumerate().take(4) {
        let frame = client.expect_close().await.expect("close frame");
        assert_eq!(frame.code, CloseCode::Again, "client {i}");
        shed.push(start.elapsed());
    }
    // Four to shed at two per second: it takes more than one tick.
    assert!(
        shed[3] >= Duration::from_millis(900),
        "shed too fast: {shed:?}"
    );
    // Nothing must happen here: watch for a further shed through more than
    // one rebalance tick (1 s) before checking none came.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for client in clients.iter_mut().skip(4) {
        client.assert_usable().await;
    }
    assert_eq!(
        open_connections(&gateway),
        4,
        "sheds down to the target, not below"
    );
    gateway.shutdown(WAIT).await;
}
