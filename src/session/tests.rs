//! Every protocol rule of a session, driven without a socket or a sleep:
//! frames in with a chosen `now`, replies read back from the mailbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tickgate_feeds::{Symbol, Tick};

use super::*;
use crate::auth::{AuthConfig, AuthMode, Entitlement, Pattern};

/// The epoch of the fixture's store.
const EPOCH: &str = "e1";
const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

/// The handles a session borrows.
struct Fixture {
    store: SnapshotStore,
    feeds: FeedBoard,
    mailbox: Arc<Mailbox>,
    authenticator: Option<Authenticator>,
}

impl Fixture {
    /// Authentication off.
    fn new() -> Self {
        Self {
            store: SnapshotStore::new(100).with_epoch(EPOCH.to_owned()),
            feeds: FeedBoard::default(),
            mailbox: Arc::new(Mailbox::new(1, 16, std::time::Instant::now())),
            authenticator: None,
        }
    }

    /// Authentication required, HS256 with [`SECRET`], no leeway.
    fn with_auth() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "tickgate-session-secret-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, SECRET).expect("write secret");
        let config = AuthConfig {
            mode: AuthMode::Required,
            hs256_secret_file: Some(path.clone()),
            leeway_seconds: 0,
            ..AuthConfig::default()
        };
        let authenticator = Authenticator::from_config(&config).expect("key");
        let _ = std::fs::remove_file(path);
        Self {
            authenticator,
            ..Self::new()
        }
    }

    fn session(&self, grant: Option<Grant>, now: Instant) -> Session<'_> {
        self.session_with(grant, limits(), now)
    }

    fn session_with(
        &self,
        grant: Option<Grant>,
        limits: SessionLimits,
        now: Instant,
    ) -> Session<'_> {
        Session::new(
            &self.store,
            &self.feeds,
            self.authenticator.as_ref(),
            Arc::clone(&self.mailbox),
            limits,
            grant,
            now,
            unix_now(),
        )
    }

    /// Applies a quote to `symbol`; returns its new seq.
    fn tick(&self, symbol: &str, bid: f64) -> u64 {
        let (slot, created) = self.store.get_or_insert(sym(symbol)).expect("room");
        if created {
            // As the fan-out step does: clients waiting for it subscribe.
            crate::fanout::subscriptions::hand_over(&self.store, &slot);
        }
        let tick = Tick {
            symbol: Some(sym(symbol)),
            bid: Some(bid),
            ..Tick::default()
        };
        let snapshot = self.store.apply(&slot, &tick, 1).expect("applied");
        if self.mailbox.lock().mark_dirty(slot.id) {
            self.mailbox.wake.notify_one();
        }
        snapshot.quote.seq
    }

    /// Every frame owed, in the order the writer would send them.
    fn frames(&self, now: Instant) -> Vec<Value> {
        self.mailbox
            .drain(now)
            .into_frames()
            .map(|frame| serde_json::from_str(&frame).expect("json frame"))
            .collect()
    }

    /// Symbols held: subscribed, or waited for until a feed publishes them.
    fn subscriptions(&self) -> usize {
        crate::fanout::subscriptions::held(&self.store, &self.mailbox)
    }
}

fn limits() -> SessionLimits {
    SessionLimits {
        max_subscriptions: 100,
        max_interest: 100,
        max_update_rate_hz: 0.0,
        max_requests_per_second: 0.0,
        request_burst: 100,
        max_rate_limited: 20,
        max_symbols_per_second: 0.0,
        symbol_burst: 100,
        first_message_timeout: Duration::from_secs(5),
    }
}

fn sym(text: &str) -> Symbol {
    Symbol::parse(text).expect("symbol")
}

fn text(session: &mut Session<'_>, request: Value, now: Instant) -> Outcome {
    session.handle(Inbound::Text(&request.to_string()), now)
}

/// The wall clock, for sessions whose tokens the verifier checks against it.
fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
}

