//! How the gateway stops: the [`Shutdown`] handle every long-running task
//! takes (draining, then stopping, and the tracker that lets shutdown wait
//! for what was started), and the operating-system signals that trigger it.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The gateway's two-phase stop, shared by every task it starts. Cloning
/// is cheap and every clone sees the same phases.
///
/// 1. *Draining*: listeners stop accepting, `/readyz` answers 503 and each
///    connection schedules its close within the drain window.
/// 2. *Stopping*: every task ends; [`Shutdown::wait`] gives them a grace
///    period.
#[derive(Clone, Default)]
pub struct Shutdown {
    drain: CancellationToken,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// Runs `task` on the runtime, tracked so that [`Shutdown::wait`] waits
    /// for it.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// The tracker, for code that spawns through one (the feed runners).
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// The stop signal as a token, for code that takes one (the feeds).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Phase 1: draining begins.
    pub fn begin_drain(&self) {
        self.drain.cancel();
    }

    /// Phase 2: every task should end now (draining ends too).
    pub fn stop(&self) {
        self.drain.cancel();
        self.stop.cancel();
    }

    /// Resolves when draining has begun.
    pub async fn draining(&self) {
        self.drain.cancelled().await;
    }

    /// Resolves when tasks must stop.
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    /// Whether tasks must stop.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Stops, then waits up to `grace_period` for every tracked task to
    /// end. Returns whether they all did.
    pub async fn wait(&self, grace_period: Duration) -> bool {
        self.stop();
        self.tracker.close();
        tokio::time::timeout(grace_period, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wait_gives_stragglers_the_grace_period_and_no_more() {
        let shutdown = Shutdown::default();
        let polite = shutdown.clone();
        shutdown.spawn(async move { polite.stopped().await });
        shutdown.spawn(std::future::pending::<()>());
        let started = tokio::time::Instant::now();
        assert!(!shutdown.wait(Duration::from_secs(3)).await);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn tasks_that_follow_the_signal_end_within_the_grace_period() {
        let shutdown = Shutdown::default();
        for _ in 0..3 {
            let task = shutdown.clone();
            shutdown.spawn(async move {
                task.draining().await;
                task.stopped().await;
            });
        }
        shutdown.begin_drain();
        assert!(shutdown.wait(Duration::from_secs(3)).await);
        assert!(shutdown.is_stopped());
    }
}
