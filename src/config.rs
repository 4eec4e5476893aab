//! Gateway configuration: defaults (DESIGN.md §5), the TOML file, and the
//! checks that turn it into values the rest of the code can trust.
//!
//! Settings are typed at load: a key such as `idle_timeout_ms` is read into
//! `idle_timeout: Duration` (a `0` that means "off" into `None`), addresses
//! into `SocketAddr`, so the running code never converts units. The TOML
//! keys stay as documented in `docs/config.md`.
//!
//! Unknown keys are errors. Every problem found is reported at once, each
//! naming its key; the binary then exits with status 64.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tickgate_feeds::FeedConfig;

pub use crate::auth::{AuthConfig, AuthMode};
pub use crate::publish::{PublishConfig, StreamStorage};

/// Everything a gateway needs to run. Every section and key is optional in
/// the file; missing ones take the defaults shown in `docs/config.md`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub limits: LimitsConfig,
    pub connection: ConnectionConfig,
    pub simulator: SimulatorConfig,
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
    pub tls: TlsConfig,
    /// Client authentication and entitlements (docs/security.md).
    pub auth: AuthConfig,
    /// The slow-consumer ladder: notices, rate lowering and the final close.
    pub slow_consumer: SlowConsumerConfig,
    /// Optional shedding of connections after scale-out.
    pub rebalance: RebalanceConfig,
    /// Upstream feeds (`[[feeds]]` tables, see docs/feeds.md). When empty,
    /// the `[simulator]` feed runs.
    pub feeds: Vec<FeedConfig>,
    /// `tickgate publish`: NATS JetStream stream, settings and credentials
    /// (docs/nats.md). The gateway itself ignores it.
    pub publish: PublishConfig,
}

/// The slow-consumer ladder (docs/protocol.md, "Slow consumers"). Step 1,
/// conflation, is always on; these settings govern steps 2 and 3.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlowConsumerConfig {
    /// A write the socket has not taken after this long marks the
    /// connection as behind (`blocked_write_ms`).
    #[serde(rename = "blocked_write_ms", with = "millis")]
    pub blocked_write: Duration,
    /// Step 2: behind for this long, the client gets a `slow` notice and its
    /// lowest-priority symbols are limited to `reduced_rate_hz`; each further
    /// period still behind slows the next priority class
    /// (`notice_after_ms`; 0 turns step 2 off: `None`).
    #[serde(rename = "notice_after_ms", with = "millis_or_off")]
    pub notice_after: Option<Duration>,
    /// Updates per second per symbol of a slowed symbol.
    pub reduced_rate_hz: f64,
    /// No blocked write for this long: full rate is restored (`slow` notice
    /// with `state: restored`; `recover_after_ms`).
    #[serde(rename = "recover_after_ms", with = "millis")]
    pub recover_after: Duration,
    /// Step 3: a write the socket has not taken for this long (the client
    /// stopped reading) closes the connection with 4008
    /// (`close_after_ms`; 0 = never: `None`).
    #[serde(rename = "close_after_ms", with = "millis_or_off")]
    pub close_after: Option<Duration>,
}

impl Default for SlowConsumerConfig {
    fn default() -> Self {
        Self {
            blocked_write: Duration::from_millis(100),
            notice_after: Some(Duration::from_secs(2)),
            reduced_rate_hz: 1.0,
            recover_after: Duration::from_secs(3),
            close_after: Some(Duration::from_secs(45)),
        }
    }
}

/// Optional rebalancing: shed connections above a per-instance target.
#[derive(Debug, Clone, PartialEq)]
pub struct RebalanceConfig {
    /// Connections this instance should hold; 0 turns rebalancing off.
    pub target_connections: usize,
    /// Shed only above the target plus this many percent.
    pub tolerance_pct: f64,
    /// At most this many connections closed (1013) per second.
    pub shed_per_second: NonZeroU32,
}

impl Default for RebalanceConfig {
    fn default() -> Self {
        Self {
            target_connections: 0,
            tolerance_pct: 10.0,
            shed_per_second: const { nonzero_u32(10) },
        }
    }
}

/// Listener addresses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Client listener: `/ws` and the dashboard page.
    pub listen: SocketAddr,
    /// Admin listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: SocketAddr,
}

