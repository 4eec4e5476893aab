//! `tickgate watch` against a running gateway: JSON lines for tools, clear
//! errors for an unreachable URL and refused symbols.

// Test peers and helper tasks belong to the test and end with it; no
// gateway shutdown waits for them.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::Command;

use tokio_tungstenite::tungstenite::Message;

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

/// `--binary`: watch asks for the MessagePack encoding and prints the same
/// quotes, values exact (a price with two decimals, one with none short).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_binary_prints_the_same_quotes_as_json() {
    let gateway = gateway_without_feeds(test_config()).await;
    inject(
        &gateway,
        vec![quote_tick("AAPL", 231.38), quote_tick("MSFT", 1.0 / 3.0)],
    )
    .await;
    wait_for_seq(&gateway, "MSFT", 1).await;
    let url = format!("ws://{}/ws", gateway.client_addr());
    let run = |binary: bool| {
        let mut args: Vec<String> = ["--url", &url, "--json", "--duration", "1"]
            .map(String::from)
            .to_vec();
        if binary {
            args.push("--binary".into());
        }
        args.extend(["aapl".into(), "MSFT".into()]);
        watch(args)
    };
    let (binary, json) = tokio::join!(run(true), run(false));
    let quotes = |output: &std::process::Output| -> Vec<serde_json::Value> {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        json_lines(&String::from_utf8_lossy(&output.stdout))
            .into_iter()
            .filter(|line| line["symbol"].is_string())
            .map(|mut quote| {
                // Per-connection freshness fields differ between the two.
                if let Some(object) = quote.as_object_mut() {
                    object.remove("received_ts");
                    object.remove("conflated");
                }
                quote
            })
            .collect()
    };
    let (binary, json) = (quotes(&binary), quotes(&json));
    assert_eq!(binary.len(), 2, "{binary:?}");
    assert_eq!(binary, json);
    assert!(
        binary
            .iter()
            .any(|q| q["symbol"] == "AAPL" && q["bid"] == 231.38)
    );
    assert!(
        binary
            .iter()
            .any(|q| q["symbol"] == "MSFT" && q["bid"] == 1.0 / 3.0)
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

// ---- a watch that outlives its gateway ------------------------------------

/// A real gateway binary on the simulator, on a chosen port (0: any), so a
/// test can stop it and start another on the same address.
struct GatewayProcess {
    child: KillOnDrop,
    client: std::net::SocketAddr,
}

impl GatewayProcess {
    /// Starts one; retries while the port of a just-stopped one is released.
    fn start(port: u16) -> Self {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let mut child = Command::new(BIN)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--admin-listen", "127.0.0.1:0", "--sim-rate", "2000"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("gateway starts");
            let stdout = child.stdout.take().expect("stdout");
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                let client = event["client"]
                    .as_str()
                    .expect("client")
                    .parse()
                    .expect("addr");
                return Self {
                    child: KillOnDrop(child),
                    client,
                };
            }
            let _ = child.wait();
            assert!(
                std::time::Instant::now() < deadline,
                "no gateway on port {port} within {WAIT:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGTERM, then waits for the process to end (it closes clients with 1001).
    fn stop(mut self) {
        self.signal("-CONT");
        self.signal("-TERM");
        let _ = self.child.0.wait();
    }
}

/// `tickgate watch` running in the background; its stdout is read on a
/// plain thread into a channel (bounded by what the test waits for).
struct Watch {
    child: KillOnDrop,
    output: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl Watch {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("watch")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("watch starts");
        let mut stdout = child.stdout.take().expect("stdout");
        let (sender, output) = std::sync::mpsc::sync_channel(1024);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = std::io::Read::read(&mut stdout, &mut buffer) {
                if sender
                    .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        Self {
            child: KillOnDrop(child),
            output,
            seen: String::new(),
        }
    }

    /// Reads until `found` returns something for the output so far (from
    /// `from`, a byte offset); panics after `limit` with what was seen.
    fn wait_for<T>(
        &mut self,
        what: &str,
        from: usize,
        limit: std::time::Duration,
        found: impl Fn(&str) -> Option<T>,
    ) -> T {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(value) = found(&self.seen[from.min(self.seen.len())..]) {
                return value;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.output.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&chunk),
                Err(_) => panic!(
                    "watch: no {what} within {limit:?}; exited: {:?}; output:\n{}",
                    self.child.0.try_wait(),
                    &self.seen[self.seen.len().saturating_sub(4000)..]
                ),
            }
        }
    }

    fn still_running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }
}

/// Complete JSON lines of `text`.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The last complete screen of a table (screens start with a clear code).
fn last_screen(text: &str) -> Option<&str> {
    let mut screens: Vec<&str> = text.split("\x1b[H\x1b[2J").collect();
    screens.pop(); // maybe still being written
    screens.pop().filter(|s| !s.is_empty())
}

