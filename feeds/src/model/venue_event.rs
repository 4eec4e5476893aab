//! Venue messages that are neither quotes nor trades: trading status,
//! corrections and cancels (decoded by the adapters; docs/feeds.md).

use serde::Serialize;

use super::Symbol;

/// Whether a symbol may trade, as a venue's halt/resume messages say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TradingStatus {
    /// Trading halted or paused (a regulatory halt, a LULD pause).
    Halted,
    /// Trading resumed.
    Trading,
}

/// A venue message about a symbol that is neither a quote nor a trade but
/// changes how its prices must be read. Decoded by the adapters (Alpaca, and
/// the generic format's `trading` field) and handed to the gateway in
/// [`FeedEvent::Venue`](crate::FeedEvent::Venue), which applies them
/// (docs/feeds.md, "Halts, corrections and cancels").
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VenueEvent {
    /// Trading in `symbol` halted or resumed.
    TradingStatus {
        symbol: Symbol,
        status: TradingStatus,
        ts: Option<u64>,
    },
    /// An earlier trade was corrected: its price and size are replaced.
    TradeCorrected {
        symbol: Symbol,
        /// The venue's id of the corrected trade.
        trade_id: Option<u64>,
        original_price: Option<f64>,
        original_size: Option<f64>,
        price: Option<f64>,
        size: Option<f64>,
        ts: Option<u64>,
    },
    /// An earlier trade was cancelled (or declared an error): it never
    /// happened, so it must not stand as `last`.
    TradeCancelled {
        symbol: Symbol,
        trade_id: Option<u64>,
        price: Option<f64>,
        size: Option<f64>,
        ts: Option<u64>,
    },
}

impl TradingStatus {
    /// The wire name: `halted` or `trading`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Halted => "halted",
            Self::Trading => "trading",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "halted" => Some(Self::Halted),
            "trading" => Some(Self::Trading),
            _ => None,
        }
    }
}

impl VenueEvent {
    /// Stable snake_case name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TradingStatus { .. } => "trading_status",
            Self::TradeCorrected { .. } => "trade_corrected",
            Self::TradeCancelled { .. } => "trade_cancelled",
        }
    }

    /// The symbol the event is about.
    pub fn symbol(&self) -> Symbol {
        match self {
            Self::TradingStatus { symbol, .. }
            | Self::TradeCorrected { symbol, .. }
            | Self::TradeCancelled { symbol, .. } => *symbol,
        }
    }

    /// The same event about `renamed` (a feed's `prefix`).
    #[must_use]
    pub fn with_symbol(mut self, renamed: Symbol) -> Self {
        match &mut self {
            Self::TradingStatus { symbol, .. }
            | Self::TradeCorrected { symbol, .. }
            | Self::TradeCancelled { symbol, .. } => *symbol = renamed,
        }
        self
    }
}
