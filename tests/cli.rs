//! The `tickgate` binary as a user runs it: flags, config checking, the
//! default simulator feed, and SIGTERM.

// Waiting for a child process or a port from plain (not async) helpers.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::Write;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Client, WAIT, quotes, spawn_binary};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const BIN: &str = env!("CARGO_BIN_EXE_tickgate");

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn help_explains_every_option() {
    let output = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--config",
        "--listen",
        "--admin-listen",
        "--check-config",
        "--sim-rate",
        "--sim-seed",
        "--log-format",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn check_config_accepts_the_example_and_names_every_bad_key() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/tickgate.example.toml");
    let ok = Command::new(BIN)
        .args(["--config", example, "--check-config"])
        .output()
        .expect("runs");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = std::env::temp_dir().join(format!("tickgate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cases = [
        (
            "unknown.toml",
            "[server]\nlisen = \"127.0.0.1:1\"\n",
            "lisen",
        ),
        (
            "address.toml",
            "[server]\nlisten = \"localhost\"\n",
            "listen",
        ),
        (
            "type.toml",
            "[limits]\nmax_connections = \"lots\"\n",
            "max_connections",
        ),
        (
            "values.toml",
            "[limits]\nmax_connections = 0\n[simulator]\nticks_per_second = -1.0\n",
            "limits.max_connections",
        ),
        (
            "garbage.toml",
            "\u{0}\u{1}not toml at all [[[",
            "garbage.toml",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .expect("write");
        let output = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .arg("--check-config")
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
    let both = Command::new(BIN)
        .arg("--config")
        .arg(dir.join("values.toml"))
        .arg("--check-config")
        .output()
        .expect("runs");
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("simulator.ticks_per_second"),
        "all problems at once"
    );
    let missing = Command::new(BIN)
        .args(["--config", "/nonexistent.toml", "--check-config"])
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(64));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_port_in_use_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let output = Command::new(BIN)
        .args(["--listen", &addr, "--admin-listen", "127.0.0.1:0"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(&addr) && stderr.contains("client"),
        "{stderr}"
    );
}

#[tokio::test]
async fn default_run_streams_the_simulator_and_sigterm_closes_clients_with_1001() {
    let (mut child, client_addr, admin_addr) = spawn_binary(&[]);
    // Listening starts at once; data follows. /readyz says when it flows.
    let deadline = Instant::now() + WAIT;
    while common::http_get(admin_addr, "/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = Client::connect(client_addr).await;
    client
        .send(r#"{"op":"subscribe","symbols":["AAPL","MSFT","NVDA"],"id":1}"#)
        .await;
    let ack = client.next_json().await;
    assert_eq!(ack["type"], "subscribed");
    let snapshot = client.next_json().await;
    assert_eq!(snapshot["type"], "snapshot");
    let mut symbols: Vec<String> = quotes(&snapshot).into_iter().map(|(s, _)| s).collect();
    symbols.sort();
    assert_eq!(symbols, ["AAPL", "MSFT", "NVDA"]);
    for quote in snapshot["quotes"].as_array().expect("quotes") {
        let (bid, ask) = (
            quote["bid"].as_f64().expect("bid"),
            quote["ask"].as_f64().expect("ask"),
        );
        assert!(bid > 1.0 && bid < ask, "{quote}");
    }
    let update = client.next_of_type("update").await;
    assert!(!quotes(&update).is_empty());

    sigterm(&child.0);
    let close = client.expect_close().await.expect("close frame");
    assert_eq!(close.code, CloseCode::Away);
    let status = wait_exit(&mut child.0, WAIT);
    assert!(status.success(), "{status:?}");
}
