//! The configuration file as written in TOML, and its conversion into the
//! typed [`Config`]: counts that must be positive are read as plain numbers
//! here, so a zero is reported with every other problem.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use serde::Deserialize;
use tickgate_feeds::FeedConfig;

use super::validate::{
    MAX_INTEREST_RANGE, MAX_MESSAGE_BYTES_RANGE, MAX_SYMBOLS_RANGE, SHED_PER_SECOND_RANGE,
    TRADE_BUFFER_RANGE,
};
use super::{
    AuthConfig, Config, ConnectionConfig, LimitsConfig, LogConfig, PublishConfig, RebalanceConfig,
    ServerConfig, ShutdownConfig, SimulatorConfig, SlowConsumerConfig, TlsConfig, millis,
};

/// The file as written: [`Config`] with the counts that must be positive
/// still plain numbers, so a zero is reported with every other problem
/// instead of stopping the parse.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ConfigFile {
    server: ServerConfig,
    limits: LimitsFile,
    connection: ConnectionFile,
    simulator: SimulatorConfig,
    shutdown: ShutdownConfig,
    log: LogConfig,
    tls: TlsConfig,
    auth: AuthConfig,
    slow_consumer: SlowConsumerConfig,
    rebalance: RebalanceFile,
    feeds: Vec<FeedConfig>,
    publish: PublishConfig,
}

/// `[connection]` as written; see [`ConnectionConfig`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ConnectionFile {
    #[serde(with = "millis")]
    heartbeat_interval_ms: Duration,
    #[serde(with = "millis")]
    ping_interval_ms: Duration,
    #[serde(with = "millis")]
    idle_timeout_ms: Duration,
    max_write_buffer_bytes: usize,
    #[serde(with = "millis")]
    slow_consumer_ms: Duration,
    send_buffer_bytes: usize,
    notsent_lowat_bytes: usize,
    #[serde(with = "millis")]
    min_write_interval_ms: Duration,
    ack_window_frames: u64,
    max_update_rate_hz: f64,
    trade_buffer: usize,
}

impl Default for ConnectionFile {
    fn default() -> Self {
        let d = ConnectionConfig::default();
        Self {
            heartbeat_interval_ms: d.heartbeat_interval,
            ping_interval_ms: d.ping_interval,
            idle_timeout_ms: d.idle_timeout,
            max_write_buffer_bytes: d.max_write_buffer_bytes,
            slow_consumer_ms: d.slow_consumer,
            send_buffer_bytes: d.send_buffer_bytes,
            notsent_lowat_bytes: d.notsent_lowat_bytes,
            min_write_interval_ms: d.min_write_interval,
            ack_window_frames: d.ack_window_frames,
            max_update_rate_hz: d.max_update_rate_hz,
            trade_buffer: d.trade_buffer.get(),
        }
    }
}

/// `[rebalance]` as written; see [`RebalanceConfig`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RebalanceFile {
    target_connections: usize,
    tolerance_pct: f64,
    shed_per_second: u32,
}

impl Default for RebalanceFile {
    fn default() -> Self {
        let d = RebalanceConfig::default();
        Self {
            target_connections: d.target_connections,
            tolerance_pct: d.tolerance_pct,
            shed_per_second: d.shed_per_second.get(),
        }
    }
}

/// `[limits]` as written; see [`LimitsConfig`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsFile {
    max_connections: usize,
    max_subscriptions_per_connection: usize,
    max_message_bytes: usize,
    max_symbols: usize,
    max_interest: usize,
    #[serde(with = "millis")]
    handshake_timeout_ms: Duration,
    max_connections_per_ip: u32,
    client_ip_header: Option<String>,
    allowed_origins: Vec<String>,
    max_requests_per_second: f64,
    request_burst: u32,
    max_rate_limited: u32,
    max_symbols_per_second: f64,
    symbol_burst: u32,
}

impl Default for LimitsFile {
    fn default() -> Self {
        let d = LimitsConfig::default();
        Self {
            max_connections: d.max_connections.get(),
            max_subscriptions_per_connection: d.max_subscriptions_per_connection.get(),
            max_message_bytes: d.max_message_bytes.get(),
            max_symbols: d.max_symbols.get(),
            max_interest: d.max_interest.get(),
            handshake_timeout_ms: d.handshake_timeout,
            max_connections_per_ip: d.max_connections_per_ip,
            client_ip_header: d.client_ip_header,
            allowed_origins: d.allowed_origins,
            max_requests_per_second: d.max_requests_per_second,
            request_burst: d.request_burst.get(),
            max_rate_limited: d.max_rate_limited.get(),
            max_symbols_per_second: d.max_symbols_per_second,
            symbol_burst: d.symbol_burst.get(),
        }
    }
}