/// An HS256 token for `symbols`, valid for `ttl` seconds from now.
fn token(symbols: &[&str], ttl: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let claims = json!({"sub": "trader-1", "exp": now + ttl, "symbols": symbols});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

fn grant_for(patterns: &[&str]) -> Grant {
    let mut grant = Grant::unrestricted();
    grant.entitlement = Entitlement::Patterns(
        patterns
            .iter()
            .map(|p| Pattern::parse(p).expect("pattern"))
            .collect(),
    );
    grant
}

fn symbols(frame: &Value) -> Vec<&str> {
    frame["symbols"]
        .as_array()
        .expect("symbols")
        .iter()
        .map(|s| s.as_str().expect("symbol text"))
        .collect()
}

fn seqs(frame: &Value) -> Vec<(&str, u64)> {
    frame["quotes"]
        .as_array()
        .expect("quotes")
        .iter()
        .map(|q| {
            (
                q["symbol"].as_str().expect("symbol"),
                q["seq"].as_u64().expect("seq"),
            )
        })
        .collect()
}

#[test]
fn subscribe_answers_subscribed_then_one_snapshot_before_any_update() {
    let fx = Fixture::new();
    let now = Instant::now();
    let first = fx.tick("AAPL", 1.0);
    let mut session = fx.session(Some(Grant::unrestricted()), now);

    let outcome = text(
        &mut session,
        json!({"op":"subscribe","id":1,"symbols":["AAPL","MSFT"]}),
        now,
    );
    let later = fx.tick("AAPL", 2.0);

    assert_eq!(outcome, Outcome::Continue);
    let frames = fx.frames(now);
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert_eq!(frames[0]["type"], "subscribed");
    assert_eq!(frames[0]["id"], 1);
    assert_eq!(symbols(&frames[0]), ["AAPL", "MSFT"]);
    assert_eq!(frames[1]["type"], "snapshot");
    assert_eq!(seqs(&frames[1]), [("AAPL", first)]);
    assert_eq!(frames[2]["type"], "update");
    assert_eq!(seqs(&frames[2]), [("AAPL", later)]);
    assert_eq!(fx.subscriptions(), 2);
}

#[test]
fn invalid_symbols_are_named_and_the_valid_ones_still_subscribed() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session(Some(Grant::unrestricted()), now);

    text(
        &mut session,
        json!({"op":"subscribe","id":2,"symbols":["AAPL","no spaces!"]}),
        now,
    );

    let frames = fx.frames(now);
    assert_eq!(frames[0]["type"], "error");
    assert_eq!(frames[0]["code"], "invalid_symbol");
    assert_eq!(frames[0]["id"], 2);
    assert_eq!(symbols(&frames[0]), ["no spaces!"]);
    assert_eq!(frames[1]["type"], "subscribed");
    assert_eq!(symbols(&frames[1]), ["AAPL"]);
    assert_eq!(fx.subscriptions(), 1);
}

#[test]
fn symbols_past_the_per_connection_limit_are_refused() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session_with(
        Some(Grant::unrestricted()),
        SessionLimits {
            max_subscriptions: 2,
            ..limits()
        },
        now,
    );

    text(
        &mut session,
        json!({"op":"subscribe","symbols":["A","B","C"]}),
        now,
    );

    let frames = fx.frames(now);
    assert_eq!(frames[0]["code"], "too_many_subscriptions");
    assert_eq!(
        frames[0]["message"],
        "at most 2 subscriptions per connection; these symbols were not subscribed"
    );
    assert_eq!(symbols(&frames[0]), ["C"]);
    assert_eq!(symbols(&frames[1]), ["A", "B"]);
    assert_eq!(fx.subscriptions(), 2);
}

