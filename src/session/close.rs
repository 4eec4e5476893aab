//! Why a connection ends: the metric label and the close frame (code and
//! reason) the client receives.

/// Why a connection ended; decides the close frame and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent a close frame or the TCP stream ended.
    ClientClosed,
    /// The gateway is shutting down (close 1001).
    Shutdown,
    /// Nothing received for longer than the idle timeout (close 1000).
    IdleTimeout,
    /// A frame or message above the size limit (close 1009).
    TooBig,
    /// A WebSocket protocol violation, such as an unmasked client frame (1002).
    ProtocolError,
    /// Writing to the socket failed: the peer is gone.
    WriteFailed,
    /// No valid first `auth` message, or a request before it (close 1008).
    Unauthorized,
    /// The token expired and was not refreshed in time (close 1008).
    TokenExpired,
    /// Kept sending faster than the request rate (close 1008).
    RateLimited,
    /// Shed to rebalance connections across instances (close 1013).
    Rebalance,
    /// Closed by an operator through the admin API (close 1008).
    Operator,
    /// Stopped reading for longer than `slow_consumer.close_after_ms`
    /// (close 4008).
    SlowConsumer,
}

/// Close code of a slow consumer (step 3 of the ladder).
pub const SLOW_CONSUMER_CLOSE: u16 = 4008;

/// WebSocket close codes (RFC 6455 §7.4.1) this module uses.
const NORMAL: u16 = 1000;
const AWAY: u16 = 1001;
const PROTOCOL: u16 = 1002;
const POLICY: u16 = 1008;
const SIZE: u16 = 1009;
const AGAIN: u16 = 1013;

impl CloseReason {
    /// Metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::Shutdown => "shutdown",
            Self::IdleTimeout => "idle_timeout",
            Self::TooBig => "message_too_big",
            Self::ProtocolError => "protocol_error",
            Self::WriteFailed => "write_failed",
            Self::Unauthorized => "unauthorized",
            Self::TokenExpired => "token_expired",
            Self::RateLimited => "rate_limited",
            Self::Rebalance => "rebalance",
            Self::Operator => "operator",
            Self::SlowConsumer => "slow_consumer",
        }
    }

    /// The close frame's code and reason; `None` when no close frame is
    /// sent (the peer closed or is gone).
    pub fn close_frame(&self) -> Option<(u16, &'static str)> {
        Some(match self {
            Self::ClientClosed | Self::WriteFailed => return None,
            Self::Shutdown => (AWAY, "server shutting down"),
            Self::IdleTimeout => (NORMAL, "idle timeout"),
            Self::TooBig => (SIZE, "message too big"),
            Self::ProtocolError => (PROTOCOL, "protocol error"),
            Self::Unauthorized => (POLICY, "unauthorized"),
            Self::TokenExpired => (POLICY, "token expired"),
            Self::RateLimited => (POLICY, "rate limit exceeded"),
            Self::Rebalance => (AGAIN, "rebalancing: reconnect, another instance has room"),
            Self::Operator => (POLICY, "closed by the operator"),
            Self::SlowConsumer => (
                SLOW_CONSUMER_CLOSE,
                "slow consumer: stopped reading for longer than the gateway allows",
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_closes_use_1008_and_say_why() {
        assert_eq!(
            CloseReason::Unauthorized.close_frame(),
            Some((1008, "unauthorized"))
        );
        assert_eq!(
            CloseReason::TokenExpired.close_frame(),
            Some((1008, "token expired"))
        );
        assert_eq!(
            CloseReason::RateLimited.close_frame(),
            Some((1008, "rate limit exceeded"))
        );
    }

    #[test]
    fn a_peer_that_left_gets_no_close_frame() {
        assert_eq!(CloseReason::ClientClosed.close_frame(), None);
        assert_eq!(CloseReason::WriteFailed.close_frame(), None);
    }

    #[test]
    fn shutdown_rebalance_and_slow_consumer_have_their_own_codes() {
        assert_eq!(CloseReason::Shutdown.close_frame().map(|f| f.0), Some(1001));
        assert_eq!(
            CloseReason::Rebalance.close_frame().map(|f| f.0),
            Some(1013)
        );
        assert_eq!(
            CloseReason::SlowConsumer.close_frame().map(|f| f.0),
            Some(SLOW_CONSUMER_CLOSE)
        );
        assert_eq!(CloseReason::TooBig.close_frame().map(|f| f.0), Some(1009));
        assert_eq!(
            CloseReason::IdleTimeout.close_frame().map(|f| f.0),
            Some(1000)
        );
    }
}
