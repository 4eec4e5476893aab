//! The HELP text and unit of every gateway and publisher metric, given to
//! the recorder once at install. A process exports only the series it
//! records, so the publisher's HELP texts stay out of a gateway's scrape.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

use super::*;

pub(super) fn describe() {
    describe_gauge!(
        CONNECTIONS,
        "Open client WebSocket connections, by transport."
    );
    describe_counter!(
        CONNECTIONS_OPENED,
        "Client WebSocket connections accepted, by transport."
    );
    describe_counter!(
        CONNECTIONS_CLOSED,
        "Client WebSocket connections closed, by reason."
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Upgrade requests refused before the WebSocket opened (admission checks, invalid opening handshakes, request heads over 64 KiB), by reason."
    );
    describe_gauge!(
        SUBSCRIPTIONS,
        "Symbol subscriptions held, summed over all connections."
    );
    describe_gauge!(SYMBOLS, "Symbols known to the snapshot store.");
    describe_gauge!(
        INTEREST_SYMBOLS,
        "Distinct symbols clients wait for that no feed has published yet."
    );
    describe_counter!(
        SYMBOLS_REFUSED,
        "Symbols of subscribe requests refused, by reason."
    );
    describe_counter!(TICKS_RECEIVED, "Ticks accepted from feeds, by feed.");
    describe_counter!(
        UPDATES_SENT,
        "Quotes delivered to clients in update frames."
    );
    describe_counter!(FRAMES_SENT, "WebSocket text frames written to clients.");
    describe_counter!(
        BYTES_SENT,
        Unit::Bytes,
        "Payload bytes of frames written to clients."
    );
    describe_counter!(
        UPDATES_CONFLATED,
        "Ticks a client never saw because a newer value of the symbol replaced them."
    );
    describe_counter!(
        BAD_REQUESTS,
        "Error replies sent to clients, by error code."
    );
    describe_histogram!(
        TICK_TO_SEND,
        Unit::Seconds,
        "Time from gateway receipt of the oldest tick in a frame to the frame being written."
    );
    describe_histogram!(
        FEED_LAG,
        Unit::Seconds,
        "Source timestamp to gateway receipt, per tick batch."
    );
    describe_gauge!(FEED_UP, "1 when the feed is live, 0 otherwise, by feed.");
    describe_gauge!(
        FEED_STATE,
        "1 for the state the feed is in (connecting, live, stale, down), 0 for the others, by feed."
    );
    describe_counter!(
        STATUS_MESSAGES,
        "Status messages sent to clients on a freshness transition (live, stale, down), one per client and transition."
    );
    describe_counter!(
        VENUE_EVENTS,
        "Venue events by kind (halt, resume, correction, cancel) and outcome (applied: clients saw a change; ignored: a repeated status, an older or unknown trade, an invalid value)."
    );
    describe_gauge!(
        FEED_LAST_TICK_AGE,
        Unit::Seconds,
        "Seconds since the feed's last tick, by feed."
    );
    describe_counter!(
        AUTH_FAILURES,
        "Tokens refused, by reason (missing, malformed, algorithm, unknown_key, signature, expired, not_yet_valid, claims)."
    );
    describe_counter!(
        RATE_LIMITED,
        "Client frames refused with rate_limited because the connection exceeded its request rate."
    );
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "TLS handshakes that failed, by reason (timeout, protocol, certificate, io)."
    );
    describe_counter!(
        TLS_RELOADS,
        "TLS certificate reloads, by result (success, failure); a failure keeps the previous certificate."
    );
    describe_counter!(
        AUTH_KEY_RELOADS,
        "JWT verification key reloads, by result (success, failure); a failure keeps the previous keys."
    );
    describe_gauge!(
        TLS_CERTIFICATE_EXPIRY,
        Unit::Seconds,
        "End of validity of the served TLS certificate, seconds since the Unix epoch."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; labels carry the version and git revision."
    );
    describe_gauge!(
        SLOW_CONSUMERS,
        "Connections whose socket has not taken a batch for longer than connection.slow_consumer_ms."
    );
    describe_counter!(
        SLOW_CONSUMER_STEPS,
        "Slow-consumer ladder steps taken, by step (slowed: a priority class limited to slow_consumer.reduced_rate_hz; restored: full rate again; closed: closed with 4008)."
    );
    describe_gauge!(
        SLOWED_CONNECTIONS,
        "Connections whose update rate the slow-consumer ladder is limiting right now."
    );
    describe_counter!(
        TRADES_SENT,
        "Trades delivered in trades frames (subscriptions with trades: true)."
    );
    describe_counter!(
        TRADES_LOST,
        "Trades dropped because a connection's trade buffer was full; each loss is announced to its client in a trades_lost message."
    );
    describe_histogram!(
        WRITE_QUEUE_BYTES,
        Unit::Bytes,
        "Bytes buffered for each connection's socket, sampled at every scrape."
    );
    describe_counter!(PUBLISH_QUOTES, "Quotes acknowledged by JetStream.");
    describe_counter!(
        PUBLISH_SUPERSEDED,
        "Pending quotes replaced by a newer quote of the same symbol before being published."
    );
    describe_counter!(
        PUBLISH_FAILURES,
        "Quote publishes that failed and stay pending for retry, by reason."
    );
    describe_gauge!(
        PUBLISH_PENDING,
        "Symbols whose latest quote is not yet acknowledged by JetStream."
    );
    describe_gauge!(NATS_CONNECTED, "1 while connected to NATS.");
    describe_gauge!(
        PUBLISH_ACTIVE,
        "1 while this publisher publishes, 0 while it stands by for the lease."
    );
    describe_gauge!(PUBLISH_SYMBOLS, "Symbols in the publisher's quote map.");
    describe_gauge!(
        PROCESS_RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident memory size."
    );
    describe_gauge!(PROCESS_VIRTUAL_MEMORY, Unit::Bytes, "Virtual memory size.");
    describe_counter!(
        PROCESS_CPU,
        Unit::Seconds,
        "User and system CPU time spent."
    );
    describe_gauge!(PROCESS_OPEN_FDS, "Open file descriptors.");
    describe_gauge!(PROCESS_MAX_FDS, "Maximum number of open file descriptors.");
    describe_gauge!(
        PROCESS_START_TIME,
        Unit::Seconds,
        "Start time of the process since the Unix epoch."
    );
    describe_gauge!(PROCESS_THREADS, "Operating-system threads of the process.");
}