impl ConfigFile {
    /// The typed configuration and the zero counts found on the way, each
    /// named by its key. A zero is replaced by its default so the other
    /// checks can still run; the caller refuses the result if any problem
    /// was found.
    pub(super) fn into_config(self) -> (Config, Vec<String>) {
        let mut problems = Vec::new();
        let d = LimitsConfig::default();
        let l = self.limits;
        let mut positive = |n: usize, default: NonZeroUsize, problem: &str| {
            NonZeroUsize::new(n).unwrap_or_else(|| {
                problems.push(problem.to_owned());
                default
            })
        };
        let max_connections = positive(
            l.max_connections,
            d.max_connections,
            "limits.max_connections must be at least 1",
        );
        let max_subscriptions_per_connection = positive(
            l.max_subscriptions_per_connection,
            d.max_subscriptions_per_connection,
            "limits.max_subscriptions_per_connection must be at least 1",
        );
        let max_message_bytes = positive(
            l.max_message_bytes,
            d.max_message_bytes,
            MAX_MESSAGE_BYTES_RANGE,
        );
        let max_symbols = positive(l.max_symbols, d.max_symbols, MAX_SYMBOLS_RANGE);
        let max_interest = positive(l.max_interest, d.max_interest, MAX_INTEREST_RANGE);
        let c = self.connection;
        let trade_buffer = positive(
            c.trade_buffer,
            ConnectionConfig::default().trade_buffer,
            TRADE_BUFFER_RANGE,
        );
        let mut positive_u32 = |n: u32, default: NonZeroU32, problem: &str| {
            NonZeroU32::new(n).unwrap_or_else(|| {
                problems.push(problem.to_owned());
                default
            })
        };
        let request_burst = positive_u32(
            l.request_burst,
            d.request_burst,
            "limits.request_burst must be at least 1",
        );
        let max_rate_limited = positive_u32(
            l.max_rate_limited,
            d.max_rate_limited,
            "limits.max_rate_limited must be at least 1",
        );
        let symbol_burst = positive_u32(
            l.symbol_burst,
            d.symbol_burst,
            "limits.symbol_burst must be at least 1",
        );
        let r = self.rebalance;
        let shed_per_second = positive_u32(
            r.shed_per_second,
            RebalanceConfig::default().shed_per_second,
            SHED_PER_SECOND_RANGE,
        );
        let limits = LimitsConfig {
            max_connections,
            max_subscriptions_per_connection,
            max_message_bytes,
            max_symbols,
            max_interest,
            handshake_timeout: l.handshake_timeout_ms,
            max_connections_per_ip: l.max_connections_per_ip,
            client_ip_header: l.client_ip_header,
            allowed_origins: l.allowed_origins,
            max_requests_per_second: l.max_requests_per_second,
            request_burst,
            max_rate_limited,
            max_symbols_per_second: l.max_symbols_per_second,
            symbol_burst,
        };
        let config = Config {
            server: self.server,
            limits,
            connection: ConnectionConfig {
                heartbeat_interval: c.heartbeat_interval_ms,
                ping_interval: c.ping_interval_ms,
                idle_timeout: c.idle_timeout_ms,
                max_write_buffer_bytes: c.max_write_buffer_bytes,
                slow_consumer: c.slow_consumer_ms,
                send_buffer_bytes: c.send_buffer_bytes,
                notsent_lowat_bytes: c.notsent_lowat_bytes,
                min_write_interval: c.min_write_interval_ms,
                ack_window_frames: c.ack_window_frames,
                max_update_rate_hz: c.max_update_rate_hz,
                trade_buffer,
            },
            simulator: self.simulator,
            shutdown: self.shutdown,
            log: self.log,
            tls: self.tls,
            auth: self.auth,
            slow_consumer: self.slow_consumer,
            rebalance: RebalanceConfig {
                target_connections: r.target_connections,
                tolerance_pct: r.tolerance_pct,
                shed_per_second,
            },
            feeds: self.feeds,
            publish: self.publish,
        };
        (config, problems)
    }
}