#[test]
fn a_large_subscribe_is_handled_in_slices_each_answered_before_its_updates() {
    let fx = Fixture::new();
    let now = Instant::now();
    let limits = SessionLimits {
        max_subscriptions: 1_000,
        max_interest: 10_000,
        ..limits()
    };
    let mut session = fx.session_with(Some(Grant::unrestricted()), limits, now);
    fx.tick("S700", 1.0);
    let names: Vec<String> = (0..1_200).map(|i| format!("S{i}")).collect();

    text(
        &mut session,
        json!({"op":"subscribe","id":5,"symbols":names}),
        now,
    );

    // One slice handled; the rest waits for the driver.
    assert!(session.has_unfinished_request());
    assert_eq!(fx.subscriptions(), SUBSCRIBE_SLICE);
    let frames = fx.frames(now);
    assert_eq!(frames.len(), 2);
    assert_eq!(symbols(&frames[0]).len(), SUBSCRIBE_SLICE);
    assert_eq!(frames[0]["id"], 5);
    assert_eq!(frames[1]["type"], "snapshot");

    session.continue_request();
    assert!(session.has_unfinished_request());
    // The limit is reached in the second slice; its refusals wait for the
    // last one.
    let frames = fx.frames(now);
    assert_eq!(symbols(&frames[0]).len(), 1_000 - SUBSCRIBE_SLICE);
    assert_eq!(frames[1]["quotes"][0]["symbol"], "S700", "{}", frames[1]);

    session.continue_request();
    assert!(!session.has_unfinished_request());
    let frames = fx.frames(now);
    assert_eq!(frames.len(), 1, "nothing subscribed in the last slice");
    assert_eq!(frames[0]["code"], "too_many_subscriptions");
    assert_eq!(symbols(&frames[0]).len(), 200);
    assert_eq!(symbols(&frames[0])[0], "S1000");
    assert_eq!(fx.subscriptions(), 1_000);
    // Only the symbol a feed published took a slot.
    assert_eq!(fx.store.symbol_count(), 1);
    assert_eq!(fx.store.interest().symbol_count(), 999);
}

#[test]
fn a_connection_that_ends_mid_request_leaves_nothing_behind() {
    let fx = Fixture::new();
    let now = Instant::now();
    let limits = SessionLimits {
        max_subscriptions: 1_000,
        max_interest: 10_000,
        ..limits()
    };
    let mut session = fx.session_with(Some(Grant::unrestricted()), limits, now);
    let names: Vec<String> = (0..600).map(|i| format!("S{i}")).collect();
    text(&mut session, json!({"op":"subscribe","symbols":names}), now);
    assert!(session.has_unfinished_request());
    assert_eq!(fx.store.interest().symbol_count(), SUBSCRIBE_SLICE);

    session.end();

    assert!(!session.has_unfinished_request());
    assert_eq!(fx.subscriptions(), 0);
    assert_eq!(fx.store.interest().symbol_count(), 0);
}

#[test]
fn a_tokens_own_subscription_limit_applies_when_lower() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut grant = Grant::unrestricted();
    grant.max_subscriptions = Some(1);
    let mut session = fx.session(Some(grant), now);

    text(
        &mut session,
        json!({"op":"subscribe","symbols":["A","B"]}),
        now,
    );

    let frames = fx.frames(now);
    assert_eq!(frames[0]["code"], "too_many_subscriptions");
    assert_eq!(symbols(&frames[0]), ["B"]);
    assert_eq!(fx.subscriptions(), 1);
}

#[test]
fn symbols_the_grant_does_not_cover_never_reach_the_store() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session(Some(grant_for(&["BTC-*"])), now);

    text(
        &mut session,
        json!({"op":"subscribe","symbols":["BTC-USD","AAPL"]}),
        now,
    );

    let frames = fx.frames(now);
    assert_eq!(frames[0]["code"], "not_entitled");
    assert_eq!(
        frames[0]["message"],
        "your token does not entitle you to these symbols"
    );
    assert_eq!(symbols(&frames[0]), ["AAPL"]);
    assert_eq!(symbols(&frames[1]), ["BTC-USD"]);
    assert!(fx.store.get(&sym("AAPL")).is_none());
}

#[test]
fn unsubscribe_drops_held_symbols_and_names_invalid_ones() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session(Some(Grant::unrestricted()), now);
    text(
        &mut session,
        json!({"op":"subscribe","symbols":["A","B"]}),
        now,
    );
    fx.frames(now);

    text(
        &mut session,
        json!({"op":"unsubscribe","id":3,"symbols":["A","NOTHELD","??? "]}),
        now,
    );

    let frames = fx.frames(now);
    assert_eq!(frames[0]["code"], "invalid_symbol");
    assert_eq!(frames[1]["type"], "unsubscribed");
    assert_eq!(frames[1]["id"], 3);
    assert_eq!(symbols(&frames[1]), ["A", "NOTHELD"]);
    assert_eq!(fx.subscriptions(), 1);
    fx.tick("A", 1.0);
    assert!(
        fx.frames(now).is_empty(),
        "no update of an unsubscribed symbol"
    );
}

