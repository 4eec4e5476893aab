//! The recording functions the rest of the gateway calls, by subject:
//! clients, delivery, feeds, TLS and keys, the publisher. Callers count per
//! batch.

use std::time::Duration;

use metrics::{Counter, Histogram, counter, gauge, histogram};
use tickgate_feeds::FeedState;

use super::*;

// Clients.

/// A WebSocket connection opened on `transport` (`ws`, `wss`).
pub fn connection_opened(transport: &'static str) {
    gauge!(CONNECTIONS, "transport" => transport).increment(1.0);
    counter!(CONNECTIONS_OPENED, "transport" => transport).increment(1);
}

/// A connection on `transport` closed for `reason` (one of [`CLOSE_REASONS`]).
/// The close is counted before the gauge drops, so a scrape that sees one
/// connection fewer also sees why it closed.
pub fn connection_closed(transport: &'static str, reason: &'static str) {
    counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(1);
    gauge!(CONNECTIONS, "transport" => transport).decrement(1.0);
}

/// An upgrade refused for `reason` (one of [`REFUSE_REASONS`]).
pub fn connection_refused(reason: &'static str) {
    counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(1);
}

/// A token refused, or a connection ended by expiry, for `reason` (one of
/// [`AUTH_FAILURE_REASONS`]).
pub fn auth_failure(reason: &'static str) {
    counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

/// A client frame refused because its connection exceeded its request rate.
pub fn rate_limited() {
    counter!(RATE_LIMITED).increment(1);
}

/// An error reply sent to a client, by protocol error `code` (one of
/// [`ERROR_CODES`]).
pub fn bad_request(code: &'static str) {
    counter!(BAD_REQUESTS, "code" => code).increment(1);
}

/// `n` symbol subscriptions taken.
pub fn subscriptions_added(n: usize) {
    gauge!(SUBSCRIPTIONS).increment(n as f64);
}

/// `n` symbol subscriptions dropped.
pub fn subscriptions_removed(n: usize) {
    gauge!(SUBSCRIPTIONS).decrement(n as f64);
}

/// The store now knows `n` symbols.
pub fn symbols(n: usize) {
    gauge!(SYMBOLS).set(n as f64);
}

/// Clients now wait for `n` symbols no feed has published.
pub fn interest_symbols(n: usize) {
    gauge!(INTEREST_SYMBOLS).set(n as f64);
}

/// `n` symbols of one request refused for `reason` (one of
/// [`SYMBOL_REFUSE_REASONS`]); counted once per request.
pub fn symbols_refused(reason: &'static str, n: usize) {
    counter!(SYMBOLS_REFUSED, "reason" => reason).increment(n as u64);
}

// Delivery.

/// The delivery counters one connection's writer adds to after every write.
/// Fetched once per connection: each handle is then two atomics per use.
pub struct DeliveryHandles {
    pub updates: Counter,
    pub frames: Counter,
    pub bytes: Counter,
    pub conflated: Counter,
    pub trades_sent: Counter,
    /// `tickgate_tick_to_send_seconds`.
    pub latency: Histogram,
}

/// The handles of [`DeliveryHandles`].
pub fn delivery_handles() -> DeliveryHandles {
    DeliveryHandles {
        updates: counter!(UPDATES_SENT),
        frames: counter!(FRAMES_SENT),
        bytes: counter!(BYTES_SENT),
        conflated: counter!(UPDATES_CONFLATED),
        trades_sent: counter!(TRADES_SENT),
        latency: histogram!(TICK_TO_SEND),
    }
}

/// One step of the slow-consumer ladder (one of [`SLOW_CONSUMER_STEP_LABELS`]).
pub fn slow_consumer_step(step: &'static str) {
    counter!(SLOW_CONSUMER_STEPS, "step" => step).increment(1);
}

/// `n` trades dropped because a connection's trade buffer was full.
pub fn trades_lost(n: u64) {
    counter!(TRADES_LOST).increment(n);
}

/// `n` `status` messages saying `state` (one of [`STATUS_STATES`]) sent on
/// one freshness transition.
pub fn status_messages(state: &'static str, n: u64) {
    counter!(STATUS_MESSAGES, "state" => state).increment(n);
}

/// `n` venue events of `kind` with `outcome`, counted once per batch.
pub fn venue_events(kind: &'static str, outcome: &'static str, n: u64) {
    counter!(VENUE_EVENTS, "kind" => kind, "outcome" => outcome).increment(n);
}

/// What the admin listener samples at every scrape, walked by its caller.
pub fn connections_sampled(
    slow_consumers: usize,
    slowed_connections: usize,
    write_queue_bytes: impl IntoIterator<Item = u64>,
) {
    let queue = histogram!(WRITE_QUEUE_BYTES);
    for bytes in write_queue_bytes {
        queue.record(bytes as f64);
    }
    gauge!(SLOW_CONSUMERS).set(slow_consumers as f64);
    gauge!(SLOWED_CONNECTIONS).set(slowed_connections as f64);
}

// Feeds.

/// `n` ticks of `feed` accepted into the store (counted once per batch).
pub fn ticks_received(feed: &str, n: u64) {
    counter!(TICKS_RECEIVED, "feed" => feed.to_owned()).increment(n);
}

/// `n` ticks of `feed` refused for `reason` (one of
/// [`GATEWAY_REJECT_REASONS`]), counted once per batch and reason.
pub fn ticks_rejected(feed: &str, reason: &'static str, n: u64) {
    tickgate_feeds::telemetry::ticks_rejected(feed, reason, n);
}

/// `tickgate_feed_lag_seconds` of one feed, fetched once per batch.
pub struct FeedLag(Histogram);

impl FeedLag {
    /// The lag histogram of `feed`.
    pub fn of(feed: &str) -> Self {
        Self(histogram!(FEED_LAG, "feed" => feed.to_owned()))
    }

    /// One tick whose source timestamp was `micros` before its receipt.
    pub fn record_micros(&self, micros: u64) {
        self.0.record(micros as f64 / 1e6);
    }
}

/// Publishes `tickgate_feed_up`, `tickgate_feed_state` (one series per
/// state) and, once it has ticked, `tickgate_feed_last_tick_age_seconds`.
pub fn feed_status(feed: &str, state: FeedState, last_tick_age: Option<Duration>) {
    feed_up(feed, state);
    for each in [
        FeedState::Connecting,
        FeedState::Live,
        FeedState::Stale,
        FeedState::Down,
    ] {
        let now = if each == state { 1.0 } else { 0.0 };
        gauge!(FEED_STATE, "feed" => feed.to_owned(), "state" => each.as_str()).set(now);
    }
    if let Some(age) = last_tick_age {
        gauge!(FEED_LAST_TICK_AGE, "feed" => feed.to_owned()).set(age.as_secs_f64());
    }
}

/// Publishes `tickgate_feed_up` alone: 1 while `feed` is live.
pub fn feed_up(feed: &str, state: FeedState) {
    let up = if state == FeedState::Live { 1.0 } else { 0.0 };
    gauge!(FEED_UP, "feed" => feed.to_owned()).set(up);
}

// TLS and keys.

/// A TLS handshake failed for `reason` (one of [`TLS_HANDSHAKE_FAILURE_REASONS`]).
pub fn tls_handshake_failed(reason: &'static str) {
    counter!(TLS_HANDSHAKE_FAILURES, "reason" => reason).increment(1);
}

/// A certificate reload finished; `ok` is false when the old one stays.
pub fn tls_reloaded(ok: bool) {
    counter!(TLS_RELOADS, "result" => result_label(ok)).increment(1);
}

/// The served certificate is valid until `not_after` (Unix seconds).
pub fn tls_certificate_expiry(not_after: i64) {
    gauge!(TLS_CERTIFICATE_EXPIRY).set(not_after as f64);
}

/// A JWT key reload finished; `ok` is false when the old keys stay.
pub fn auth_keys_reloaded(ok: bool) {
    counter!(AUTH_KEY_RELOADS, "result" => result_label(ok)).increment(1);
}

fn result_label(ok: bool) -> &'static str {
    if ok { "success" } else { "failure" }
}

