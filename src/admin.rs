//! Introspection and control on the admin listener: who is connected and
//! how they are doing, which symbols are most wanted, closing one
//! connection, and the optional shedding that rebalances connections after
//! scale-out. Never on the client listener; keep the admin port private.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use crate::config::RebalanceConfig;
use crate::fanout::Kick;
use crate::fanout::SnapshotStore;
use crate::fanout::outbox::ModeCounts;
use crate::fanout::subscriptions::lock_subscribers;
use crate::registry::Connections;
use crate::shutdown::Shutdown;

/// One row of `GET /connections`.
#[derive(Debug, Serialize)]
pub struct ConnectionInfo {
    pub id: u64,
    pub age_seconds: f64,
    pub subscriptions: usize,
    /// Symbols changed but not yet sent (at most `subscriptions`).
    pub pending: usize,
    /// How long the current write has been blocked (0 when not writing).
    pub blocked_ms: u64,
    pub inflight_bytes: u64,
    pub updates_sent: u64,
    pub conflated: u64,
    /// Whether it counts in `tickgate_slow_consumers`.
    pub slow: bool,
    /// Slow-consumer ladder: 0 = full rate, 1 to 3 = priority classes slowed.
    pub ladder_level: u8,
    /// Subscriptions by delivery mode.
    pub mode: ModeCounts,
    /// Trades delivered, lost to a full trade buffer, and waiting now.
    pub trades_sent: u64,
    pub trades_lost: u64,
    pub trades_waiting: usize,
}

/// Every open connection, oldest first; `slow_after` is how long a blocked
/// write makes a connection count as slow.
pub fn connections(connections: &Connections, slow_after: Duration) -> Vec<ConnectionInfo> {
    let now = std::time::Instant::now();
    let mut rows: Vec<ConnectionInfo> = connections
        .all()
        .iter()
        .map(|mailbox| {
            let (subscriptions, pending, mode, trades_waiting) = {
                let outbox = mailbox.lock();
                (
                    outbox.subscription_count(),
                    outbox.pending(),
                    outbox.mode_counts(),
                    outbox.trades_waiting(),
                )
            };
            let blocked = mailbox.stats.blocked_for(now).unwrap_or_default();
            ConnectionInfo {
                id: mailbox.id,
                age_seconds: mailbox.stats.opened.elapsed().as_secs_f64(),
                subscriptions,
                pending,
                blocked_ms: blocked.as_millis() as u64,
                inflight_bytes: mailbox.stats.inflight_bytes(),
                updates_sent: mailbox.stats.updates_sent.load(Ordering::Relaxed),
                conflated: mailbox.stats.conflated.load(Ordering::Relaxed),
                slow: blocked >= slow_after,
                ladder_level: mailbox.stats.ladder_level.load(Ordering::Relaxed),
                mode,
                trades_sent: mailbox.stats.trades_sent.load(Ordering::Relaxed),
                trades_lost: mailbox.stats.trades_lost.load(Ordering::Relaxed),
                trades_waiting,
            }
        })
        .collect();
    rows.sort_by_key(|row| row.id);
    rows
}

/// One row of `GET /symbols`.
#[derive(Debug, Serialize)]
pub struct SymbolInfo {
    pub symbol: String,
    pub subscribers: usize,
    /// Latest seq (0 before any data).
    pub seq: u64,
}

/// The `top` symbols with the most subscribers.
pub fn top_symbols(store: &SnapshotStore, top: usize) -> Vec<SymbolInfo> {
    let mut rows: Vec<SymbolInfo> = store
        .slots()
        .iter()
        .map(|slot| SymbolInfo {
            symbol: slot.symbol.to_string(),
            subscribers: lock_subscribers(slot).len(),
            seq: slot.latest().map_or(0, |s| s.quote.seq),
        })
        .filter(|row| row.subscribers > 0)
        .collect();
    rows.sort_by(|a, b| {
        b.subscribers
            .cmp(&a.subscribers)
            .then_with(|| a.symbol.cmp(&b.symbol))
    });
    rows.truncate(top);
    rows
}

/// What a path under `/connections/` names for `POST …/close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseTarget {
    /// A connection id: ASCII decimal digits that fit a `u64`.
    Id(u64),
    /// One path segment stands where the id goes but is not one (`x`,
    /// `+5`, `-1`, a number past `u64`): 400.
    BadId,
}

/// Reads `/connections/{id}/close` exactly: nothing before, nothing after
/// `close`, one segment between. `None` for any other path (404), so
/// `/connections/5/close/close` closes nothing.
pub fn close_target(path: &str) -> Option<CloseTarget> {
    let id = path.strip_prefix("/connections/")?.strip_suffix("/close")?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    if !id.bytes().all(|b| b.is_ascii_digit()) {
        return Some(CloseTarget::BadId);
    }
    Some(id.parse().map_or(CloseTarget::BadId, CloseTarget::Id))
}

/// Asks connection `id` to close (1008, "closed by the operator"). Returns
/// whether it was open.
pub fn close(connections: &Connections, id: u64) -> bool {
    match connections.get(id) {
        Some(mailbox) => {
            mailbox.kick(Kick::Operator);
            true
        }
        None => false,
    }
}

/// Optional rebalancing after scale-out: while this instance holds more than
/// `rebalance.target_connections` plus `tolerance_pct`, close up to
/// `shed_per_second` of its oldest connections each second with 1013 (try
/// again later), so they reconnect through the load balancer and land on
/// the emptier instances. Off when `target_connections` is 0.
pub async fn rebalance(
    connections: Arc<Connections>,
    settings: RebalanceConfig,
    shutdown: Shutdown,
) {
    if settings.target_connections == 0 {
        return;
    }
    let ceiling =
        (settings.target_connections as f64 * (1.0 + settings.tolerance_pct / 100.0)).ceil() as u64;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.draining() => return,
            _ = every.tick() => {}
        }
        let open = connections.count();
        if open <= ceiling {
            continue;
        }
        let shed = (open - ceiling).min(u64::from(settings.shed_per_second.get())) as usize;
        let mut oldest = connections.all();
        oldest.sort_by_key(|m| m.id);
        for mailbox in oldest.into_iter().take(shed) {
            mailbox.kick(Kick::Rebalance);
        }
        tracing::info!(
            open,
            ceiling,
            shed,
            "rebalancing: shedding connections with 1013"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_close_path_names_a_connection() {
        assert_eq!(
            close_target("/connections/5/close"),
            Some(CloseTarget::Id(5))
        );
        assert_eq!(
            close_target("/connections/18446744073709551615/close"),
            Some(CloseTarget::Id(u64::MAX))
        );
        for path in [
            "/connections/5/close/close",
            "/connections/5/close/",
            "/connections/5/closed",
            "/connections/5",
            "/connections//close",
            "/connections/1/2/close",
            "/connections/close",
            "//connections/5/close",
            "/connections/5/close5",
        ] {
            assert_eq!(close_target(path), None, "{path}");
        }
        for path in [
            "/connections/+5/close",
            "/connections/-5/close",
            "/connections/x/close",
            "/connections/ 5/close",
            "/connections/5%20/close",
            "/connections/18446744073709551616/close",
            "/connections/\u{0665}/close",
        ] {
            assert_eq!(close_target(path), Some(CloseTarget::BadId), "{path}");
        }
    }
}
