//! The typed sections of [`Config`](super::Config) and their documented
//! defaults: durations as `Duration`, counts that must be positive as
//! `NonZero`, addresses as `SocketAddr`.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{millis, millis_or_off};

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
    /// Hysteresis: a connection that falls behind again within the quiet
    /// window that restored it goes straight back to the step it held, and
    /// its next quiet window is twice as long, up to this
    /// (`max_recover_after_ms`; equal to `recover_after_ms` turns it off).
    #[serde(rename = "max_recover_after_ms", with = "millis")]
    pub max_recover_after: Duration,
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
            max_recover_after: Duration::from_secs(30),
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
    /// Distinct symbols the store will track: only symbols feeds publish
    /// count; clients cannot use this up.
    pub max_symbols: NonZeroUsize,
    /// Distinct symbols no feed has published yet that clients may wait for
    /// (subscribed, listed under `no_data`), over all connections; more get
    /// `invalid_symbol`.
    pub max_interest: NonZeroUsize,
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
    /// Symbols a connection's `subscribe` and `unsubscribe` requests may
    /// name per second, sustained (token bucket); a request over it is
    /// refused whole with `rate_limited`. 0 = no limit.
    pub max_symbols_per_second: f64,
    /// Symbols a connection may name at once before the rate applies; at
    /// least `max_subscriptions_per_connection`, so a client can always
    /// subscribe its whole allowance in one request.
    pub symbol_burst: NonZeroU32,
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
    /// An optional floor between two writes of one connection
    /// (`min_write_interval_ms`). 0, the default, is adaptive coalescing: a
    /// change goes out at once when the socket is idle, and changes conflate
    /// into one frame only while a write is in flight. Above 0, a connection
    /// that wrote less than this long ago also waits out the rest of it; the
    /// first change after a quiet spell still goes out at once.
    pub min_write_interval: Duration,
    /// Messages a connection whose client acknowledges what it read
    /// (`{"op":"ack"}`) may have unacknowledged; the rest conflates in its
    /// outbox until the next acknowledgement (`ack_window_frames`). 0 turns
    /// acknowledgements off (they are accepted and ignored).
    pub ack_window_frames: u64,
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
            max_interest: const { nonzero(100_000) },
            handshake_timeout: Duration::from_secs(10),
            max_connections_per_ip: 0,
            client_ip_header: None,
            allowed_origins: Vec::new(),
            max_requests_per_second: 50.0,
            request_burst: const { nonzero_u32(100) },
            max_rate_limited: const { nonzero_u32(20) },
            max_symbols_per_second: 2_000.0,
            symbol_burst: const { nonzero_u32(5_000) },
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
            min_write_interval: Duration::ZERO,
            ack_window_frames: 8,
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