#[test]
fn priority_names_symbols_not_held_and_ranks_the_others() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session(Some(Grant::unrestricted()), now);
    text(&mut session, json!({"op":"subscribe","symbols":["A"]}), now);
    fx.frames(now);

    text(
        &mut session,
        json!({"op":"priority","id":4,"visible":["A","B"]}),
        now,
    );

    let frames = fx.frames(now);
    assert_eq!(frames[0]["code"], "not_subscribed");
    assert_eq!(
        frames[0]["message"],
        "subscribe to these symbols before ranking them"
    );
    assert_eq!(symbols(&frames[0]), ["B"]);
    assert_eq!(frames[1]["type"], "priority");
    assert_eq!(frames[1]["id"], 4);
    assert_eq!(frames[1]["visible"], json!(["A"]));
}

#[test]
fn a_ping_request_gets_a_pong_and_websocket_pings_and_pongs_get_nothing() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session(Some(Grant::unrestricted()), now);

    assert_eq!(session.handle(Inbound::Ping, now), Outcome::Continue);
    assert_eq!(session.handle(Inbound::Pong, now), Outcome::Continue);
    assert!(fx.frames(now).is_empty());
    text(&mut session, json!({"op":"ping","id":"p"}), now);

    let frames = fx.frames(now);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["type"], "pong");
    assert_eq!(frames[0]["id"], "p");
    assert!(frames[0]["ts"].as_u64().is_some_and(|ts| ts > 0));
}

#[test]
fn pong_time_and_token_expiry_follow_the_time_given_not_a_clock_read() {
    let fx = Fixture::new();
    let opened = Instant::now();
    let opened_unix = Duration::from_secs(1_900_000_000);
    let mut grant = Grant::unrestricted();
    grant.expires_at = 1_900_000_060;
    let mut session = Session::new(
        &fx.store,
        &fx.feeds,
        None,
        Arc::clone(&fx.mailbox),
        limits(),
        Some(grant),
        opened,
        opened_unix,
    );

    assert_eq!(session.deadline(), Some(opened + Duration::from_secs(60)));
    let later = opened + Duration::from_millis(5_250);
    text(&mut session, json!({"op":"ping"}), later);
    assert_eq!(fx.frames(later)[0]["ts"], 1_900_000_005_250_000_u64);
}

#[test]
fn a_binary_frame_is_refused_and_the_connection_stays_usable() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session(Some(Grant::unrestricted()), now);

    assert_eq!(session.handle(Inbound::Binary, now), Outcome::Continue);
    session.handle(Inbound::Text("not json"), now);

    let frames = fx.frames(now);
    assert_eq!(frames[0]["code"], "bad_request");
    assert_eq!(
        frames[0]["message"],
        "binary frames are not supported; send JSON text frames"
    );
    assert_eq!(frames[1]["code"], "bad_request");
    text(&mut session, json!({"op":"ping"}), now);
    assert_eq!(fx.frames(now)[0]["type"], "pong");
}

#[test]
fn a_close_frame_ends_the_session_without_last_words() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session(Some(Grant::unrestricted()), now);

    assert_eq!(
        session.handle(Inbound::Close, now),
        Outcome::Close(CloseReason::ClientClosed)
    );
    assert_eq!(session.take_last_words(), None);
}

#[test]
fn end_drops_every_subscription() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session(Some(Grant::unrestricted()), now);
    text(
        &mut session,
        json!({"op":"subscribe","symbols":["A","B"]}),
        now,
    );

    fx.tick("A", 1.0);

    session.end();

    assert_eq!(fx.subscriptions(), 0);
    assert_eq!(
        fx.store.interest().symbol_count(),
        0,
        "B is no longer waited for"
    );
    let slot = fx.store.get(&sym("A")).expect("slot");
    assert!(crate::fanout::subscriptions::lock_subscribers(&slot).is_empty());
}