/// The AGE (seconds) and STATE of `symbol` on a table screen.
fn row(screen: &str, symbol: &str) -> Option<(f64, String)> {
    let line = screen
        .lines()
        .find(|l| l.starts_with(&format!("{symbol} ")))?;
    let (cells, state) = line.rsplit_once("  ")?;
    let age = cells.split_whitespace().last()?;
    let secs = match age.strip_suffix('s')? {
        a if a.contains('m') => {
            let (m, s) = a.split_once('m')?;
            m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?
        }
        a => a.parse().ok()?,
    };
    Some((secs, state.trim().to_owned()))
}

#[test]
fn watch_keeps_running_through_a_gateway_restart_and_shows_the_new_gateway() {
    let gateway = GatewayProcess::start(0);
    let port = gateway.client.port();
    let url = format!("ws://{}/ws", gateway.client);
    // Lower-case symbols: watch upper-cases them.
    let mut watch = Watch::start(&["--url", &url, "--json", "aapl", "msft"]);
    let first_epoch = watch.wait_for("a first connection with quotes", 0, WAIT, |out| {
        let lines = json_lines(out);
        let connected = lines.iter().position(|l| l["type"] == "connected")?;
        lines[connected + 1..]
            .iter()
            .any(|l| l["symbol"] == "AAPL")
            .then_some(())?;
        lines[connected + 1..]
            .iter()
            .any(|l| l["symbol"] == "MSFT")
            .then(|| lines[connected]["epoch"].clone())
    });
    assert_eq!(
        json_lines(&watch.seen)
            .iter()
            .find(|l| l["type"] == "connected")
            .expect("connected")["symbols"],
        serde_json::json!(["AAPL", "MSFT"])
    );

    gateway.stop();
    let lost_at = watch.seen.len();
    watch.wait_for("a reconnecting line", lost_at, WAIT, |out| {
        json_lines(out)
            .into_iter()
            .find(|l| l["type"] == "reconnecting")
    });
    assert!(
        watch.still_running(),
        "watch exited when the gateway stopped"
    );

    let gateway = GatewayProcess::start(port);
    let second = watch.wait_for(
        "quotes from the restarted gateway",
        lost_at,
        3 * WAIT,
        |out| {
            let lines = json_lines(out);
            let connected = lines.iter().position(|l| l["type"] == "connected")?;
            let quotes: Vec<_> = lines[connected + 1..]
                .iter()
                .filter(|l| l["symbol"] == "AAPL")
                .cloned()
                .collect();
            (quotes.len() >= 2).then(|| (lines[connected]["epoch"].clone(), quotes))
        },
    );
    assert_ne!(second.0, first_epoch, "a restarted gateway has a new epoch");
    assert!(
        second.1.iter().all(|q| q["bid"].is_number()),
        "{:?}",
        second.1
    );
    assert!(watch.still_running());
    drop(watch);
    gateway.stop();
}

#[test]
fn a_paused_gateway_shows_growing_ages_and_stale_rows_then_live_again() {
    let gateway = GatewayProcess::start(0);
    let url = format!("ws://{}/ws", gateway.client);
    let mut watch = Watch::start(&[
        "--url",
        &url,
        "--stale-after",
        "1",
        "--sort",
        "age",
        "aapl",
        "msft",
        "nvda",
    ]);
    watch.wait_for("a live AAPL row", 0, WAIT, |out| {
        row(last_screen(out)?, "AAPL").filter(|(_, state)| state == "live")
    });

    gateway.signal("-STOP");
    let paused_at = watch.seen.len();
    let (first_age, _) = watch.wait_for("a stale AAPL row", paused_at, WAIT, |out| {
        row(last_screen(out)?, "AAPL").filter(|(age, state)| state == "STALE" && *age >= 1.0)
    });
    let later = watch.seen.len();
    let (older_age, _) = watch.wait_for("an older AAPL row", later, WAIT, |out| {
        row(last_screen(out)?, "AAPL").filter(|(age, _)| *age > first_age + 0.5)
    });
    let screen = last_screen(&watch.seen).expect("a screen").to_owned();
    assert!(
        screen.contains("SILENT for"),
        "the header says the link is silent:\n{screen}"
    );
    assert!(older_age > first_age);

    gateway.signal("-CONT");
    let resumed_at = watch.seen.len();
    watch.wait_for("AAPL live again", resumed_at, 3 * WAIT, |out| {
        row(last_screen(out)?, "AAPL").filter(|(_, state)| state == "live")
    });
    assert!(watch.still_running());
    drop(watch);
    gateway.stop();
}