/// Bounds on what clients may use.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Open WebSocket connections in total; more are refused with HTTP 503.
    pub max_connections: NonZeroUsize,
    /// Symbols one connection may hold; more get `too_many_subscriptions`.
    pub max_subscriptions_per_connection: NonZeroUsize,
    /// Largest client message (and frame) in bytes; larger closes with 1009.
    pub max_message_bytes: NonZeroUsize,
    /// Distinct symbols the store will track (feeds and client subscriptions
    /// to not-yet-seen symbols both count).
    pub max_symbols: NonZeroUsize,
    /// Time a client has to send its HTTP request headers
    /// (`handshake_timeout_ms`).
    pub handshake_timeout: Duration,
    /// Open WebSocket connections per client IP; more are refused with
    /// HTTP 429. 0 = no per-IP limit.
    pub max_connections_per_ip: u32,
    /// Request header naming the client IP, set by a trusted proxy in front
    /// (e.g. `X-Forwarded-For`; its last address is used). Unset = the TCP
    /// peer address. Set it only when every client comes through that proxy.
    pub client_ip_header: Option<String>,
    /// Browser origins allowed to open `/ws` (exact, or with `*` such as
    /// `https://*.example.com`); an upgrade whose `Origin` is not listed gets
    /// HTTP 403. Empty = every origin. Requests without `Origin` pass.
    pub allowed_origins: Vec<String>,
    /// Frames a connection may send per second, sustained (token bucket);
    /// more get `rate_limited`. 0 = no limit.
    pub max_requests_per_second: f64,
    /// Frames a connection may send at once before the rate applies.
    pub request_burst: NonZeroU32,
    /// Refused (`rate_limited`) frames within 10 s that close the
    /// connection with 1008.
    pub max_rate_limited: NonZeroU32,
}

/// Per-connection timers and buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionConfig {
    /// A `{"type":"heartbeat"}` frame is sent after this long without any
    /// frame (`heartbeat_interval_ms`).
    pub heartbeat_interval: Duration,
    /// A WebSocket ping is sent this often (`ping_interval_ms`).
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is
    /// closed (`idle_timeout_ms`).
    pub idle_timeout: Duration,
    /// Upper bound of a connection's outgoing WebSocket buffer.
    pub max_write_buffer_bytes: usize,
    /// A connection whose socket has not taken a batch for this long counts
    /// as a slow consumer (`tickgate_slow_consumers`; `slow_consumer_ms`).
    pub slow_consumer: Duration,
    /// Kernel send buffer of each client socket (0: the system default,
    /// which grows to megabytes). Smaller keeps a slow client's backlog in
    /// the gateway, where it conflates to the latest values.
    pub send_buffer_bytes: usize,
    /// `TCP_NOTSENT_LOWAT` of each client socket (0: the kernel's default,
    /// no limit): the kernel takes more data only while fewer bytes than
    /// this wait unsent, so a client that stops reading finds little stale
    /// data ahead of the latest values when it reads again.
    pub notsent_lowat_bytes: usize,
    /// After a write, a connection waits at least this long before the next
    /// one, so a busy connection sends fewer, fuller frames (0 = write as
    /// soon as anything changes). The first change after a quiet spell goes
    /// out at once (`min_write_interval_ms`).
    pub min_write_interval: Duration,
    /// Ceiling on updates per second per symbol for every subscription
    /// (clients may ask for less with `max_rate`); 0 = no ceiling.
    pub max_update_rate_hz: f64,
    /// Trades one connection may have waiting (subscriptions with
    /// `trades: true`); beyond it the oldest are dropped and announced in a
    /// `trades_lost` message.
    pub trade_buffer: NonZeroUsize,
}

/// The embedded simulator feed, used when no other feed is configured.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// Average ticks per second over the whole universe.
    pub ticks_per_second: f64,
    /// Seed of the random walk.
    pub seed: u64,
    /// Use only the first N symbols of the universe.
    pub symbols: Option<usize>,
    /// Occasional bursts of five times the rate.
    pub bursts: bool,
}

