//! Every metric the feed adapters record, named once, described once, and
//! recorded through the small functions below. Labels are only `feed` (a
//! configured name) and `reason` (a closed set), never symbols.
//!
//! This crate owns `tickgate_ticks_rejected_total`: its parsers reject
//! messages before they become ticks, and the gateway adds its validation
//! rejects to the same series through [`ticks_rejected`]. The gateway counts
//! received ticks, feed state and last-tick age from the events it receives.
//!
//! The only module of the crate allowed to call the `metrics` macros
//! (`clippy.toml`): names and labels stay in one place.
#![allow(clippy::disallowed_macros)]

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

use crate::parse::ParseError;

/// Counter: ticks (or whole messages) refused, by `feed` and `reason`
/// ([`REJECT_REASONS`] here, plus the gateway's own).
pub const TICKS_REJECTED: &str = "tickgate_ticks_rejected_total";
/// Counter: reconnect attempts after a disconnect or failed connect, by `feed`.
pub const FEED_RECONNECTS: &str = "tickgate_feed_reconnects_total";
/// Counter: upstream gaps detected (messages the venue says were missed), by `feed`.
pub const FEED_GAPS: &str = "tickgate_feed_gaps_total";
/// Counter: error messages sent by the venue (e.g. Alpaca 407), by `feed`.
pub const FEED_UPSTREAM_ERRORS: &str = "tickgate_feed_upstream_errors_total";
/// Counter: connections a venue ended by refusing the credentials (the feed
/// goes `down`, reason `auth`, and backs off without reset), by `feed`.
pub const FEED_AUTH_FAILURES: &str = "tickgate_feed_auth_failures_total";
/// Counter: backup ticks held back because the primary was live, by `feed`
/// (the backup's name).
pub const FAILOVER_SUPPRESSED: &str = "tickgate_feed_failover_suppressed_ticks_total";
/// Counter: full snapshot loads of a `nats` feed (start and every reconnect), by `feed`.
pub const NATS_SNAPSHOT_LOADS: &str = "tickgate_nats_snapshot_loads_total";
/// Histogram: time from (re)connecting to a loaded snapshot, by `feed`.
pub const NATS_SNAPSHOT_LOAD_SECONDS: &str = "tickgate_nats_snapshot_load_seconds";
/// Counter: messages of a `nats` feed skipped because the gateway already
/// had that symbol's `seq` (a reload overlapping what was delivered), by `feed`.
pub const NATS_UNCHANGED: &str = "tickgate_nats_unchanged_total";

/// Every `reason` the feed side reports: the parse errors, plus `truncated`
/// (a line or frame cut short by the transport).
pub const REJECT_REASONS: [&str; 9] = {
    let k = ParseError::KINDS;
    [k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], "truncated"]
};

/// Registers HELP text for every metric above. Call once after installing
/// the recorder.
pub fn describe() {
    describe_counter!(TICKS_REJECTED, "Ticks refused, by feed and reason.");
    describe_counter!(
        FEED_RECONNECTS,
        "Feed reconnect attempts after a disconnect or failed connect, by feed."
    );
    describe_counter!(
        FEED_GAPS,
        "Upstream gaps detected (messages the venue reports missed), by feed."
    );
    describe_counter!(
        FEED_UPSTREAM_ERRORS,
        "Error messages received from the upstream venue, by feed."
    );
    describe_counter!(
        FEED_AUTH_FAILURES,
        "Feed connections refused by the venue for bad or unentitled credentials, by feed."
    );
    describe_counter!(
        NATS_SNAPSHOT_LOADS,
        "Full snapshot loads of a NATS feed (at start and after every reconnect), by feed."
    );
    describe_histogram!(
        NATS_SNAPSHOT_LOAD_SECONDS,
        Unit::Seconds,
        "Time from (re)connecting to NATS to a fully loaded snapshot, by feed."
    );
    describe_counter!(
        NATS_UNCHANGED,
        "NATS feed messages skipped because the gateway already had that seq, by feed."
    );
    describe_counter!(
        FAILOVER_SUPPRESSED,
        "Backup feed ticks withheld because the primary was live, by backup feed."
    );
}

/// Exports the series of a configured feed at zero, so alerts and
/// dashboards see 0 rather than no data before the first event. Adding zero
/// leaves a value already recorded untouched.
pub fn register_feed(feed: &str) {
    counter!(FEED_RECONNECTS, "feed" => feed.to_owned()).increment(0);
    counter!(FEED_AUTH_FAILURES, "feed" => feed.to_owned()).increment(0);
    for reason in REJECT_REASONS {
        ticks_rejected(feed, reason, 0);
    }
}

/// `n` ticks or messages of `feed` refused for `reason` (a closed set:
/// [`REJECT_REASONS`] or the gateway's validation reasons).
pub fn ticks_rejected(feed: &str, reason: &'static str, n: u64) {
    counter!(TICKS_REJECTED, "feed" => feed.to_owned(), "reason" => reason).increment(n);
}

/// One reconnect attempt of `feed`.
pub fn reconnect(feed: &str) {
    counter!(FEED_RECONNECTS, "feed" => feed.to_owned()).increment(1);
}

/// `n` upstream gaps reported by `feed`'s venue.
pub fn gaps(feed: &str, n: u64) {
    counter!(FEED_GAPS, "feed" => feed.to_owned()).increment(n);
}

/// One error message sent by `feed`'s venue.
pub fn upstream_error(feed: &str) {
    counter!(FEED_UPSTREAM_ERRORS, "feed" => feed.to_owned()).increment(1);
}

/// `feed`'s venue refused the credentials once.
pub fn auth_failure(feed: &str) {
    counter!(FEED_AUTH_FAILURES, "feed" => feed.to_owned()).increment(1);
}

/// `n` ticks of the backup `feed` held back while its primary was live.
pub fn failover_suppressed(feed: &str, n: u64) {
    counter!(FAILOVER_SUPPRESSED, "feed" => feed.to_owned()).increment(n);
}

/// A `nats` feed finished loading its snapshot, `took` after (re)connecting.
pub fn nats_snapshot_loaded(feed: &str, took: Duration) {
    counter!(NATS_SNAPSHOT_LOADS, "feed" => feed.to_owned()).increment(1);
    histogram!(NATS_SNAPSHOT_LOAD_SECONDS, "feed" => feed.to_owned()).record(took.as_secs_f64());
}

/// `n` messages of a `nats` feed skipped as already delivered.
pub fn nats_unchanged(feed: &str, n: u64) {
    counter!(NATS_UNCHANGED, "feed" => feed.to_owned()).increment(n);
}
