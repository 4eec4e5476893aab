//! The checks a parsed configuration must pass, and [`ConfigError`], which
//! reports every problem found at once, each naming its key.

use std::time::Duration;

use super::Config;

pub(super) const MAX_MESSAGE_BYTES_RANGE: &str =
    "limits.max_message_bytes must be between 1024 and 67108864";
pub(super) const MAX_SYMBOLS_RANGE: &str = "limits.max_symbols must be between 1 and 10000000";
pub(super) const MAX_INTEREST_RANGE: &str = "limits.max_interest must be between 1 and 10000000";
pub(super) const TRADE_BUFFER_RANGE: &str = "connection.trade_buffer must be between 1 and 1000000";
pub(super) const SHED_PER_SECOND_RANGE: &str =
    "rebalance.shed_per_second must be between 1 and 10000";

/// Why a configuration cannot be used. Each problem names its key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("config file {path}: {reason}")]
    Syntax { path: String, reason: String },
    /// Values that parse but cannot work together, one line per problem.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

impl Config {
    /// Checks every value; reports all problems together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_owned());
            }
        };
        // Zero counts were refused when the file was read (LimitsFile).
        let l = &self.limits;
        check(
            (1024..=64 * 1024 * 1024).contains(&l.max_message_bytes.get()),
            MAX_MESSAGE_BYTES_RANGE,
        );
        check(l.max_symbols.get() <= 10_000_000, MAX_SYMBOLS_RANGE);
        check(l.max_interest.get() <= 10_000_000, MAX_INTEREST_RANGE);
        check(
            l.handshake_timeout >= Duration::from_millis(100),
            "limits.handshake_timeout_ms must be at least 100",
        );
        check(
            l.max_requests_per_second.is_finite()
                && (0.0..=100_000.0).contains(&l.max_requests_per_second),
            "limits.max_requests_per_second must be between 0 (no limit) and 100000",
        );
        check(
            l.max_symbols_per_second.is_finite()
                && (0.0..=10_000_000.0).contains(&l.max_symbols_per_second),
            "limits.max_symbols_per_second must be between 0 (no limit) and 10000000",
        );
        check(
            usize::try_from(l.symbol_burst.get())
                .is_ok_and(|burst| burst >= l.max_subscriptions_per_connection.get()),
            "limits.symbol_burst must be at least limits.max_subscriptions_per_connection, \
             so a client can subscribe its whole allowance in one request",
        );
        check(
            l.client_ip_header
                .as_deref()
                .is_none_or(|h| hyper::header::HeaderName::from_bytes(h.as_bytes()).is_ok()),
            "limits.client_ip_header is not a valid header name",
        );
        let c = &self.connection;
        check(
            c.heartbeat_interval >= Duration::from_millis(100),
            "connection.heartbeat_interval_ms must be at least 100",
        );
        check(
            c.ping_interval >= Duration::from_millis(100),
            "connection.ping_interval_ms must be at least 100",
        );
        check(
            c.idle_timeout > c.ping_interval,
            "connection.idle_timeout_ms must be greater than connection.ping_interval_ms (pongs keep a connection alive)",
        );
        check(
            c.max_write_buffer_bytes >= 64 * 1024,
            "connection.max_write_buffer_bytes must be at least 65536",
        );
        check(
            c.slow_consumer >= Duration::from_millis(10),
            "connection.slow_consumer_ms must be at least 10",
        );
        check(
            c.send_buffer_bytes == 0 || (4096..=64 * 1024 * 1024).contains(&c.send_buffer_bytes),
            "connection.send_buffer_bytes must be 0 (system default) or between 4096 and 67108864",
        );
        check(
            c.notsent_lowat_bytes == 0
                || (1024..=64 * 1024 * 1024).contains(&c.notsent_lowat_bytes),
            "connection.notsent_lowat_bytes must be 0 (no limit) or between 1024 and 67108864",
        );
        check(
            c.min_write_interval <= Duration::from_secs(1),
            "connection.min_write_interval_ms must be at most 1000",
        );
        check(
            c.ack_window_frames <= 1_000_000,
            "connection.ack_window_frames must be at most 1000000 (0 turns acknowledgements off)",
        );
        check(
            c.max_update_rate_hz.is_finite() && (0.0..=1000.0).contains(&c.max_update_rate_hz),
            "connection.max_update_rate_hz must be between 0 (no ceiling) and 1000",
        );
        check(c.trade_buffer.get() <= 1_000_000, TRADE_BUFFER_RANGE);
        let l = &self.slow_consumer;
        check(
            (Duration::from_millis(1)..=Duration::from_secs(60)).contains(&l.blocked_write),
            "slow_consumer.blocked_write_ms must be between 1 and 60000",
        );
        check(
            l.reduced_rate_hz.is_finite() && l.reduced_rate_hz > 0.0 && l.reduced_rate_hz <= 1000.0,
            "slow_consumer.reduced_rate_hz must be above 0 and at most 1000",
        );
        check(
            l.recover_after >= Duration::from_millis(1),
            "slow_consumer.recover_after_ms must be at least 1",
        );
        check(
            (l.recover_after..=Duration::from_secs(3_600)).contains(&l.max_recover_after),
            "slow_consumer.max_recover_after_ms must be between slow_consumer.recover_after_ms and 3600000",
        );
        check(
            l.close_after
                .is_none_or(|close| close > l.notice_after.unwrap_or(Duration::ZERO)),
            "slow_consumer.close_after_ms must be 0 (never) or greater than slow_consumer.notice_after_ms",
        );
        let r = &self.rebalance;
        check(
            r.tolerance_pct.is_finite() && (0.0..=1000.0).contains(&r.tolerance_pct),
            "rebalance.tolerance_pct must be between 0 and 1000",
        );
        check(r.shed_per_second.get() <= 10_000, SHED_PER_SECOND_RANGE);
        let s = &self.simulator;
        check(
            s.ticks_per_second.is_finite() && (0.0..=10_000_000.0).contains(&s.ticks_per_second),
            "simulator.ticks_per_second must be between 0 and 10000000",
        );
        check(s.symbols != Some(0), "simulator.symbols must be at least 1");
        check(
            self.shutdown.drain_window <= Duration::from_secs(3600),
            "shutdown.drain_window_ms must be at most 3600000 (one hour)",
        );
        check(
            self.shutdown.grace_period <= Duration::from_secs(3600),
            "shutdown.grace_period_ms must be at most 3600000 (one hour)",
        );
        check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level is not a valid filter (try \"info\" or \"tickgate=debug,info\")",
        );
        let t = &self.tls;
        check(
            t.cert.is_some() == t.key.is_some(),
            "tls.cert and tls.key must be set together (--tls-cert, --tls-key)",
        );
        check(
            t.listen.is_none() || t.cert.is_some() || t.key.is_some(),
            "tls.listen needs tls.cert and tls.key (--tls-cert, --tls-key)",
        );
        check(
            t.client_ca.is_none() || t.cert.is_some() || t.key.is_some(),
            "tls.client_ca needs tls.cert and tls.key (--tls-cert, --tls-key)",
        );
        check(
            t.handshake_timeout >= Duration::from_millis(100),
            "tls.handshake_timeout_ms must be at least 100",
        );
        if let Some(addr) = t.listen_addr().filter(|addr| addr.port() != 0) {
            check(
                addr != self.server.listen && addr != self.server.admin_listen,
                "tls.listen must differ from server.listen and server.admin_listen",
            );
        }
        if let Err(errors) = tickgate_feeds::validate_all(&self.feeds) {
            problems.extend(errors.iter().map(|e| format!("feeds: {e}")));
        }
        problems.extend(self.publish.problems());
        problems.extend(crate::limits::origin_problems(&self.limits.allowed_origins));
        problems.extend(self.auth.problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}
