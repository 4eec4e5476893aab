//! Start-up registration: the series whose label values are known are
//! exported at zero, so alerts see 0 rather than no data.

use metrics::{counter, gauge};

use super::record::ticks_rejected;
use super::*;

/// Makes the series every dashboard reads exist from the first scrape (at
/// zero) instead of appearing with the first event. Adding zero leaves any
/// value already recorded untouched.
pub(super) fn register_core_series() {
    gauge!(CONNECTIONS, "transport" => "ws").increment(0.0);
    counter!(CONNECTIONS_OPENED, "transport" => "ws").increment(0);
    gauge!(SUBSCRIPTIONS).increment(0.0);
    gauge!(SYMBOLS).increment(0.0);
    gauge!(INTEREST_SYMBOLS).increment(0.0);
    for reason in SYMBOL_REFUSE_REASONS {
        counter!(SYMBOLS_REFUSED, "reason" => reason).increment(0);
    }
    gauge!(SLOW_CONSUMERS).increment(0.0);
    gauge!(SLOWED_CONNECTIONS).increment(0.0);
    for reason in CLOSE_REASONS {
        counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(0);
    }
    for reason in REFUSE_REASONS {
        counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(0);
    }
    for reason in AUTH_FAILURE_REASONS {
        counter!(AUTH_FAILURES, "reason" => reason).increment(0);
    }
    for code in ERROR_CODES {
        counter!(BAD_REQUESTS, "code" => code).increment(0);
    }
    for state in STATUS_STATES {
        counter!(STATUS_MESSAGES, "state" => state).increment(0);
    }
    for kind in crate::fanout::VENUE_EVENT_KINDS {
        for outcome in crate::fanout::VENUE_EVENT_OUTCOMES {
            counter!(VENUE_EVENTS, "kind" => kind, "outcome" => outcome).increment(0);
        }
    }
    for step in SLOW_CONSUMER_STEP_LABELS {
        counter!(SLOW_CONSUMER_STEPS, "step" => step).increment(0);
    }
    for name in [
        UPDATES_SENT,
        FRAMES_SENT,
        BYTES_SENT,
        UPDATES_CONFLATED,
        TRADES_SENT,
        TRADES_LOST,
        RATE_LIMITED,
    ] {
        counter!(name).increment(0);
    }
}

/// Exports the series of the feeds the gateway starts with at zero:
/// received and rejected ticks (every reason) and reconnects.
pub fn register_feeds<'a>(feeds: impl IntoIterator<Item = &'a str>) {
    for feed in feeds {
        counter!(TICKS_RECEIVED, "feed" => feed.to_owned()).increment(0);
        for reason in GATEWAY_REJECT_REASONS {
            ticks_rejected(feed, reason, 0);
        }
        tickgate_feeds::telemetry::register_feed(feed);
    }
}

/// Exports the series of the `wss` listener at zero; called when TLS is on.
pub fn register_tls() {
    gauge!(CONNECTIONS, "transport" => "wss").increment(0.0);
    counter!(CONNECTIONS_OPENED, "transport" => "wss").increment(0);
    for reason in TLS_HANDSHAKE_FAILURE_REASONS {
        counter!(TLS_HANDSHAKE_FAILURES, "reason" => reason).increment(0);
    }
    for result in ["success", "failure"] {
        counter!(TLS_RELOADS, "result" => result).increment(0);
    }
}

/// Exports the key reload series at zero; called when JWT keys come from files.
pub fn register_auth_key_reloads() {
    for result in ["success", "failure"] {
        counter!(AUTH_KEY_RELOADS, "result" => result).increment(0);
    }
}