#[test]
fn a_request_before_the_first_auth_closes_with_unauthorized() {
    let fx = Fixture::with_auth();
    let now = Instant::now();
    let mut session = fx.session(None, now);

    let outcome = text(&mut session, json!({"op":"subscribe","symbols":["A"]}), now);

    assert_eq!(outcome, Outcome::Close(CloseReason::Unauthorized));
    let words: Value =
        serde_json::from_str(&session.take_last_words().expect("last words")).expect("json");
    assert_eq!(words["code"], "unauthorized");
    assert_eq!(
        words["message"],
        "authenticate first: send {\"op\":\"auth\",\"token\":\"<JWT>\"}"
    );
    assert_eq!(fx.subscriptions(), 0);
}

#[test]
fn a_first_frame_that_is_not_an_auth_message_closes_at_once() {
    let fx = Fixture::with_auth();
    let now = Instant::now();
    for frame in [
        Inbound::Text("not json"),
        Inbound::Text(""),
        Inbound::Text("[1,2]"),
        Inbound::Text(r#"{"op":"auth","token":""}"#),
        Inbound::Text(r#"{"op":"auth"}"#),
        Inbound::Text(r#"{"op":"dance"}"#),
        Inbound::Binary,
    ] {
        let mut session = fx.session(None, now);

        let outcome = session.handle(frame, now);

        assert_eq!(
            outcome,
            Outcome::Close(CloseReason::Unauthorized),
            "{frame:?}"
        );
        let words: Value =
            serde_json::from_str(&session.take_last_words().expect("last words")).expect("json");
        assert_eq!(words["code"], "unauthorized", "{frame:?}");
        assert!(fx.frames(now).is_empty(), "{frame:?}: nothing else is sent");
    }
}

#[test]
fn pings_and_pongs_before_the_first_auth_leave_the_connection_waiting() {
    let fx = Fixture::with_auth();
    let now = Instant::now();
    let mut session = fx.session(None, now);

    assert_eq!(session.handle(Inbound::Ping, now), Outcome::Continue);
    assert_eq!(session.handle(Inbound::Pong, now), Outcome::Continue);
    assert!(session.take_last_words().is_none());
}

#[test]
fn a_bad_first_token_closes_with_unauthorized() {
    let fx = Fixture::with_auth();
    let now = Instant::now();
    let mut session = fx.session(None, now);

    let outcome = text(&mut session, json!({"op":"auth","token":"not.a.jwt"}), now);

    assert_eq!(outcome, Outcome::Close(CloseReason::Unauthorized));
    let words: Value =
        serde_json::from_str(&session.take_last_words().expect("last words")).expect("json");
    assert!(
        words["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("authentication failed: ")),
        "{words}"
    );
}

#[test]
fn a_good_first_token_authenticates_and_sets_the_expiry_deadline() {
    let fx = Fixture::with_auth();
    let now = Instant::now();
    let mut session = fx.session(None, now);
    assert_eq!(session.deadline(), Some(now + Duration::from_secs(5)));

    let outcome = text(
        &mut session,
        json!({"op":"auth","id":7,"token":token(&["A*"], 600)}),
        now,
    );

    assert_eq!(outcome, Outcome::Continue);
    let frames = fx.frames(now);
    assert_eq!(frames[0]["type"], "authenticated");
    assert_eq!(frames[0]["id"], 7);
    assert_eq!(frames[0]["sub"], "trader-1");
    let deadline = session.deadline().expect("a token expires");
    assert!(
        deadline > now + Duration::from_secs(590) && deadline <= now + Duration::from_secs(600)
    );
    text(
        &mut session,
        json!({"op":"subscribe","symbols":["AAPL","MSFT"]}),
        now,
    );
    let frames = fx.frames(now);
    assert_eq!(frames[0]["code"], "not_entitled");
    assert_eq!(symbols(&frames[1]), ["AAPL"]);
}

#[test]
fn no_auth_message_in_time_closes_at_the_deadline() {
    let fx = Fixture::with_auth();
    let now = Instant::now();
    let mut session = fx.session(None, now);
    let deadline = session.deadline().expect("first-message deadline");

    assert_eq!(
        session.on_deadline(deadline - Duration::from_millis(1)),
        Outcome::Continue
    );
    assert_eq!(
        session.on_deadline(deadline),
        Outcome::Close(CloseReason::Unauthorized)
    );
    let words: Value =
        serde_json::from_str(&session.take_last_words().expect("last words")).expect("json");
    assert_eq!(words["message"], "no {\"op\":\"auth\"} message in time");
}

#[test]
fn an_expired_token_closes_at_the_deadline_and_a_refresh_moves_it() {
    let fx = Fixture::with_auth();
    let now = Instant::now();
    let mut session = fx.session(None, now);
    text(
        &mut session,
        json!({"op":"auth","token":token(&["*"], 10)}),
        now,
    );
    let first = session.deadline().expect("expiry");

    text(
        &mut session,
        json!({"op":"auth","token":token(&["*"], 600)}),
        now,
    );
    let refreshed = session.deadline().expect("expiry");
    assert!(refreshed > first);
    assert_eq!(session.on_deadline(first), Outcome::Continue);

    assert_eq!(
        session.on_deadline(refreshed),
        Outcome::Close(CloseReason::TokenExpired)
    );
    let words: Value =
        serde_json::from_str(&session.take_last_words().expect("last words")).expect("json");
    assert_eq!(words["code"], "unauthorized");
    assert_eq!(words["message"], "token expired");
}

#[test]
fn a_refresh_drops_the_symbols_the_new_token_no_longer_covers() {
    let fx = Fixture::with_auth();
    let now = Instant::now();
    let mut session = fx.session(None, now);
    text(
        &mut session,
        json!({"op":"auth","token":token(&["*"], 600)}),
        now,
    );
    text(
        &mut session,
        json!({"op":"subscribe","symbols":["AAPL","MSFT"]}),
        now,
    );
    fx.frames(now);

    text(
        &mut session,
        json!({"op":"auth","id":8,"token":token(&["AAPL"], 600)}),
        now,
    );

    let frames = fx.frames(now);
    assert_eq!(frames[0]["code"], "not_entitled");
    assert_eq!(
        frames[0]["message"],
        "the new token does not cover these symbols; they were unsubscribed"
    );
    assert_eq!(symbols(&frames[0]), ["MSFT"]);
    assert_eq!(frames[1]["type"], "authenticated");
    assert_eq!(fx.subscriptions(), 1);
}

#[test]
fn a_failed_refresh_keeps_the_current_token() {
    let fx = Fixture::with_auth();
    let now = Instant::now();
    let mut session = fx.session(None, now);
    text(
        &mut session,
        json!({"op":"auth","token":token(&["*"], 600)}),
        now,
    );
    fx.frames(now);
    let deadline = session.deadline();

    let outcome = text(
        &mut session,
        json!({"op":"auth","id":9,"token":"junk"}),
        now,
    );

    assert_eq!(outcome, Outcome::Continue);
    let frames = fx.frames(now);
    assert_eq!(frames[0]["code"], "unauthorized");
    assert_eq!(frames[0]["id"], 9);
    assert_eq!(session.deadline(), deadline);
    assert_eq!(session.take_last_words(), None);
}

#[test]
fn an_auth_message_with_auth_off_is_a_harmless_bad_request() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session(Some(Grant::unrestricted()), now);
    assert_eq!(session.deadline(), None);

    let outcome = text(&mut session, json!({"op":"auth","token":"x"}), now);

    assert_eq!(outcome, Outcome::Continue);
    let frames = fx.frames(now);
    assert_eq!(frames[0]["code"], "bad_request");
    assert_eq!(
        frames[0]["message"],
        "authentication is off on this gateway; no token is needed"
    );
}

#[test]
fn a_request_flood_is_refused_then_closed() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session_with(
        Some(Grant::unrestricted()),
        SessionLimits {
            max_requests_per_second: 1.0,
            request_burst: 2,
            max_rate_limited: 3,
            ..limits()
        },
        now,
    );
    let ping = json!({"op":"ping"});

    assert_eq!(text(&mut session, ping.clone(), now), Outcome::Continue);
    assert_eq!(text(&mut session, ping.clone(), now), Outcome::Continue);
    assert_eq!(text(&mut session, ping.clone(), now), Outcome::Continue);
    // A refused WebSocket ping takes a strike but gets no reply.
    assert_eq!(session.handle(Inbound::Ping, now), Outcome::Continue);

    let frames = fx.frames(now);
    let types: Vec<&str> = frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["pong", "pong", "error"]);
    assert_eq!(frames[2]["code"], "rate_limited");
    assert_eq!(
        frames[2]["message"],
        "too many requests; this one was ignored, slow down"
    );
    assert_eq!(
        text(&mut session, ping, now),
        Outcome::Close(CloseReason::RateLimited)
    );
    let words: Value =
        serde_json::from_str(&session.take_last_words().expect("last words")).expect("json");
    assert_eq!(words["message"], "too many requests; closing");
}

#[test]
fn symbols_past_the_budget_refuse_the_whole_request_until_it_refills() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session_with(
        Some(Grant::unrestricted()),
        SessionLimits {
            max_symbols_per_second: 10.0,
            symbol_burst: 5,
            max_rate_limited: 3,
            ..limits()
        },
        now,
    );
    let names = ["AA", "BB", "CC", "DD", "EE", "FF"];
    // Four symbols fit; the unsubscribe of all four does not (one left).
    text(
        &mut session,
        json!({"op":"subscribe","id":1,"symbols":&names[..4]}),
        now,
    );
    text(
        &mut session,
        json!({"op":"unsubscribe","id":2,"symbols":&names[..4]}),
        now,
    );
    let frames = fx.frames(now);
    assert_eq!(frames[0]["type"], "subscribed");
    let refusal = frames.last().expect("a refusal");
    assert_eq!(refusal["type"], "error");
    assert_eq!(refusal["id"], 2);
    assert_eq!(refusal["code"], "rate_limited");
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains("names 4 symbols") && m.contains("1 more")),
        "{refusal}"
    );
    // Nothing of the refused request was done.
    assert_eq!(fx.subscriptions(), 4);

    // 300 ms later three more tokens came: the unsubscribe goes through.
    let later = now + Duration::from_millis(300);
    text(
        &mut session,
        json!({"op":"unsubscribe","id":3,"symbols":&names[..4]}),
        later,
    );
    let frames = fx.frames(later);
    assert_eq!(frames.last().expect("reply")["type"], "unsubscribed");
    assert_eq!(fx.subscriptions(), 0);

    // A request larger than the burst can never pass; each refusal is a
    // strike (the first was request 2), and the third closes.
    let huge = json!({"op":"subscribe","id":4,"symbols":names});
    assert_eq!(text(&mut session, huge.clone(), later), Outcome::Continue);
    assert_eq!(
        text(&mut session, huge, later),
        Outcome::Close(CloseReason::RateLimited)
    );
    assert_eq!(fx.subscriptions(), 0);
}

