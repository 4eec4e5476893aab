//! Each adapter against a local server playing its upstream on 127.0.0.1,
//! serving the recorded fixtures in `feeds/testdata/`; normalized values are
//! checked field by field.

// Test peers and helper tasks belong to the test and end with it; no
// gateway shutdown waits for them.
#![allow(clippy::disallowed_methods)]

mod common;

use std::sync::Arc;

use common::*;
use futures_util::SinkExt;
use tickgate_feeds::{FeedKind, FeedState, Tick, TickKind};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

fn name(tick: &Tick) -> String {
    tick.symbol.map(|s| s.to_string()).unwrap_or_default()
}

#[tokio::test]
async fn tcp_json_lines_arrive_exactly_as_recorded() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let mut stream = accept(&listener).await;
        for line in fixture_lines("generic.jsonl") {
            stream
                .write_all(format!("{line}\n").as_bytes())
                .await
                .expect("write");
        }
        // Keep the connection open until the test is done.
        tokio::time::sleep(WAIT).await;
    });
    let mut config = quick("tcp-generic", FeedKind::Tcp);
    config.address = Some(address);
    let mut feeds = Harness::start(&[config]);
    let expected = expected_generic_ticks();
    let ticks = feeds.ticks(expected.len()).await;
    assert_eq!(ticks, expected, "every field of every tick, in order");
    assert_eq!(
        feeds.states("tcp-generic"),
        [FeedState::Connecting, FeedState::Live]
    );
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn websocket_feed_sends_its_subscribe_message_then_reads_objects_and_arrays() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept_ws(&listener).await;
        let subscribe = read_text(&mut ws).await;
        assert_eq!(subscribe, r#"{"op":"subscribe","symbols":["*"]}"#);
        for line in fixture_lines("generic.jsonl") {
            ws.send(Message::text(line)).await.expect("send");
        }
        // A binary frame carrying JSON is read too.
        let binary = br#"{"symbol":"ZZ","bid":1.25}"#.to_vec();
        ws.send(Message::binary(binary)).await.expect("send");
        tokio::time::sleep(WAIT).await;
    });
    let mut config = quick("ws-generic", FeedKind::Ws);
    config.url = Some(format!("ws://{address}/ticks"));
    config.subscribe = Some(r#"{"op":"subscribe","symbols":["*"]}"#.into());
    let mut feeds = Harness::start(&[config]);
    let expected = expected_generic_ticks();
    let ticks = feeds.ticks(expected.len() + 1).await;
    assert_eq!(ticks[..expected.len()], expected[..]);
    assert_eq!(name(&ticks[expected.len()]), "ZZ");
    server.abort();
    feeds.stop().await;
}

/// A CA, and a `localhost` server certificate it signed, as PEM.
fn test_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");
    (ca_cert.pem(), leaf.pem(), leaf_key.serialize_pem())
}

#[tokio::test]
async fn wss_feed_trusts_an_extra_ca_file() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (ca_pem, cert_pem, key_pem) = test_ca();
    let dir = std::env::temp_dir().join(format!("tickgate-feeds-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write ca");

    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("cert pem");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key pem");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));

    let (listener, address) = listener().await;
    let port = address.rsplit_once(':').expect("port").1.to_string();
    let server = tokio::spawn(async move {
        let tcp = accept(&listener).await;
        let tls = acceptor.accept(tcp).await.expect("tls handshake");
        let mut ws = tokio_tungstenite::accept_async(tls)
            .await
            .expect("ws handshake");
        ws.send(Message::text(
            r#"{"symbol":"SECURE","bid":10.5,"ask":10.75}"#,
        ))
        .await
        .expect("send");
        tokio::time::sleep(WAIT).await;
    });
    let mut config = quick("wss-generic", FeedKind::Ws);
    config.url = Some(format!("wss://localhost:{port}/"));
    config.ca_file = Some(ca_file);
    let mut feeds = Harness::start(&[config]);
    let tick = feeds.ticks(1).await[0];
    assert_eq!(
        (name(&tick), tick.bid, tick.ask),
        ("SECURE".into(), Some(10.5), Some(10.75))
    );
    server.abort();
    feeds.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn wss_feed_refuses_a_server_it_does_not_trust() {
    let (_, cert_pem, key_pem) = test_ca();
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("cert pem");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key pem");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let (listener, address) = listener().await;
    let port = address.rsplit_once(':').expect("port").1.to_string();
    let server = tokio::spawn(async move {
        loop {
            let tcp = accept(&listener).await;
            let _ = acceptor.accept(tcp).await;
        }
    });
    let mut config = quick("wss-untrusted", FeedKind::Ws);
    config.url = Some(format!("wss://localhost:{port}/"));
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.until_state("wss-untrusted", FeedState::Down).await;
    assert!(ticks.is_empty());
    server.abort();
    feeds.stop().await;
}

/// Plays a venue fixture after checking the handshake the adapter sent.
async fn venue_server(
    fixture_name: &'static str,
    expect_handshake: Vec<&'static str>,
) -> (String, tokio::task::JoinHandle<()>) {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept_ws(&listener).await;
        for expected in expect_handshake {
            assert_eq!(read_text(&mut ws).await, expected);
        }
        for line in fixture_lines(fixture_name) {
            ws.send(Message::text(line)).await.expect("send");
        }
        tokio::time::sleep(WAIT).await;
    });
    (format!("ws://{address}/"), server)
}

