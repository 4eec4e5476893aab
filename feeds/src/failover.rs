//! Failover: a backup feed whose ticks pass only while its primary is not
//! live (connecting, stale or down), switching back the moment the primary
//! is live again.
//!
//! A combinator over senders: the primary and its backups write into the
//! senders of a [`Failover`]; one task forwards to the real sink, in arrival
//! order, gating the backups' ticks on the primary's last reported state.
//! State events of every feed pass through unchanged. The gateway assigns
//! `seq` on arrival, so clients see it grow whichever feed is in charge.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::telemetry;
use crate::{FeedEvent, FeedSender, FeedState};

/// Capacity of each gate input; a full one makes its feed wait, exactly as
/// the gateway's own channel does.
const GATE_CAPACITY: usize = 64;

/// The two inputs of a failover gate.
#[derive(Debug, Clone)]
pub struct Failover {
    /// Give this to the primary feed.
    pub primary: FeedSender,
    /// Give this to each backup feed of the primary.
    pub backup: FeedSender,
}

/// Starts a gate for the feed named `primary` in front of `sink`.
pub fn failover(
    primary: Arc<str>,
    sink: FeedSender,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Failover {
    let (primary_tx, primary_rx) = mpsc::channel(GATE_CAPACITY);
    let (backup_tx, backup_rx) = mpsc::channel(GATE_CAPACITY);
    tracker.spawn(gate(primary, primary_rx, backup_rx, sink, shutdown));
    Failover {
        primary: primary_tx,
        backup: backup_tx,
    }
}

async fn gate(
    primary: Arc<str>,
    mut primary_rx: mpsc::Receiver<FeedEvent>,
    mut backup_rx: mpsc::Receiver<FeedEvent>,
    sink: FeedSender,
    shutdown: CancellationToken,
) {
    let mut primary_live = false;
    let (mut primary_open, mut backup_open) = (true, true);
    while primary_open || backup_open {
        let (from_primary, event) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            event = primary_rx.recv(), if primary_open => match event {
                Some(event) => (true, event),
                None => {
                    primary_open = false;
                    primary_live = false;
                    continue;
                }
            },
            event = backup_rx.recv(), if backup_open => match event {
                Some(event) => (false, event),
                None => {
                    backup_open = false;
                    continue;
                }
            },
        };
        match (&event, from_primary) {
            (FeedEvent::State { state, .. }, true) => {
                let live = *state == FeedState::Live;
                if live != primary_live {
                    if live {
                        info!(
                            primary = &*primary,
                            "primary feed live: backup ticks held back"
                        );
                    } else {
                        info!(
                            primary = &*primary,
                            state = state.as_str(),
                            "primary feed not live: backup ticks pass"
                        );
                    }
                }
                primary_live = live;
            }
            (FeedEvent::Ticks(batch), false) if primary_live => {
                telemetry::failover_suppressed(&batch.feed, batch.ticks.len() as u64);
                continue;
            }
            // The primary's own halts and trade corrections stand.
            (FeedEvent::Venue(_), false) if primary_live => continue,
            _ => {}
        }
        let sent = tokio::select! {
            _ = shutdown.cancelled() => return,
            sent = sink.send(event) => sent,
        };
        if sent.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TickBatch;
    use crate::model::{Symbol, Tick};

    fn ticks(feed: &str, bid: f64) -> FeedEvent {
        FeedEvent::Ticks(TickBatch {
            feed: feed.into(),
            ticks: vec![Tick {
                symbol: Symbol::parse("BTC-USD").ok(),
                bid: Some(bid),
                ..Tick::default()
            }],
        })
    }

    fn state(feed: &str, state: FeedState) -> FeedEvent {
        FeedEvent::State {
            feed: feed.into(),
            state,
        }
    }

    async fn bids(rx: &mut mpsc::Receiver<FeedEvent>, n: usize) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        while out.len() < n {
            if let Some(FeedEvent::Ticks(batch)) = rx.recv().await {
                out.extend(
                    batch
                        .ticks
                        .iter()
                        .map(|t| (batch.feed.to_string(), t.bid.unwrap_or(0.0))),
                );
            }
        }
        out
    }

    #[tokio::test]
    async fn backup_passes_only_while_primary_is_not_live() {
        let (sink, mut rx) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let gate = failover("main".into(), sink, shutdown.clone(), &tracker);
        let send = |tx: &FeedSender, e| {
            let tx = tx.clone();
            async move { tx.send(e).await.expect("gate open") }
        };
        // Primary connecting: backup passes.
        send(&gate.primary, state("main", FeedState::Connecting)).await;
        send(&gate.backup, ticks("spare", 1.0)).await;
        assert_eq!(bids(&mut rx, 1).await, [("spare".into(), 1.0)]);
        // Primary live: backup held back, primary passes.
        send(&gate.primary, state("main", FeedState::Live)).await;
        send(&gate.backup, ticks("spare", 2.0)).await;
        send(&gate.primary, ticks("main", 3.0)).await;
        assert_eq!(bids(&mut rx, 1).await, [("main".into(), 3.0)]);
        // Primary stale: backup takes over; live again: switch back.
        send(&gate.primary, state("main", FeedState::Stale)).await;
        send(&gate.backup, ticks("spare", 4.0)).await;
        assert_eq!(bids(&mut rx, 1).await, [("spare".into(), 4.0)]);
        send(&gate.primary, state("main", FeedState::Live)).await;
        send(&gate.backup, ticks("spare", 5.0)).await;
        send(&gate.primary, ticks("main", 6.0)).await;
        assert_eq!(bids(&mut rx, 1).await, [("main".into(), 6.0)]);
        // The primary's task ending counts as down.
        drop(gate.primary);
        send(&gate.backup, ticks("spare", 7.0)).await;
        assert_eq!(bids(&mut rx, 1).await, [("spare".into(), 7.0)]);
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