// The publisher (`tickgate publish`).

/// `n` quotes acknowledged by JetStream.
pub fn publish_acked(n: u64) {
    counter!(PUBLISH_QUOTES).increment(n);
}

/// `n` publishes failed for `reason` (`send`, `ack`); their symbols stay
/// pending.
pub fn publish_failed(reason: &'static str, n: u64) {
    counter!(PUBLISH_FAILURES, "reason" => reason).increment(n);
}

/// `n` pending quotes replaced by a newer quote of the same symbol.
pub fn publish_superseded(n: u64) {
    counter!(PUBLISH_SUPERSEDED).increment(n);
}

/// `n` symbols whose latest quote is not yet acknowledged.
pub fn publish_pending(n: usize) {
    gauge!(PUBLISH_PENDING).set(n as f64);
}

/// The publisher's quote map now holds `n` symbols.
pub fn publish_symbols(n: usize) {
    gauge!(PUBLISH_SYMBOLS).set(n as f64);
}

/// Whether this publisher publishes (1) or stands by for the lease (0).
pub fn publish_active(active: bool) {
    gauge!(PUBLISH_ACTIVE).set(if active { 1.0 } else { 0.0 });
}

/// Whether the publisher is connected to NATS.
pub fn publish_nats_connected(connected: bool) {
    gauge!(NATS_CONNECTED).set(if connected { 1.0 } else { 0.0 });
}
