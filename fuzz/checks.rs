//! What each fuzz target checks, in one place: the targets under
//! `fuzz_targets/` run these functions under libFuzzer, and
//! `tests/fuzz_replay.rs` runs them over the committed seeds and any local
//! corpus as part of the ordinary test command. Included by path by both
//! (`#[path]`), so each uses only some of them.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Version};
use tickgate::auth::Grant;
use tickgate::board::FeedBoard;
use tickgate::config::Config;
use tickgate::fanout::store::SnapshotStore;
use tickgate::fanout::{Fanout, Mailbox};
use tickgate::protocol::{self, Request};
use tickgate::server::handshake;
use tickgate::session::{Inbound, Outcome, Session, SessionLimits};
use tickgate::telemetry;
use tickgate_feeds::{Symbol, Tick};

/// `client_request`: any text parses to a request or a `bad_request`/
/// `unknown_op` error, never panics; errors encode to a JSON `error` frame;
/// the symbols of a request validate and echo at most 40 bytes each.
pub(crate) fn client_request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match protocol::parse_request(text) {
        Ok(Request::Subscribe { symbols, .. } | Request::Unsubscribe { symbols, .. }) => {
            assert!(!symbols.is_empty());
            let list = protocol::parse_symbols(&symbols);
            assert!(list.valid.len() + list.invalid.len() <= symbols.len());
            assert!(list.invalid.iter().all(|s| s.len() <= 40));
        }
        Ok(Request::Priority { classes, .. }) => {
            assert!(classes.iter().any(|(_, texts)| !texts.is_empty()));
        }
        Ok(Request::Ping { .. } | Request::Auth { .. } | Request::Ack { .. }) => {}
        Err(error) => {
            let frame = error.to_frame();
            let value: serde_json::Value =
                serde_json::from_str(&frame).expect("error frame is JSON");
            assert_eq!(value["type"], "error");
        }
    }
}

/// `config`: any text loads or yields a `ConfigError`, never panics; a
/// config that loads validates again.
pub(crate) fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text, "fuzz") {
        assert!(config.validate().is_ok());
    }
}

/// `upgrade_request`: the input is a
/// request head (a request line, then `name: value` lines); lines that do
/// not make a method, a header name or a header value are skipped, so the
/// check sees every shape of head hyper could hand it.
pub(crate) fn upgrade_request(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n').map(|line| line.trim_ascii());
    let mut request_line = lines.next().unwrap_or_default().split(|&b| b == b' ');
    let Ok(method) = Method::from_bytes(request_line.next().unwrap_or_default()) else {
        return;
    };
    let version = match request_line.nth(1).unwrap_or_default() {
        b"HTTP/1.0" => Version::HTTP_10,
        b"HTTP/1.1" => Version::HTTP_11,
        b"HTTP/2" | b"HTTP/2.0" => Version::HTTP_2,
        _ => Version::HTTP_09,
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    match handshake::check(&method, version, &headers) {
        Ok(accept) => {
            assert_eq!(method, Method::GET);
            assert_eq!(version, Version::HTTP_11);
            // base64 of a SHA-1 digest
            assert_eq!(accept.len(), 28, "{accept}");
            assert_eq!(headers.get_all(header::SEC_WEBSOCKET_KEY).iter().count(), 1);
            assert_eq!(headers.get_all(header::HOST).iter().count(), 1);
        }
        Err(error) => {
            assert!(error.status().is_client_error(), "{error:?}");
            assert!(error.message().ends_with('\n'), "{error:?}");
            assert!(
                telemetry::REFUSE_REASONS.contains(&error.kind()),
                "{error:?}"
            );
        }
    }
}

/// `session`: one session fed a sequence
/// of frames, one per input line. A line's first byte picks the frame kind
/// (low 3 bits: 1 binary, 2 ping, 3 pong, 4 close, else text) and how far
/// the clock moves (high 5 bits × 10 ms); the rest is the text. The session
/// never panics, every frame it queues is a JSON object with a `type`, it
/// never holds more than its 20 subscriptions, a large subscribe finishes,
/// and a close is its last word.
pub(crate) fn session(data: &[u8]) {
    let store = SnapshotStore::new(64);
    let ticks: Vec<Tick> = ["AAPL", "MSFT", "BTC-USD"]
        .iter()
        .map(|name| Tick {
            symbol: Symbol::parse(name).ok(),
            bid: Some(1.0),
            ..Tick::default()
        })
        .collect();
    Fanout::default().apply(&store, 0, &ticks, 1_764_000_000_000_000);
    let board = FeedBoard::default();
    let start = Instant::now();
    let mailbox = Arc::new(Mailbox::new(1, 8, start));
    let mut limits = SessionLimits::from_config(&Config::default());
    limits.max_subscriptions = 20;
    let mut session = Session::new(
        &store,
        &board,
        None,
        Arc::clone(&mailbox),
        limits,
        Some(Grant::unrestricted()),
        start,
        Duration::from_secs(1_764_000_000),
    );
    let mut now = start;
    for line in data.split(|&b| b == b'\n') {
        let Some((&head, rest)) = line.split_first() else {
            continue;
        };
        now += Duration::from_millis(u64::from(head >> 3) * 10);
        let text = String::from_utf8_lossy(rest);
        let frame = match head & 7 {
            1 => Inbound::Binary,
            2 => Inbound::Ping,
            3 => Inbound::Pong,
            4 => Inbound::Close,
            _ => Inbound::Text(&text),
        };
        let mut outcome = session.handle(frame, now);
        while outcome == Outcome::Continue && session.has_unfinished_request() {
            session.continue_request();
        }
        if outcome == Outcome::Continue && session.deadline().is_some_and(|d| now >= d) {
            outcome = session.on_deadline(now);
        }
        for frame in mailbox.drain(now).into_frames() {
            let value: serde_json::Value = serde_json::from_str(&frame).expect("frames are JSON");
            assert!(value["type"].is_string(), "{frame}");
        }
        assert!(mailbox.lock().subscription_count() <= 20);
        if let Outcome::Close(_) = outcome {
            if let Some(words) = session.take_last_words() {
                let value: serde_json::Value =
                    serde_json::from_str(&words).expect("last words are JSON");
                assert_eq!(value["type"], "error");
            }
            break;
        }
    }
    session.end();
}
