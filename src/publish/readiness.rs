//! What `/readyz` reports for the publisher: the publish loop sets four
//! flags, the admin listener reads them.

use std::sync::atomic::{AtomicBool, Ordering};

/// Ready once the stream's last quotes are loaded, NATS is connected, the
/// upstream feeds are live and the last batch was acknowledged.
#[derive(Debug, Default)]
pub(super) struct Readiness {
    pub(super) connected: AtomicBool,
    pub(super) loaded: AtomicBool,
    pub(super) upstream_live: AtomicBool,
    /// The last batch was not acknowledged in time (a hung or lost NATS
    /// server looks connected until its next ping); cleared by the next
    /// acknowledged batch.
    pub(super) failing: AtomicBool,
    /// Waiting for the lease another publisher holds: ready (it does its
    /// job, and a rollout must be able to proceed), nothing else applies.
    pub(super) standby: AtomicBool,
}

impl Readiness {
    /// `None` when ready; otherwise the first missing condition, in start-up
    /// order.
    pub(super) fn not_ready(&self) -> Option<&'static str> {
        if self.standby.load(Ordering::Relaxed) {
            None
        } else if !self.loaded.load(Ordering::Relaxed) {
            Some("the stream's last quotes are not loaded yet")
        } else if !self.connected.load(Ordering::Relaxed) {
            Some("not connected to NATS")
        } else if self.failing.load(Ordering::Relaxed) {
            Some("NATS is not acknowledging publishes")
        } else if !self.upstream_live.load(Ordering::Relaxed) {
            Some("upstream feeds are not live")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readiness(loaded: bool, connected: bool, upstream_live: bool) -> Readiness {
        Readiness {
            connected: AtomicBool::new(connected),
            loaded: AtomicBool::new(loaded),
            upstream_live: AtomicBool::new(upstream_live),
            failing: AtomicBool::new(false),
            standby: AtomicBool::new(false),
        }
    }

    #[test]
    fn ready_only_when_loaded_connected_and_live() {
        assert_eq!(readiness(true, true, true).not_ready(), None);
    }

    #[test]
    fn the_first_missing_step_is_named() {
        assert_eq!(
            Readiness::default().not_ready(),
            Some("the stream's last quotes are not loaded yet")
        );
        assert_eq!(
            readiness(true, false, false).not_ready(),
            Some("not connected to NATS")
        );
        assert_eq!(
            readiness(true, true, false).not_ready(),
            Some("upstream feeds are not live")
        );
        let standby = readiness(false, false, false);
        standby.standby.store(true, Ordering::Relaxed);
        assert_eq!(standby.not_ready(), None, "a standby is ready");
        let failing = readiness(true, true, true);
        failing.failing.store(true, Ordering::Relaxed);
        assert_eq!(
            failing.not_ready(),
            Some("NATS is not acknowledging publishes")
        );
    }
}