#[tokio::test]
async fn a_url_without_ws_gets_a_suggestion_instead_of_a_refusal() {
    let gateway = gateway_without_feeds(test_config()).await;
    for path in ["", "/"] {
        let output = watch(vec![
            "--url".into(),
            format!("ws://{}{path}", gateway.client_addr()),
            "AAPL".into(),
        ])
        .await;
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("try ws://{}/ws", gateway.client_addr()))
                && stderr.contains("HTTP 200"),
            "{stderr}"
        );
        assert!(!stderr.contains("refused"), "{stderr}");
    }
    gateway.shutdown(WAIT).await;
}

/// A WebSocket peer that plays a gateway for two connections: the first sends
/// junk, acks with an epoch, sends AAPL seq 5, then a frame over watch's size
/// limit; the second records what the reconnecting watch asks for, then
/// stays silent until watch pings it.
#[tokio::test]
async fn a_reconnect_resumes_with_the_seqs_and_epoch_held() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = tokio::spawn(async move {
        let mut subscribes = Vec::new();
        for connection in 0..2 {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(stream)
                .await
                .expect("upgrade");
            let Some(Ok(Message::Text(text))) = futures_util::StreamExt::next(&mut ws).await else {
                panic!("no subscribe");
            };
            let request: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
            subscribes.push(request.clone());
            let id = request["id"].clone();
            if connection == 0 {
                // Hostile input first: none of it may stop the watch or its quotes.
                for junk in [
                    "not json",
                    "[1,2]",
                    "{\"type\":\"update\",\"quotes\":\"AAPL\"}",
                    "{\"type\":\"trading\",\"state\":\"weird\"}",
                    "{\"type\":\"status\",\"symbols\":7}",
                ] {
                    futures_util::SinkExt::send(&mut ws, Message::text(junk))
                        .await
                        .expect("send");
                }
                futures_util::SinkExt::send(&mut ws, Message::binary(vec![0xff; 64]))
                    .await
                    .expect("send");
            }
            for frame in [
                serde_json::json!({"type":"subscribed","id":id,"symbols":["AAPL"],"epoch":"e1"}),
                serde_json::json!({"type":"snapshot","quotes":if connection == 0 { serde_json::json!([{"symbol":"AAPL","seq":5,"bid":1.0}]) } else { serde_json::json!([]) }}),
            ] {
                futures_util::SinkExt::send(&mut ws, Message::text(frame.to_string()))
                    .await
                    .expect("send");
            }
            if connection == 0 {
                // Then a frame over watch's 16 MiB limit: the link is dropped and redialled.
                let oversized = format!(
                    "{{\"type\":\"update\",\"quotes\":[],\"pad\":\"{}\"}}",
                    "x".repeat(17 << 20)
                );
                let _ = futures_util::SinkExt::send(&mut ws, Message::text(oversized)).await;
                drop(ws);
            } else {
                // A gateway without heartbeats on a quiet market: watch asks
                // for a pong before it would give up on the silent link.
                let Some(Ok(Message::Text(text))) = futures_util::StreamExt::next(&mut ws).await
                else {
                    panic!("no ping");
                };
                let ping: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
                assert_eq!(ping["op"], "ping", "{ping}");
                let pong = serde_json::json!({"type": "pong", "id": ping["id"], "ts": 1});
                futures_util::SinkExt::send(&mut ws, Message::text(pong.to_string()))
                    .await
                    .expect("send");
                return (subscribes, ws);
            }
        }
        unreachable!("returns on the second connection")
    });
    let mut watch = Watch::start(&["--url", &format!("ws://{addr}/ws"), "--json", "aapl"]);
    let (subscribes, _ws) = tokio::time::timeout(3 * WAIT, peer)
        .await
        .expect("two connections")
        .expect("peer");
    watch.wait_for("the second connection", 0, WAIT, |out| {
        (json_lines(out)
            .iter()
            .filter(|l| l["type"] == "connected")
            .count()
            == 2)
            .then_some(())
    });
    assert_eq!(subscribes[0]["symbols"], serde_json::json!(["AAPL"]));
    assert_eq!(subscribes[0].get("resume"), None, "nothing to resume yet");
    assert_eq!(subscribes[1]["resume"], serde_json::json!({"AAPL": 5}));
    assert_eq!(subscribes[1]["epoch"], "e1");
    let lines = json_lines(&watch.seen);
    let reconnecting = lines
        .iter()
        .find(|l| l["type"] == "reconnecting")
        .expect("a reconnecting line");
    assert!(
        reconnecting["reason"]
            .as_str()
            .is_some_and(|r| r.contains("too long")),
        "{reconnecting}"
    );
    assert!(
        lines.iter().any(|l| l["symbol"] == "AAPL" && l["seq"] == 5),
        "the quote after the junk arrived"
    );
}
