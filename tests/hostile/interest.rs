//! The cost of one request (docs/security.md, "Cost model"): the largest
//! subscribe of symbols no feed has published is handled in slices while
//! everyone else keeps receiving, and symbols clients name (accepted,
//! refused or dropped again) never use up the symbol table feeds need.
//!
//! The first test uses the suite's gateway (a child process with the
//! simulator feed and authentication); the second starts one in process
//! (tests/common), because it must publish a feed's new instruments itself.

use super::support::*;
use crate::common::{
    self, inject, latest_seq, metric_value, quote_tick, test_config, wait_for_seq,
};

/// `tickgate_interest_symbols` on the admin listener.
async fn interest_symbols(admin: SocketAddr) -> f64 {
    metric_value(admin, "tickgate_interest_symbols").await
}

/// One client subscribes to as many new symbols as one message may carry
/// (26,000 in 256 KiB, with a per-connection limit that lets them all in),
/// then stops reading. The watcher keeps receiving fresh updates and
/// `/healthz` answers; the request is answered in slices of at most 512
/// symbols, all waited for as interest, which the disconnect releases.
pub async fn largest_subscribe_of_new_symbols() {
    const MESSAGE: usize = 256 * 1024;
    const SYMBOLS: usize = 26_000;
    let gateway = Gateway::start_with(
        MESSAGE,
        "max_subscriptions_per_connection = 30000\nsymbol_burst = 30000",
    );
    let admin = gateway.admin;
    let mut suite = Suite::on(gateway).await;

    let names: Vec<String> = (0..SYMBOLS).map(|i| format!("Q{i:05}")).collect();
    let request = json!({"op":"subscribe","id":"big","symbols":names}).to_string();
    assert!(request.len() <= MESSAGE, "{} bytes", request.len());
    let mut attacker = Raw::open(suite.addr).await;
    let sent = now_micros();
    attacker.send(&text(&request)).await;

    // While the attacker reads nothing: the others are served.
    suite
        .assert_watcher_updates(20, sent, "the largest subscribe")
        .await;
    let (status, _) = http_get(admin, "/healthz").await;
    assert_eq!(status, 200);

    // The whole request is answered, a slice at a time.
    let mut subscribed = 0;
    let mut slices = 0;
    let deadline = Instant::now() + WAIT;
    while subscribed < SYMBOLS {
        assert!(
            Instant::now() < deadline,
            "only {subscribed} of {SYMBOLS} symbols subscribed"
        );
        let outcome = attacker.outcome(Duration::from_millis(200)).await;
        assert!(!outcome.ended, "{outcome:?}");
        for frame in &outcome.texts {
            let frame: Value = serde_json::from_str(frame).expect("json");
            assert_ne!(frame["type"], "error", "{frame}");
            if frame["type"] != "subscribed" {
                continue;
            }
            let symbols = frame["symbols"].as_array().expect("symbols");
            assert!(symbols.len() <= 512, "a slice of {}", symbols.len());
            assert_eq!(frame["no_data"], frame["symbols"], "no feed publishes them");
            assert_eq!(frame["id"], "big");
            subscribed += symbols.len();
            slices += 1;
        }
    }
    assert_eq!(subscribed, SYMBOLS);
    assert!(slices >= SYMBOLS / 512, "{slices} slices");
    assert_eq!(interest_symbols(admin).await, SYMBOLS as f64);

    // The disconnect releases all of it.
    drop(attacker);
    suite.gateway.wait_for_attackers_gone().await;
    common::wait_until("interest released", WAIT, || async {
        interest_symbols(admin).await == 0.0
    })
    .await;
    suite.assert_watcher_fresh("the largest subscribe").await;
}

/// A symbol table with room for 8 symbols, connections limited to 4. One
/// client keeps asking for 50 new symbols at a time (46 over its limit) and
/// dropping the 4 it got. Afterwards another client can still subscribe to
/// a new symbol, and a feed's 8 new instruments are all accepted; the one
/// the client waited for reaches it as an ordinary update.
pub async fn refused_and_churned_symbols_take_no_slot() {
    let mut config = test_config();
    config.limits.max_symbols = std::num::NonZeroUsize::new(8).expect("non-zero");
    config.limits.max_subscriptions_per_connection =
        std::num::NonZeroUsize::new(4).expect("non-zero");
    let gateway = common::gateway_without_feeds(config).await;
    let admin = gateway.admin_addr();
    let mut attacker = Client::connect(gateway.client_addr()).await;
    for round in 0..5 {
        let names: Vec<String> = (0..50).map(|i| format!("X{round}_{i}")).collect();
        attacker
            .send_json(json!({"op":"subscribe","symbols":names}))
            .await;
        let refused = attacker.next_of_type("error").await;
        assert_eq!(refused["code"], "too_many_subscriptions");
        assert_eq!(refused["symbols"].as_array().map(Vec::len), Some(46));
        let held = attacker.next_of_type("subscribed").await;
        assert_eq!(held["no_data"].as_array().map(Vec::len), Some(4));
        attacker
            .send_json(json!({"op":"unsubscribe","symbols":held["symbols"]}))
            .await;
        attacker.next_of_type("unsubscribed").await;
    }
    assert_eq!(gateway.store().symbol_count(), 0, "clients took no slot");
    assert!(
        metric_value(
            admin,
            r#"tickgate_symbols_refused_total{reason="over_limit"}"#
        )
        .await
            >= 5.0 * 46.0
    );

    let mut other = Client::connect(gateway.client_addr()).await;
    other
        .send(r#"{"op":"subscribe","id":1,"symbols":["NEWCO"]}"#)
        .await;
    let reply = other.next_json().await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    assert_eq!(reply["no_data"], json!(["NEWCO"]));
    assert_eq!(other.next_json().await["type"], "snapshot");

    let listed: Vec<String> = (1..8)
        .map(|i| format!("F{i}"))
        .chain(["NEWCO".into()])
        .collect();
    inject(
        &gateway,
        listed.iter().map(|s| quote_tick(s, 1.0)).collect(),
    )
    .await;
    for symbol in &listed {
        wait_for_seq(&gateway, symbol, 1).await;
    }
    assert!(listed.iter().all(|s| latest_seq(&gateway, s) == Some(1)));
    let update = other.next_of_type("update").await;
    assert_eq!(update["quotes"][0]["symbol"], "NEWCO");
    assert_eq!(update["quotes"][0]["seq"], 1);
    assert_eq!(interest_symbols(admin).await, 0.0);
    gateway.shutdown(WAIT).await;
}
