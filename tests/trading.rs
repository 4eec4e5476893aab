//! Venue trading status and trade corrections/cancels end to end: the real
//! gateway binary, TCP feeds the test writes (generic and Alpaca format), a
//! recorded Alpaca session replayed, and real WebSocket clients.
//!
//! "Exactly once" and "nothing else" are checked without timing luck: after
//! the event, the feed sends a marker quote, and every frame a client
//! received before the marker is inspected (the feed's order is kept from
//! the socket to the client's frames).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use common::*;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tickgate-trading-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The gateway binary with `feeds` (TOML `[[feeds]]` tables) as its only
/// feeds; returns it with its client and admin addresses.
fn gateway(dir: &TempDir, feeds: &str) -> (KillOnDrop, SocketAddr, SocketAddr) {
    let path = dir.0.join("gateway.toml");
    std::fs::File::create(&path)
        .and_then(|mut f| write!(f, "{feeds}"))
        .expect("write config");
    spawn_binary(&["--config", &path.to_string_lossy()])
}

/// A TCP feed at `upstream` reading `format`. The staleness window is long,
/// so a busy machine never turns a pause into `stale`.
fn tcp_feed(upstream: &TcpListener, format: &str) -> String {
    format!(
        "[[feeds]]\nname = \"lines\"\nkind = \"tcp\"\naddress = \"{}\"\nformat = \"{format}\"\nstaleness_ms = 60000\n",
        upstream.local_addr().expect("addr")
    )
}

async fn accept(upstream: &TcpListener) -> TcpStream {
    tokio::time::timeout(WAIT, upstream.accept())
        .await
        .expect("the gateway connects out")
        .expect("accept")
        .0
}

async fn send(socket: &mut TcpStream, lines: &[Value]) {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    socket.write_all(text.as_bytes()).await.expect("write");
}

fn quote(symbol: &str, bid: f64) -> Value {
    json!({"symbol": symbol, "bid": bid, "ask": bid + 0.02})
}

fn trading(state: &str, symbols: &[&str]) -> Value {
    json!({"type": "trading", "state": state, "symbols": symbols})
}

/// Whether `frame` is an update or snapshot holding `symbol` with `field`
/// equal to `value`.
fn holds(frame: &Value, symbol: &str, field: &str, value: f64) -> bool {
    matches!(frame["type"].as_str(), Some("update" | "snapshot"))
        && frame["quotes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|q| q["symbol"] == symbol && q[field] == value)
}

/// Every frame up to and including the one showing `symbol`'s `field` at
/// `value`.
async fn frames_until(client: &mut Client, symbol: &str, field: &str, value: f64) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = client.next_json().await;
        let done = holds(&frame, symbol, field, value);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

fn trading_frames(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "trading")
        .cloned()
        .collect()
}

