//! Metric names the feed runner records through the `metrics` facade. Labels
//! are only `feed` (a configured name) and `reason` (a closed set) — never
//! symbols. The gateway counts received ticks, validation rejects, state and
//! last-tick age from the events it receives.

/// Counter: ticks (or whole messages) refused before they became ticks, by
/// `feed` and `reason` ([`crate::parse::ParseError::kind`], plus
/// `truncated`). The gateway adds its validation rejects to the same name.
pub const TICKS_REJECTED: &str = "tickgate_ticks_rejected_total";
/// Counter: reconnect attempts after a disconnect or failed connect, by `feed`.
pub const FEED_RECONNECTS: &str = "tickgate_feed_reconnects_total";
/// Counter: upstream gaps detected (messages the venue says were missed), by `feed`.
pub const FEED_GAPS: &str = "tickgate_feed_gaps_total";
/// Counter: error messages sent by the venue (e.g. Alpaca 407), by `feed`.
pub const FEED_UPSTREAM_ERRORS: &str = "tickgate_feed_upstream_errors_total";
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

/// Registers HELP text for every metric above. Call once after installing
/// the recorder. (`TICKS_REJECTED` is described by the gateway.)
pub fn describe() {
    metrics::describe_counter!(
        FEED_RECONNECTS,
        "Feed reconnect attempts after a disconnect or failed connect, by feed."
    );
    metrics::describe_counter!(
        FEED_GAPS,
        "Upstream gaps detected (messages the venue reports missed), by feed."
    );
    metrics::describe_counter!(
        FEED_UPSTREAM_ERRORS,
        "Error messages received from the upstream venue, by feed."
    );
    metrics::describe_counter!(
        NATS_SNAPSHOT_LOADS,
        "Full snapshot loads of a NATS feed (at start and after every reconnect), by feed."
    );
    metrics::describe_histogram!(
        NATS_SNAPSHOT_LOAD_SECONDS,
        metrics::Unit::Seconds,
        "Time from (re)connecting to NATS to a fully loaded snapshot, by feed."
    );
    metrics::describe_counter!(
        NATS_UNCHANGED,
        "NATS feed messages skipped because the gateway already had that seq, by feed."
    );
    metrics::describe_counter!(
        FAILOVER_SUPPRESSED,
        "Backup feed ticks withheld because the primary was live, by backup feed."
    );
}