#[test]
fn the_request_rate_refills_with_time() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session_with(
        Some(Grant::unrestricted()),
        SessionLimits {
            max_requests_per_second: 1.0,
            request_burst: 1,
            ..limits()
        },
        now,
    );

    text(&mut session, json!({"op":"ping"}), now);
    text(&mut session, json!({"op":"ping"}), now);
    text(
        &mut session,
        json!({"op":"ping"}),
        now + Duration::from_secs(1),
    );

    let frames = fx.frames(now);
    let types: Vec<&str> = frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["pong", "error", "pong"]);
}

#[test]
fn resume_leaves_out_symbols_whose_seq_is_current() {
    let fx = Fixture::new();
    let now = Instant::now();
    let held = fx.tick("AAPL", 1.0);
    let msft = fx.tick("MSFT", 1.0);
    fx.tick("MSFT", 2.0);
    let msft_now = msft + 1;
    let mut session = fx.session(Some(Grant::unrestricted()), now);

    text(
        &mut session,
        json!({"op":"subscribe","symbols":["AAPL","MSFT"],"resume":{"AAPL":held,"MSFT":msft},"epoch":EPOCH}),
        now,
    );

    let frames = fx.frames(now);
    assert_eq!(frames[0]["epoch"], EPOCH);
    assert_eq!(frames[1]["type"], "snapshot");
    assert_eq!(frames[1]["resumed"], true);
    assert_eq!(frames[1]["unchanged"], 1);
    assert_eq!(seqs(&frames[1]), [("MSFT", msft_now)]);
}

