//! Hostile clients against the real binary: dozens of kinds of bad input,
//! from malformed JSON to masking violations, floods, slowloris, TLS garbage
//! and forged tokens. One test per kind of abuse; in each, a well-behaved
//! client connected alongside must still receive fresh updates after every
//! attack. A last test plays every attack and checks that the gateway's
//! resident memory (read from /proc/<pid>/status) comes back near its
//! baseline.
//!
//! Each test runs its own gateway as a child process with authentication
//! required, a one-second handshake timeout, 64 KiB messages, 40
//! connections per IP and the simulator feed. Raw WebSocket frames are
//! built by hand in `hostile/support.rs`.

mod common;
#[path = "hostile/mod.rs"]
mod hostile;

use hostile::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_an_error_and_leave_the_connection_usable() {
    let mut suite = Suite::start().await;
    hostile::requests::run(&mut suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_protocol_violations_close_with_1002_and_valid_framing_is_answered() {
    let mut suite = Suite::start().await;
    hostile::protocol::run(&mut suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_close_codes_get_1002_valid_ones_are_echoed_and_every_close_ends_cleanly() {
    let mut suite = Suite::start().await;
    hostile::close::run(&mut suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frames_and_messages_close_with_1009() {
    let mut suite = Suite::start().await;
    hostile::oversize::run(&mut suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_control_frame_floods_are_rate_limited_then_closed_with_1008() {
    let mut suite = Suite::start().await;
    hostile::floods::run(&mut suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_resets_half_closed_sockets_and_churn_after_the_upgrade_are_survived() {
    let mut suite = Suite::start().await;
    hostile::transport::run(&mut suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_never_slow_the_well_behaved_client() {
    let mut suite = Suite::start().await;
    hostile::stalled::run(&mut suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_abuse_is_refused_or_timed_out() {
    let mut suite = Suite::start().await;
    hostile::handshake::run(&mut suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_ip_limit_get_429_and_closed_ones_give_places_back() {
    let mut suite = Suite::start().await;
    hostile::per_ip::run(&mut suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_unauthenticated_requests_and_unentitled_symbols_are_refused() {
    let mut suite = Suite::start().await;
    hostile::auth::run(&mut suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_subscribe_of_new_symbols_never_stops_the_others() {
    hostile::interest::largest_subscribe_of_new_symbols().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_churned_symbols_leave_the_symbol_table_to_feeds() {
    hostile::interest::refused_and_churned_symbols_take_no_slot().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_every_kind_of_attack_memory_returns_to_baseline() {
    let mut suite = Suite::start().await;
    let addr = suite.addr;
    // Warm up: a few ordinary clients come and go, so allocator pools exist.
    for _ in 0..5 {
        let mut raw = Raw::open(addr).await;
        raw.expect_reply(
            &text(r#"{"op":"subscribe","symbols":["AAPL","MSFT"]}"#),
            "snapshot",
        )
        .await;
    }
    suite.gateway.wait_for_attackers_gone().await;
    let baseline_kib = suite.gateway.rss_kib();

    hostile::requests::run(&mut suite).await;
    hostile::protocol::run(&mut suite).await;
    hostile::close::run(&mut suite).await;
    hostile::oversize::run(&mut suite).await;
    hostile::floods::run(&mut suite).await;
    hostile::transport::run(&mut suite).await;
    hostile::stalled::run(&mut suite).await;
    hostile::handshake::run(&mut suite).await;
    hostile::per_ip::run(&mut suite).await;
    hostile::auth::run(&mut suite).await;
    assert!(
        suite.attacks.len() >= 30,
        "only {} kinds of attack",
        suite.attacks.len()
    );

    // Memory: every attacker is gone, then RSS comes back down.
    suite.gateway.wait_for_attackers_gone().await;
    // Allocator noise on a shared machine, not per-attack growth.
    let limit_kib = baseline_kib + 12 * 1024;
    let mut rss = suite.gateway.rss_kib();
    wait_until(
        &format!("RSS back within 12 MiB of the baseline {baseline_kib} KiB"),
        WAIT,
        || {
            rss = suite.gateway.rss_kib();
            std::future::ready(rss <= limit_kib)
        },
    )
    .await;
    eprintln!(
        "{} attacks; gateway RSS baseline {baseline_kib} KiB, after {rss} KiB",
        suite.attacks.len()
    );
    suite.assert_watcher_fresh("the whole suite").await;
}