/// A client subscribed to `symbols` that has seen `symbol`'s bid at `bid`
/// (from the snapshot or an update).
async fn subscriber(addr: SocketAddr, symbols: &[&str], symbol: &str, bid: f64) -> Client {
    let mut client = Client::connect(addr).await;
    client
        .send_json(json!({"op": "subscribe", "symbols": symbols}))
        .await;
    frames_until(&mut client, symbol, "bid", bid).await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_reaches_only_its_subscribers_once_and_a_late_subscriber_after_its_snapshot() {
    let dir = TempDir::new("halt");
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (_gateway, addr, admin) = gateway(&dir, &tcp_feed(&upstream, "json"));
    let mut feed = accept(&upstream).await;
    send(&mut feed, &[quote("AAPL", 100.0), quote("MSFT", 200.0)]).await;
    let mut aapl = subscriber(addr, &["AAPL"], "AAPL", 100.0).await;
    let mut msft = subscriber(addr, &["MSFT"], "MSFT", 200.0).await;
    let mut both = subscriber(addr, &["AAPL", "MSFT"], "MSFT", 200.0).await;

    // Halted twice (the venue repeats itself): one message.
    send(
        &mut feed,
        &[
            json!({"symbol": "AAPL", "trading": "halted"}),
            json!({"symbol": "AAPL", "trading": "halted"}),
            quote("AAPL", 101.0),
            quote("MSFT", 201.0),
        ],
    )
    .await;
    let seen = frames_until(&mut aapl, "AAPL", "bid", 101.0).await;
    assert_eq!(trading_frames(&seen), [trading("halted", &["AAPL"])]);
    let seen = frames_until(&mut msft, "MSFT", "bid", 201.0).await;
    assert_eq!(trading_frames(&seen), Vec::<Value>::new(), "not its symbol");
    let seen = frames_until(&mut both, "MSFT", "bid", 201.0).await;
    assert_eq!(trading_frames(&seen), [trading("halted", &["AAPL"])]);

    // A client subscribing while it is halted hears it right after the
    // snapshot; one that subscribes to MSFT only hears nothing.
    let mut late = Client::connect(addr).await;
    late.send_json(json!({"op": "subscribe", "symbols": ["AAPL", "MSFT"]}))
        .await;
    assert_eq!(late.next_json().await["type"], "subscribed");
    let snapshot = late.next_json().await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(late.next_json().await, trading("halted", &["AAPL"]));
    let mut late_msft = Client::connect(addr).await;
    late_msft
        .send_json(json!({"op": "subscribe", "symbols": ["MSFT"]}))
        .await;
    late_msft.next_of_type("snapshot").await;

    // Resumed: `trading`, once, to each subscriber of AAPL.
    send(
        &mut feed,
        &[
            json!({"symbol": "AAPL", "trading": "trading"}),
            quote("AAPL", 102.0),
            quote("MSFT", 202.0),
        ],
    )
    .await;
    for client in [&mut aapl, &mut late] {
        let seen = frames_until(client, "AAPL", "bid", 102.0).await;
        assert_eq!(trading_frames(&seen), [trading("trading", &["AAPL"])]);
    }
    let seen = frames_until(&mut late_msft, "MSFT", "bid", 202.0).await;
    assert_eq!(trading_frames(&seen), Vec::<Value>::new());
    // A halt then a resume in one line each, then a quote: both, in order.
    send(
        &mut feed,
        &[
            json!({"symbol": "AAPL", "trading": "halted", "bid": 103.0}),
            json!({"symbol": "AAPL", "trading": "trading"}),
            quote("AAPL", 104.0),
        ],
    )
    .await;
    let seen = frames_until(&mut aapl, "AAPL", "bid", 104.0).await;
    assert_eq!(
        trading_frames(&seen),
        [trading("halted", &["AAPL"]), trading("trading", &["AAPL"])]
    );
    // A symbol halted before any quote is halted for its subscribers too.
    send(&mut feed, &[json!({"symbol": "NEW", "trading": "halted"})]).await;
    wait_until("the halt of NEW is counted", WAIT, || async {
        metric_value(
            admin,
            r#"tickgate_venue_events_total{kind="halt",outcome="applied"}"#,
        )
        .await
            >= 3.0
    })
    .await;
    let mut fresh = Client::connect(addr).await;
    fresh
        .send_json(json!({"op": "subscribe", "symbols": ["NEW"]}))
        .await;
    fresh.next_of_type("snapshot").await;
    assert_eq!(fresh.next_json().await, trading("halted", &["NEW"]));
    assert_eq!(
        metric_value(
            admin,
            r#"tickgate_venue_events_total{kind="halt",outcome="ignored"}"#
        )
        .await,
        1.0,
        "the repeated halt"
    );
}

fn alpaca_trade(symbol: &str, id: u64, price: f64, size: f64) -> Value {
    json!([{"T": "t", "S": symbol, "i": id, "x": "V", "p": price, "s": size,
            "t": "2025-03-04T15:00:01Z", "c": ["@"], "z": "C"}])
}

fn alpaca_quote(symbol: &str, bid: f64) -> Value {
    json!([{"T": "q", "S": symbol, "bp": bid, "bs": 1, "ap": bid + 0.02, "as": 1,
            "t": "2025-03-04T15:00:01Z"}])
}

/// The one update frame in `frames` holding `symbol`, as its quote.
fn only_update_of(frames: &[Value], symbol: &str) -> Value {
    let quotes: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "update")
        .flat_map(|f| f["quotes"].as_array().into_iter().flatten())
        .filter(|q| q["symbol"] == symbol)
        .collect();
    assert_eq!(quotes.len(), 1, "one update of {symbol}: {frames:?}");
    quotes[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_of_last_reverts_it_and_a_correction_replaces_it_on_the_wire() {
    let dir = TempDir::new("cancel");
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (_gateway, addr, admin) = gateway(&dir, &tcp_feed(&upstream, "alpaca"));
    let mut feed = accept(&upstream).await;
    send(
        &mut feed,
        &[
            alpaca_trade("AAPL", 1, 100.0, 10.0),
            alpaca_trade("AAPL", 2, 101.0, 20.0),
        ],
    )
    .await;
    let mut client = Client::connect(addr).await;
    client
        .send_json(json!({"op": "subscribe", "symbols": ["AAPL"]}))
        .await;
    let seen = frames_until(&mut client, "AAPL", "last", 101.0).await;
    let before = seen.last().expect("a frame").clone();
    let quote_of = |frame: &Value| {
        frame["quotes"]
            .as_array()
            .and_then(|q| q.iter().find(|q| q["symbol"] == "AAPL"))
            .cloned()
            .expect("AAPL")
    };
    let seq = quote_of(&before)["seq"].as_u64().expect("seq");
    assert_eq!(seq, 2);

    // The venue cancels trade 2, the one shown: back to trade 1.
    send(
        &mut feed,
        &[json!([{"T": "x", "S": "AAPL", "i": 2, "p": 101.0, "s": 20,
                  "a": "C", "t": "2025-03-04T15:00:02Z"}])],
    )
    .await;
    let seen = frames_until(&mut client, "AAPL", "last", 100.0).await;
    let reverted = only_update_of(&seen, "AAPL");
    assert_eq!(
        (&reverted["last"], &reverted["last_size"], &reverted["seq"]),
        (&json!(100.0), &json!(10.0), &json!(3))
    );

    // A correction of trade 1, now shown: replaced.
    send(
        &mut feed,
        &[
            json!([{"T": "c", "S": "AAPL", "oi": 1, "op": 100.0, "os": 10,
                  "ci": 5, "cp": 99.5, "cs": 15, "t": "2025-03-04T15:00:03Z"}]),
        ],
    )
    .await;
    let seen = frames_until(&mut client, "AAPL", "last", 99.5).await;
    let corrected = only_update_of(&seen, "AAPL");
    assert_eq!(
        (&corrected["last_size"], &corrected["seq"]),
        (&json!(15.0), &json!(4))
    );

    // A newer trade becomes `last`. Then a cancel of the older trade 1, of
    // an unknown trade, a correction to a negative price and a cancel
    // without a symbol change nothing visible: the next quote is the only
    // update, with `last` untouched.
    send(&mut feed, &[alpaca_trade("AAPL", 3, 102.0, 30.0)]).await;
    frames_until(&mut client, "AAPL", "last", 102.0).await;
    send(
        &mut feed,
        &[
            json!([{"T": "x", "S": "AAPL", "i": 1, "t": "2025-03-04T15:00:04Z"}]),
            json!([{"T": "x", "S": "AAPL", "i": 77, "t": "2025-03-04T15:00:04Z"}]),
            json!([{"T": "c", "S": "AAPL", "oi": 3, "cp": -3.0, "t": "2025-03-04T15:00:04Z"}]),
            json!([{"T": "x", "i": 3}]),
            alpaca_quote("AAPL", 98.0),
        ],
    )
    .await;
    let seen = frames_until(&mut client, "AAPL", "bid", 98.0).await;
    let marker = only_update_of(&seen, "AAPL");
    assert_eq!(
        (&marker["last"], &marker["last_size"], &marker["seq"]),
        (&json!(102.0), &json!(30.0), &json!(6))
    );

    // The last standing trade cancelled (1 and 2 are gone): `last` and
    // `last_size` unknown.
    send(
        &mut feed,
        &[
            json!([{"T": "x", "S": "AAPL", "i": 3, "t": "2025-03-04T15:00:05Z"}]),
            alpaca_quote("AAPL", 97.0),
        ],
    )
    .await;
    // (The revision, seq 7, and the quote, seq 8, may share one update.)
    let seen = frames_until(&mut client, "AAPL", "bid", 97.0).await;
    let cleared = quote_of(seen.last().expect("a frame"));
    assert_eq!(cleared["seq"], 8);
    assert!(cleared["last"].is_null() && cleared["last_size"].is_null());

    for (kind, outcome, count) in [
        ("cancel", "applied", 2.0),
        ("cancel", "ignored", 2.0),
        ("correction", "applied", 1.0),
        ("correction", "ignored", 1.0),
    ] {
        let series =
            format!("tickgate_venue_events_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}");
        assert_eq!(metric_value(admin, &series).await, count, "{series}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_alpaca_session_with_halts_corrections_and_cancels_replays_to_the_right_state() {
    let dir = TempDir::new("replay");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/feeds/testdata/alpaca-halts.jsonl"
    );
    let feeds = format!(
        "[[feeds]]\nname = \"recorded\"\nkind = \"replay\"\npath = \"{path}\"\nformat = \"alpaca\"\nspeed = 0\nstaleness_ms = 60000\n"
    );
    let (_gateway, addr, admin) = gateway(&dir, &feeds);
    // The replay runs as fast as it can: wait until its last event counted.
    wait_until("the recording's resumption is applied", WAIT, || async {
        metric_value(
            admin,
            r#"tickgate_venue_events_total{kind="resume",outcome="applied"}"#,
        )
        .await
            >= 1.0
    })
    .await;
    let mut client = Client::connect(addr).await;
    client
        .send_json(json!({"op": "subscribe", "symbols": ["AAPL", "MSFT"]}))
        .await;
    let snapshot = client.next_of_type("snapshot").await;
    let quote = |symbol: &str| {
        snapshot["quotes"]
            .as_array()
            .and_then(|q| q.iter().find(|q| q["symbol"] == symbol))
            .cloned()
            .unwrap_or_else(|| panic!("{symbol} in {snapshot}"))
    };
    let aapl = quote("AAPL");
    // 1003 cancelled (back to 1002), 1002 corrected, 1005 printed and
    // cancelled in one frame, then 1006: nine changes, in feed order.
    assert_eq!(
        (&aapl["last"], &aapl["last_size"], &aapl["seq"]),
        (&json!(210.6), &json!(12.0), &json!(9))
    );
    let msft = quote("MSFT");
    assert_eq!(
        (&msft["last"], &msft["last_size"]),
        (&json!(390.2), &json!(10.0))
    );
    // AAPL is still halted; MSFT resumed, so nothing is said of it.
    assert_eq!(client.next_json().await, trading("halted", &["AAPL"]));
    for (kind, outcome, count) in [
        ("halt", "applied", 2.0),
        ("resume", "applied", 1.0),
        ("cancel", "applied", 2.0),
        ("cancel", "ignored", 1.0),
        ("correction", "applied", 1.0),
    ] {
        let series =
            format!("tickgate_venue_events_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}");
        assert_eq!(metric_value(admin, &series).await, count, "{series}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_trading_input_is_refused_alone_and_quotes_keep_flowing() {
    let dir = TempDir::new("hostile");
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (_gateway, addr, admin) = gateway(&dir, &tcp_feed(&upstream, "json"));
    let mut feed = accept(&upstream).await;
    send(&mut feed, &[quote("MSFT", 1.0), quote("FLIP", 1.0)]).await;
    let mut watcher = subscriber(addr, &["MSFT"], "MSFT", 1.0).await;
    let mut flipper = subscriber(addr, &["FLIP"], "FLIP", 1.0).await;
    // A client that stops reading (past its snapshot) while the flood goes
    // on.
    let mut stalled = Client::connect_small_buffer(addr).await;
    stalled
        .send_json(json!({"op": "subscribe", "symbols": ["FLIP"]}))
        .await;
    stalled.next_of_type("snapshot").await;

    // Invalid values: each line refused alone, counted.
    send(
        &mut feed,
        &[
            json!({"symbol": "MSFT", "trading": "paused"}),
            json!({"symbol": "MSFT", "trading": 1}),
            json!({"symbol": "MSFT", "trading": null, "bid": 5.0}),
            json!({"symbol": "MSFT", "trading": ["halted"]}),
            json!({"symbol": "MSFT", "trading": "HALTED"}),
            quote("MSFT", 2.0),
        ],
    )
    .await;
    let seen = frames_until(&mut watcher, "MSFT", "bid", 2.0).await;
    assert_eq!(trading_frames(&seen), Vec::<Value>::new());
    assert!(!seen.iter().any(|f| holds(f, "MSFT", "bid", 5.0)));
    wait_until("the invalid values are counted", WAIT, || async {
        metric_value(
            admin,
            r#"tickgate_ticks_rejected_total{feed="lines",reason="wrong_type"}"#,
        )
        .await
            >= 5.0
    })
    .await;

    // A flood of toggles and a line halting 20,000 symbols at once, with
    // MSFT quotes in between.
    let mut lines = Vec::new();
    for i in 0..4_001 {
        let state = if i % 2 == 0 { "halted" } else { "trading" };
        lines.push(json!({"symbol": "FLIP", "trading": state}));
        if i % 500 == 0 {
            lines.push(quote("MSFT", 3.0 + f64::from(i)));
        }
    }
    let many: Vec<Value> = (0..20_000)
        .map(|i| json!({"symbol": format!("H{i}"), "trading": "halted"}))
        .collect();
    lines.push(Value::Array(many));
    lines.push(quote("MSFT", 9_999.0));
    lines.push(quote("FLIP", 2.0));
    send(&mut feed, &lines).await;

    let seen = frames_until(&mut watcher, "MSFT", "bid", 9_999.0).await;
    assert_eq!(trading_frames(&seen), Vec::<Value>::new());
    // The flipper hears changes in order, never the same state twice in a
    // row, and ends on the feed's last word (halted: 4,001 toggles).
    let seen = frames_until(&mut flipper, "FLIP", "bid", 2.0).await;
    let states: Vec<String> = trading_frames(&seen)
        .iter()
        .map(|f| f["state"].as_str().expect("state").to_owned())
        .collect();
    assert_eq!(states.first().map(String::as_str), Some("halted"));
    assert_eq!(states.last().map(String::as_str), Some("halted"));
    assert!(states.windows(2).all(|w| w[0] != w[1]), "{states:?}");
    // The stalled client, once it reads, gets at most two pending changes
    // per drain and also ends on halted.
    let seen = frames_until(&mut stalled, "FLIP", "bid", 2.0).await;
    let states: Vec<String> = trading_frames(&seen)
        .iter()
        .map(|f| f["state"].as_str().expect("state").to_owned())
        .collect();
    assert_eq!(states.last().map(String::as_str), Some("halted"));
    assert!(states.windows(2).all(|w| w[0] != w[1]), "{states:?}");
    // The feed connection was never dropped: the same socket still works.
    send(&mut feed, &[quote("MSFT", 10_000.0)]).await;
    frames_until(&mut watcher, "MSFT", "bid", 10_000.0).await;
    watcher.assert_usable().await;
}