/// A restarted gateway counts seq afresh: the seq a client holds from the
/// old process can equal the new one's for a different value. A resume from
/// another epoch, or naming none, therefore gets every quote in full.
#[test]
fn resume_from_another_epoch_or_none_gets_full_quotes() {
    let now = Instant::now();
    for epoch in [json!("an-old-process"), Value::Null] {
        let fx = Fixture::new();
        let seq = fx.tick("AAPL", 7.0);
        let resume =
            json!({"op":"subscribe","symbols":["AAPL"],"resume":{"AAPL":seq},"epoch":epoch});
        let mut session = fx.session(Some(Grant::unrestricted()), now);
        text(&mut session, resume, now);

        let frames = fx.frames(now);
        assert_eq!(frames[0]["type"], "subscribed");
        assert_eq!(frames[0]["epoch"], EPOCH);
        assert_eq!(frames[1]["type"], "snapshot");
        assert_eq!(frames[1]["resumed"], false);
        assert_eq!(seqs(&frames[1]), [("AAPL", seq)]);
        assert_eq!(frames[1]["quotes"][0]["bid"], 7.0);
    }
}

#[test]
fn an_epoch_that_is_not_a_short_string_is_a_bad_request() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session(Some(Grant::unrestricted()), now);
    for epoch in [json!(5), json!(""), json!("e".repeat(65))] {
        text(
            &mut session,
            json!({"op":"subscribe","symbols":["AAPL"],"resume":{"AAPL":1},"epoch":epoch}),
            now,
        );
    }

    let frames = fx.frames(now);
    let codes: Vec<&str> = frames
        .iter()
        .map(|f| f["code"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(codes, ["bad_request"; 3]);
}

#[test]
fn limits_come_from_the_configuration() {
    let config = Config::default();
    let limits = SessionLimits::from_config(&config);

    assert_eq!(
        limits.max_subscriptions,
        config.limits.max_subscriptions_per_connection.get()
    );
    assert_eq!(
        limits.first_message_timeout,
        config.auth.first_message_timeout
    );
}

#[test]
fn acknowledgements_are_checked_and_get_no_reply() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session(Some(Grant::unrestricted()), now);
    // Nothing written yet: acknowledging 0 is fine and answered with nothing.
    text(&mut session, json!({"op":"ack","frames":0}), now);
    assert!(fx.frames(now).is_empty());
    assert!(!fx.mailbox.acks.full(0), "a 0 window is no limit");
    fx.mailbox.acks.wrote(3);
    assert!(fx.mailbox.acks.full(3));
    text(&mut session, json!({"op":"ack","frames":3}), now);
    assert!(!fx.mailbox.acks.full(3));
    for (bad, says) in [
        (
            json!({"op":"ack","frames":4}),
            "acknowledges 4 messages but only 3 were sent",
        ),
        (json!({"op":"ack","frames":-1}), "non-negative integer"),
        (json!({"op":"ack","frames":1.5}), "non-negative integer"),
        (json!({"op":"ack","frames":"3"}), "non-negative integer"),
        (json!({"op":"ack"}), "non-negative integer"),
    ] {
        assert_eq!(text(&mut session, bad.clone(), now), Outcome::Continue);
        let frames = fx.frames(now);
        assert_eq!(frames.len(), 1, "{bad}: {frames:?}");
        assert_eq!(frames[0]["code"], "bad_request", "{bad}");
        assert!(
            frames[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{bad}: {}",
            frames[0]
        );
    }
}

#[test]
fn acknowledgements_of_new_messages_take_no_request_token() {
    let fx = Fixture::new();
    let now = Instant::now();
    let mut session = fx.session_with(
        Some(Grant::unrestricted()),
        SessionLimits {
            max_requests_per_second: 1.0,
            request_burst: 2,
            max_rate_limited: 100,
            ..limits()
        },
        now,
    );
    // Far more acknowledgements than the request rate allows, each of new
    // messages: none is refused.
    for read in 1..=50 {
        fx.mailbox.acks.wrote(1);
        text(&mut session, json!({"op":"ack","frames":read}), now);
    }
    assert!(fx.frames(now).is_empty());
    // Repeating a count acknowledges nothing new: it takes a token, and
    // past the burst it is refused like any request.
    for _ in 0..3 {
        text(&mut session, json!({"op":"ack","frames":50}), now);
    }
    let frames = fx.frames(now);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["code"], "rate_limited");
}