/// How the gateway stops.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// After SIGTERM/Ctrl-C, client connections are closed (1001) spread
    /// evenly over this window, so they reconnect elsewhere gradually.
    /// 0 closes them all at once (`drain_window_ms`).
    #[serde(rename = "drain_window_ms", with = "millis")]
    pub drain_window: Duration,
    /// After SIGTERM/Ctrl-C, time allowed for closing connections before
    /// exit (`grace_period_ms`).
    #[serde(rename = "grace_period_ms", with = "millis")]
    pub grace_period: Duration,
}

/// The TLS (`wss`) client listener, beside the plain one. On when `cert`
/// and `key` are set. Relative paths are relative to the working directory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Address of the TLS listener; [`TlsConfig::DEFAULT_LISTEN`] when unset.
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain: the server certificate, then intermediates.
    pub cert: Option<PathBuf>,
    /// PEM private key of the certificate (RSA, ECDSA or Ed25519; PKCS#8,
    /// PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// PEM bundle of the CAs whose client certificates are accepted. When
    /// set, a client without a valid certificate is refused (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// Time a client has to complete the TLS handshake
    /// (`handshake_timeout_ms`).
    #[serde(rename = "handshake_timeout_ms", with = "millis")]
    pub handshake_timeout: Duration,
    /// Reload the certificate and key when their files change. SIGHUP
    /// reloads them either way.
    pub watch: bool,
}

impl TlsConfig {
    /// Where the TLS listener binds when `listen` is not set.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8443);

    /// The TLS listener's address, or `None` when TLS is off (no
    /// certificate and key configured).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        (self.cert.is_some() && self.key.is_some())
            .then(|| self.listen.unwrap_or(Self::DEFAULT_LISTEN))
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (human-readable) or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `tickgate=debug,info`;
    /// `RUST_LOG` overrides it.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

/// `n`, which the caller knows is not zero.
const fn nonzero(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => panic!("zero"),
    }
}

/// `n`, which the caller knows is not zero.
const fn nonzero_u32(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => panic!("zero"),
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: const { nonzero(10_000) },
            max_subscriptions_per_connection: const { nonzero(1_000) },
            max_message_bytes: const { nonzero(256 * 1024) },
            max_symbols: const { nonzero(100_000) },
            handshake_timeout: Duration::from_secs(10),
            max_connections_per_ip: 0,
            client_ip_header: None,
            allowed_origins: Vec::new(),
            max_requests_per_second: 50.0,
            request_burst: const { nonzero_u32(100) },
            max_rate_limited: const { nonzero_u32(20) },
        }
    }
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_write_buffer_bytes: 16 * 1024 * 1024,
            slow_consumer: Duration::from_secs(1),
            max_update_rate_hz: 0.0,
            send_buffer_bytes: 64 * 1024,
            notsent_lowat_bytes: 16 * 1024,
            min_write_interval: Duration::from_millis(2),
            trade_buffer: const { nonzero(1024) },
        }
    }
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            ticks_per_second: 2_000.0,
            seed: 42,
            symbols: None,
            bursts: true,
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_window: Duration::ZERO,
            grace_period: Duration::from_secs(5),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            cert: None,
            key: None,
            client_ca: None,
            handshake_timeout: Duration::from_secs(10),
            watch: true,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

const MAX_MESSAGE_BYTES_RANGE: &str = "limits.max_message_bytes must be between 1024 and 67108864";
const MAX_SYMBOLS_RANGE: &str = "limits.max_symbols must be between 1 and 10000000";
const TRADE_BUFFER_RANGE: &str = "connection.trade_buffer must be between 1 and 1000000";
const SHED_PER_SECOND_RANGE: &str = "rebalance.shed_per_second must be between 1 and 10000";

/// The file as written: [`Config`] with the counts that must be positive
/// still plain numbers, so a zero is reported with every other problem
/// instead of stopping the parse.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ConfigFile {
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
    #[serde(with = "millis")]
    handshake_timeout_ms: Duration,
    max_connections_per_ip: u32,
    client_ip_header: Option<String>,
    allowed_origins: Vec<String>,
    max_requests_per_second: f64,
    request_burst: u32,
    max_rate_limited: u32,
}

