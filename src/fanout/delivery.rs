//! Delivery policy: how one subscription is delivered (rate cap, delta,
//! meta, trades), how a symbol ranks when its connection falls behind, and
//! the interval a symbol is held back for. Plain values; nothing here
//! touches a connection.

use std::time::Duration;

/// How a symbol ranks when its connection falls behind: the slow-consumer
/// ladder slows `Background` first and `Visible` last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Background = 0,
    #[default]
    Normal = 1,
    Visible = 2,
}

impl Priority {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Background => "background",
            Self::Normal => "normal",
            Self::Visible => "visible",
        }
    }

    /// Every rank, lowest first.
    pub const ALL: [Priority; 3] = [Self::Background, Self::Normal, Self::Visible];
}

/// How one subscription is delivered. The default is the contract
/// behaviour: every change, as soon as the socket takes it, full quotes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Delivery {
    /// Rate cap: at most one update of the symbol per interval; the latest
    /// value is what goes out at each slot.
    pub min_interval: Option<Duration>,
    /// Updates carry only the fields that changed since the quote this
    /// client last received (plus `symbol`, `seq`, `ts`).
    pub delta: bool,
    /// Updates carry `conflated` (ticks skipped for this client since its
    /// previous update of the symbol) and `received_ts` (gateway receive
    /// time, µs).
    pub meta: bool,
    /// Every trade of the symbol is delivered, in order, in `trades` frames.
    pub trades: bool,
    /// Rank for the slow-consumer ladder: `None` keeps the rank of a held
    /// symbol (`Normal` for a new one); giving one opts the connection into
    /// step 2 of the ladder.
    pub priority: Option<Priority>,
}

impl Delivery {
    /// Whether quotes must be encoded for this connection alone.
    pub(crate) fn personal(&self) -> bool {
        self.delta || self.meta
    }
}

/// The slow-consumer ladder's hold on this connection: symbols ranked below
/// `level` go out at most once per `interval`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Slowdown {
    /// 0 = full rate; 1 slows `Background`, 2 also `Normal`, 3 everything.
    pub(crate) level: u8,
    pub(crate) interval: Duration,
}

/// The interval a symbol may not be sent more often than: its rate cap, or
/// the ladder's when that is longer and the symbol ranks below its level.
pub(crate) fn interval_of(
    delivery: &Delivery,
    priority: Priority,
    slowdown: Slowdown,
) -> Option<Duration> {
    let ladder = (priority as u8) < slowdown.level;
    let slowed = ladder.then_some(slowdown.interval);
    delivery.min_interval.max(slowed)
}