#[tokio::test]
async fn polygon_quotes_and_trades_normalize_with_sizes_in_shares() {
    let (url, server) = venue_server(
        "polygon.jsonl",
        vec![
            r#"{"action":"auth","params":"test-key"}"#,
            r#"{"action":"subscribe","params":"Q.NVDA,T.NVDA,Q.BRK.B,T.BRK.B"}"#,
        ],
    )
    .await;
    let mut config = quick("polygon", FeedKind::Polygon);
    config.url = Some(url);
    config.symbols = vec!["NVDA".into(), "BRK.B".into()];
    config.credentials = Some(tickgate_feeds::venue::Credentials {
        key: Some("test-key".into()),
        ..Default::default()
    });
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(3).await;
    let (q, t, b) = (ticks[0], ticks[1], ticks[2]);
    assert_eq!((name(&q), q.kind), ("NVDA".into(), TickKind::Quote));
    assert_eq!((q.bid, q.ask), (Some(138.81), Some(138.84)));
    assert_eq!((q.bid_size, q.ask_size), (Some(500.0), Some(300.0)));
    assert_eq!(q.ts, Some(1_764_000_000_123_000));
    assert_eq!((name(&t), t.kind), ("NVDA".into(), TickKind::Trade));
    assert_eq!(
        (t.last, t.last_size, t.ts),
        (Some(138.83), Some(75.0), Some(1_764_000_000_456_000))
    );
    assert_eq!(
        (name(&b), b.bid_size, b.ask_size),
        ("BRK.B".into(), Some(40.0), Some(80.0))
    );
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn alpaca_quotes_and_trades_normalize_and_slow_client_is_counted() {
    let (url, server) = venue_server(
        "alpaca.jsonl",
        vec![
            r#"{"action":"auth","key":"k","secret":"s"}"#,
            r#"{"action":"subscribe","quotes":["TSLA","SPY"],"statuses":["TSLA","SPY"],"trades":["TSLA","SPY"]}"#,
        ],
    )
    .await;
    let mut config = quick("alpaca", FeedKind::Alpaca);
    config.url = Some(url);
    config.symbols = vec!["TSLA".into(), "SPY".into()];
    config.credentials = Some(tickgate_feeds::venue::Credentials {
        key: Some("k".into()),
        secret: Some("s".into()),
        ..Default::default()
    });
    common::recorder();
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(3).await;
    let (q, t, spy) = (ticks[0], ticks[1], ticks[2]);
    assert_eq!(
        (name(&q), q.kind, q.bid, q.ask),
        ("TSLA".into(), TickKind::Quote, Some(248.41), Some(248.47))
    );
    assert_eq!(
        (q.bid_size, q.ask_size, q.ts),
        (Some(200.0), Some(100.0), Some(1_763_994_600_123_000))
    );
    assert_eq!(
        (t.kind, t.last, t.last_size),
        (TickKind::Trade, Some(248.45), Some(12.0))
    );
    assert_eq!(
        t.ts,
        Some(1_763_994_600_987_654),
        "nanoseconds truncate to µs"
    );
    assert_eq!(
        (name(&spy), spy.ts),
        ("SPY".into(), Some(1_763_994_601_000_001))
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter("tickgate_feed_upstream_errors_total", &[("feed", "alpaca")]) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "407 counted");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn coinbase_tickers_normalize_repeats_pass_and_gaps_are_counted() {
    let (url, server) = venue_server(
        "coinbase.jsonl",
        vec![r#"{"channels":["ticker","heartbeat"],"product_ids":["BTC-USD","SOL-USD"],"type":"subscribe"}"#],
    )
    .await;
    let mut config = quick("coinbase", FeedKind::Coinbase);
    config.url = Some(url);
    config.symbols = vec!["BTC-USD".into(), "SOL-USD".into()];
    common::recorder();
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(4).await;
    let t = ticks[0];
    assert_eq!((name(&t), t.kind), ("BTC-USD".into(), TickKind::Trade));
    assert_eq!((t.last, t.last_size), (Some(97013.42), Some(0.0021)));
    assert_eq!(
        (t.bid, t.bid_size, t.ask, t.ask_size),
        (Some(97013.41), Some(0.18), Some(97013.42), Some(0.77))
    );
    assert_eq!(
        (t.open, t.high, t.low),
        (Some(95210.01), Some(97500.0), Some(94800.5))
    );
    assert_eq!(
        (t.volume, t.ts),
        (Some(8231.44150332), Some(1_763_994_600_250_123))
    );
    assert_eq!(
        ticks[1], ticks[2],
        "a repeated sequence is passed, not a gap"
    );
    assert_eq!(
        (name(&ticks[3]), ticks[3].last),
        ("SOL-USD".into(), Some(142.11))
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter("tickgate_feed_gaps_total", &[("feed", "coinbase")]) != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "one gap (trades 700003..700005 missed)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn binance_raw_and_combined_streams_normalize_to_base_quote_names() {
    let (url, server) = venue_server(
        "binance.jsonl",
        vec![r#"{"id":1,"method":"SUBSCRIBE","params":["btcusdt@bookTicker","btcusdt@trade","ethbtc@bookTicker","ethbtc@trade"]}"#],
    )
    .await;
    let mut config = quick("binance", FeedKind::Binance);
    config.url = Some(url);
    config.symbols = vec!["BTC-USDT".into(), "ethbtc".into()];
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(4).await;
    let (book, eth_book, trade, eth_trade) = (ticks[0], ticks[1], ticks[2], ticks[3]);
    assert_eq!(
        (name(&book), book.kind),
        ("BTC-USDT".into(), TickKind::Quote)
    );
    assert_eq!(
        (book.bid, book.bid_size, book.ask, book.ask_size),
        (Some(97010.01), Some(1.205), Some(97010.02), Some(0.31))
    );
    assert_eq!(
        book.ts, None,
        "bookTicker carries no time: the gateway stamps it"
    );
    assert_eq!(
        (name(&eth_book), eth_book.bid),
        ("ETH-BTC".into(), Some(0.03215))
    );
    assert_eq!(
        (name(&trade), trade.kind, trade.last, trade.last_size),
        (
            "BTC-USDT".into(),
            TickKind::Trade,
            Some(97010.02),
            Some(0.004)
        )
    );
    assert_eq!(trade.ts, Some(1_764_000_000_500_000));
    assert_eq!(
        (name(&eth_trade), eth_trade.last, eth_trade.ts),
        ("ETH-BTC".into(), Some(0.03216), Some(1_764_000_000_700_000))
    );
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn filter_and_prefix_shape_the_symbols_a_feed_hands_on() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let mut stream = accept(&listener).await;
        for line in fixture_lines("generic.jsonl") {
            stream
                .write_all(format!("{line}\n").as_bytes())
                .await
                .expect("write");
        }
        tokio::time::sleep(WAIT).await;
    });
    let mut config = quick("crypto-only", FeedKind::Tcp);
    config.address = Some(address);
    config.filter = vec!["BTC-*".into(), "ETH-US?".into()];
    config.prefix = Some("X:".into());
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(4).await;
    let names: Vec<String> = ticks.iter().map(name).collect();
    assert_eq!(names, ["X:BTC-USD", "X:ETH-USD", "X:BTC-USD", "X:ETH-USD"]);
    server.abort();
    feeds.stop().await;
}

#[tokio::test]
async fn simulator_kind_runs_the_embedded_simulator_with_a_prefix() {
    let mut config = quick("sim", FeedKind::Sim);
    config.rate = Some(200.0);
    config.universe = Some(5);
    config.prefix = Some("SIM.".into());
    let mut feeds = Harness::start(&[config]);
    let ticks = feeds.ticks(5).await;
    assert!(
        ticks.iter().all(|t| name(t).starts_with("SIM.")),
        "{ticks:?}"
    );
    assert_eq!(feeds.states("sim").first(), Some(&FeedState::Live));
    feeds.stop().await;
}