impl Default for LimitsFile {
    fn default() -> Self {
        let d = LimitsConfig::default();
        Self {
            max_connections: d.max_connections.get(),
            max_subscriptions_per_connection: d.max_subscriptions_per_connection.get(),
            max_message_bytes: d.max_message_bytes.get(),
            max_symbols: d.max_symbols.get(),
            handshake_timeout_ms: d.handshake_timeout,
            max_connections_per_ip: d.max_connections_per_ip,
            client_ip_header: d.client_ip_header,
            allowed_origins: d.allowed_origins,
            max_requests_per_second: d.max_requests_per_second,
            request_burst: d.request_burst.get(),
            max_rate_limited: d.max_rate_limited.get(),
        }
    }
}

impl ConfigFile {
    /// The typed configuration and the zero counts found on the way, each
    /// named by its key. A zero is replaced by its default so the other
    /// checks can still run; the caller refuses the result if any problem
    /// was found.
    fn into_config(self) -> (Config, Vec<String>) {
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
            handshake_timeout: l.handshake_timeout_ms,
            max_connections_per_ip: l.max_connections_per_ip,
            client_ip_header: l.client_ip_header,
            allowed_origins: l.allowed_origins,
            max_requests_per_second: l.max_requests_per_second,
            request_burst,
            max_rate_limited,
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

/// A duration written in whole milliseconds (keys ending in `_ms`).
pub(crate) mod millis {
    use super::{Deserialize, Deserializer, Duration};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A duration in whole milliseconds where `0` turns the feature off.
pub(crate) mod millis_or_off {
    use super::{Deserialize, Deserializer, Duration};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let ms = u64::deserialize(d)?;
        Ok((ms > 0).then(|| Duration::from_millis(ms)))
    }
}

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
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        let (config, mut problems) = file.into_config();
        if let Err(ConfigError::Invalid(more)) = config.validate() {
            for problem in more {
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let config = Config::from_toml("", "test").expect("valid");
        assert_eq!(config, Config::default());
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.admin_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(config.limits.max_subscriptions_per_connection.get(), 1000);
    }

    #[test]
    fn the_example_config_is_valid_and_matches_the_defaults() {
        let text = include_str!("../config/tickgate.example.toml");
        assert_eq!(
            Config::from_toml(text, "example").expect("valid"),
            Config::default()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let cases = [
            ("[server]\nlisten = \"nowhere\"", "listen"),
            ("[server]\nlistne = \"127.0.0.1:1\"", "listne"),
            ("[nonsense]\n", "nonsense"),
            ("[limits]\nmax_connections = -1", "max_connections"),
            ("[limits]\nmax_connections = \"many\"", "max_connections"),
            ("[log]\nformat = \"xml\"", "format"),
            ("this is not toml", "test"),
        ];
        for (text, key) in cases {
            let err = Config::from_toml(text, "test").expect_err(text).to_string();
            assert!(err.contains(key), "{text:?} -> {err}");
        }
    }

    #[test]
    fn all_semantic_problems_are_reported_together() {
        let text = "[limits]\nmax_connections = 0\nmax_message_bytes = 10\n[connection]\nidle_timeout_ms = 100\nping_interval_ms = 200\nnotsent_lowat_bytes = 10\n[simulator]\nticks_per_second = -5.0";
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, "test") else {
            panic!("expected Invalid");
        };
        let all = problems.join("\n");
        for key in [
            "limits.max_connections",
            "limits.max_message_bytes",
            "connection.idle_timeout_ms",
            "connection.notsent_lowat_bytes",
            "simulator.ticks_per_second",
        ] {
            assert!(all.contains(key), "{key} missing from {all}");
        }
    }

    #[test]
    fn millisecond_keys_load_as_durations_and_zero_turns_a_step_off() {
        let text = "[connection]\nidle_timeout_ms = 61500\nmin_write_interval_ms = 0\n[slow_consumer]\nnotice_after_ms = 0\nclose_after_ms = 0\n[shutdown]\ndrain_window_ms = 250\n[auth]\nfirst_message_timeout_ms = 750";
        let config = Config::from_toml(text, "test").expect("valid");
        assert_eq!(
            config.connection.idle_timeout,
            Duration::from_millis(61_500)
        );
        assert_eq!(config.connection.min_write_interval, Duration::ZERO);
        assert_eq!(config.slow_consumer.notice_after, None);
        assert_eq!(config.slow_consumer.close_after, None);
        assert_eq!(config.shutdown.drain_window, Duration::from_millis(250));
        assert_eq!(
            config.auth.first_message_timeout,
            Duration::from_millis(750)
        );
        let err = Config::from_toml("[connection]\nidle_timeout_ms = -1", "test")
            .expect_err("negative")
            .to_string();
        assert!(err.contains("idle_timeout_ms"), "{err}");
    }

    #[test]
    fn zero_counts_are_reported_with_every_other_problem() {
        let text = "[limits]\nmax_connections = 0\nmax_symbols = 0\nrequest_burst = 0\nmax_rate_limited = 0\nmax_subscriptions_per_connection = 0\n[connection]\nslow_consumer_ms = 1\ntrade_buffer = 0\n[rebalance]\nshed_per_second = 0";
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, "test") else {
            panic!("expected Invalid");
        };
        assert_eq!(
            problems,
            [
                "limits.max_connections must be at least 1",
                "limits.max_subscriptions_per_connection must be at least 1",
                "limits.max_symbols must be between 1 and 10000000",
                TRADE_BUFFER_RANGE,
                "limits.request_burst must be at least 1",
                "limits.max_rate_limited must be at least 1",
                SHED_PER_SECOND_RANGE,
                "connection.slow_consumer_ms must be at least 10",
            ]
        );
        let text = "[limits]\nmax_message_bytes = 0";
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, "test") else {
            panic!("expected Invalid");
        };
        assert_eq!(problems, [MAX_MESSAGE_BYTES_RANGE], "reported once");
    }

