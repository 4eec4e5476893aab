//! Graceful drain of the real binary: SIGTERM with 500 connected clients.

// Helper tasks belong to the test and end with it; the thread sleep waits
// for a child process from a plain (not async) helper.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Client, http_get};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const CLIENTS: usize = 500;
const WINDOW_MS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flips_readiness_then_closes_clients_with_1001_spread_over_the_window() {
    let dir = std::env::temp_dir().join(format!("tickgate-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("drain.toml");
    std::fs::File::create(&config)
        .and_then(|mut f| {
            write!(
                f,
                "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[shutdown]\ndrain_window_ms = {WINDOW_MS}\ngrace_period_ms = 3000\n"
            )
        })
        .expect("write config");
    let config = config.to_string_lossy().into_owned();
    let (mut child, client_addr, admin_addr) = common::spawn_binary(&["--config", &config]);
    let child = &mut child.0;
    common::wait_until("ready", common::WAIT, || async {
        http_get(admin_addr, "/readyz").await.0 == 200
    })
    .await;

    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut client = Client::connect(client_addr).await;
        client
            .send(r#"{"op":"subscribe","symbols":["AAPL"]}"#)
            .await;
        clients.push(client);
    }
    for client in &mut clients {
        client.next_of_type("snapshot").await;
    }

    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let watchers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let close = client.expect_close().await;
                (close.map(|f| f.code), signalled.elapsed())
            })
        })
        .collect();
    // Readiness flips as soon as the signal is handled (before the first
    // close), while most clients are still connected.
    let mut body = String::new();
    common::wait_until("unready after SIGTERM", common::WAIT, async || {
        let (status, text) = http_get(admin_addr, "/readyz").await;
        body = text;
        status == 503
    })
    .await;
    assert!(body.contains("draining"), "{body}");
    let closed = watchers.iter().filter(|w| w.is_finished()).count();
    assert!(
        closed < CLIENTS / 2,
        "{closed} of {CLIENTS} clients already closed when readiness flipped"
    );
    common::wait_until("the client listener refuses", common::WAIT, || async {
        tokio::net::TcpStream::connect(client_addr).await.is_err()
    })
    .await;

    let mut close_times = Vec::with_capacity(CLIENTS);
    for watcher in watchers {
        let (code, at) = watcher.await.expect("watcher");
        assert_eq!(
            code,
            Some(CloseCode::Away),
            "every client gets 1001 and nothing else"
        );
        close_times.push(at);
    }
    close_times.sort();
    let first_second = close_times
        .iter()
        .filter(|t| **t < Duration::from_secs(1))
        .count();
    let window = Duration::from_millis(WINDOW_MS);
    assert!(
        first_second < CLIENTS / 2,
        "{first_second} of {CLIENTS} closed in the first second of a {WINDOW_MS} ms window"
    );
    let last = *close_times.last().expect("closes");
    assert!(last > window / 2, "closes ended too early ({last:?})");
    assert!(
        last < window + Duration::from_secs(2),
        "closes ran past the window ({last:?})"
    );

    let mut status = None;
    common::wait_until("the gateway exits", Duration::from_secs(10), || {
        status = child.try_wait().expect("wait");
        std::future::ready(status.is_some())
    })
    .await;
    let status = status.expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < window + Duration::from_secs(5),
        "exited {:?} after SIGTERM",
        signalled.elapsed()
    );
    let _ = std::fs::remove_dir_all(dir);
}
