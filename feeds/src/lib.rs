//! tickgate-feeds: the normalized market-data model and the upstream feed
//! adapters that produce it.
//!
//! Adapters turn upstream messages into [`Tick`]s and hand them on in
//! [`TickBatch`]es over a bounded channel: when the gateway falls behind, the
//! adapter waits rather than buffering without limit. Nothing here knows about
//! clients.
//!
//! - [`model`]: `Symbol`, `Tick`, `Quote` and the merge rule.
//! - [`sim`]: the embedded simulator, the default feed.

pub mod config;
pub mod json;
pub mod model;
pub mod parse;
pub mod sim;
pub mod spec;
pub mod venue;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use model::{Quote, Symbol, SymbolError, Tick, TickError, TickKind};

/// Ticks from one feed, in the order the feed produced them.
#[derive(Debug, Clone)]
pub struct TickBatch {
    /// The configured feed name (a bounded metric label).
    pub feed: Arc<str>,
    pub ticks: Vec<Tick>,
}

/// What a feed hands the gateway: ticks, or a change of its own state.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// Ticks in the order the feed produced them.
    Ticks(TickBatch),
    /// The feed's connection state changed.
    State { feed: Arc<str>, state: FeedState },
}

/// Where a feed stands, as reported to `/readyz`, metrics and clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedState {
    /// Connecting or reconnecting; no data yet on this connection.
    Connecting,
    /// Delivering data.
    Live,
    /// Connected but silent for longer than its staleness window.
    Stale,
    /// Disconnected; retrying with backoff.
    Down,
}

impl FeedState {
    /// Stable lowercase name used in status messages and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Stale => "stale",
            Self::Down => "down",
        }
    }
}

/// The bounded channel every feed writes into. A full channel makes the feed
/// wait: the gateway never buffers ticks without limit.
pub type FeedSender = tokio::sync::mpsc::Sender<FeedEvent>;

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