    #[test]
    fn zero_socket_buffer_settings_leave_the_kernel_defaults() {
        let text = "[connection]\nsend_buffer_bytes = 0\nnotsent_lowat_bytes = 0";
        let config = Config::from_toml(text, "test").expect("valid");
        assert_eq!(config.connection.send_buffer_bytes, 0);
        assert_eq!(config.connection.notsent_lowat_bytes, 0);
        let text = "[connection]\nsend_buffer_bytes = 100";
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, "test") else {
            panic!("expected Invalid");
        };
        assert!(
            problems[0].contains("connection.send_buffer_bytes must be 0"),
            "{problems:?}"
        );
    }

    #[test]
    fn tls_is_off_by_default_and_on_with_a_certificate_and_key() {
        assert_eq!(Config::default().tls.listen_addr(), None);
        let config =
            Config::from_toml("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"", "test").expect("valid");
        assert_eq!(
            config.tls.listen_addr(),
            Some("127.0.0.1:8443".parse().expect("addr"))
        );
        let config = Config::from_toml(
            "[tls]\nlisten = \"0.0.0.0:443\"\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"",
            "test",
        )
        .expect("valid");
        assert_eq!(
            config.tls.listen_addr(),
            Some("0.0.0.0:443".parse().expect("addr"))
        );
    }

    #[test]
    fn tls_settings_that_cannot_work_are_named() {
        let cases = [
            ("[tls]\ncert = \"c.pem\"", "tls.cert and tls.key"),
            ("[tls]\nkey = \"k.pem\"", "tls.cert and tls.key"),
            ("[tls]\nlisten = \"127.0.0.1:8443\"", "tls.listen needs"),
            ("[tls]\nclient_ca = \"ca.pem\"", "tls.client_ca needs"),
            (
                "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nhandshake_timeout_ms = 5",
                "tls.handshake_timeout_ms",
            ),
            (
                "[tls]\nlisten = \"127.0.0.1:8080\"\ncert = \"c.pem\"\nkey = \"k.pem\"",
                "tls.listen must differ",
            ),
            ("[tls]\ncertificate = \"c.pem\"", "certificate"),
        ];
        for (text, expected) in cases {
            let err = Config::from_toml(text, "test").expect_err(text).to_string();
            assert!(err.contains(expected), "{text:?} -> {err}");
        }
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = Config::load(Path::new("/nonexistent/tickgate.toml")).expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/tickgate.toml"),
            "{err}"
        );
    }
}
