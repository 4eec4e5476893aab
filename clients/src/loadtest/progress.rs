//! The progress line: once a second on stderr, how many clients are
//! subscribed, the quote and frame rates, and the p99 latency so far.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::shared::{Shared, lock};

/// One line a second on stderr: connections, rates, latency so far.
pub(crate) async fn progress_line(shared: Arc<Shared>, clients: usize, quiet: bool) {
    if quiet {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    let (mut quotes, mut frames) = (0, 0);
    loop {
        every.tick().await;
        let q = shared.quotes.load(Ordering::Relaxed);
        let f = shared.frames.load(Ordering::Relaxed);
        let p99 = lock(&shared.latency).value_at_quantile(0.99) as f64 / 1e3;
        let errors: u64 = lock(&shared.errors).values().sum();
        eprintln!(
            "[{:>5.1}s] subscribed {}/{} failed {} | quotes/s {} frames/s {} | p99 so far {:.1} ms | errors {}",
            shared.started.elapsed().as_secs_f64(),
            shared.subscribed.load(Ordering::Relaxed),
            clients,
            shared.failed.load(Ordering::Relaxed),
            q - quotes,
            f - frames,
            p99,
            errors,
        );
        quotes = q;
        frames = f;
    }
}
