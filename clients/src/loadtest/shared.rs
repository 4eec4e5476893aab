//! Everything the client tasks share: the target and run settings they
//! read, and the totals they add to once per read (counters, latency
//! histograms, error and close counts) for the progress line and the report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::LoadtestArgs;
use super::PeerMode;
use super::client::Local;
use super::feed::FeedControl;
use super::target::Target;
use super::universe::Universe;

/// Everything the client tasks share.
pub(crate) struct Shared {
    pub(crate) universe: Arc<Universe>,
    pub(crate) target: Target,
    pub(crate) mode: PeerMode,
    pub(crate) token: Option<String>,
    /// The subprotocol to ask for: `tickgate.v1.bin` with `--binary`.
    pub(crate) subprotocol: Option<&'static str>,
    /// `--ack-every`: acknowledge after this many messages (0: never).
    pub(crate) ack_every: u64,
    pub(crate) read_buffer: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) stall_after: Duration,
    pub(crate) stall_for: Duration,
    pub(crate) stall_recv_buffer: u32,
    /// `--read-pause`: a pause after every read of a socket.
    pub(crate) read_pause: Duration,
    pub(crate) reconnect_at: Option<Duration>,
    pub(crate) feed: Option<Arc<FeedControl>>,
    pub(crate) cancel: CancellationToken,
    /// When the feed started (the measured phase).
    pub(crate) go: OnceLock<Instant>,
    pub(crate) established: AtomicU64,
    pub(crate) subscribed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) frames: AtomicU64,
    pub(crate) quotes: AtomicU64,
    pub(crate) gaps: AtomicU64,
    /// Σ over (client, symbol) of last seq − base seq.
    pub(crate) progress: AtomicU64,
    pub(crate) regressions: AtomicU64,
    pub(crate) unexpected: AtomicU64,
    pub(crate) latency: Mutex<Histogram<u64>>,
    pub(crate) latency_stalled: Mutex<Histogram<u64>>,
    pub(crate) errors: Mutex<BTreeMap<String, u64>>,
    pub(crate) closes: Mutex<BTreeMap<u16, u64>>,
    pub(crate) convergence_micros: Mutex<Vec<u64>>,
    pub(crate) reconnect_micros: Mutex<Vec<u64>>,
    /// When the run started: the progress line's clock.
    pub(crate) started: Instant,
    first_established: Mutex<Option<Duration>>,
    last_established: Mutex<Option<Duration>>,
}

/// Locks a mutex even after a client task panicked while holding it: the
/// totals stay usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Zero totals, the clock started now.
    pub(crate) fn new(
        args: &LoadtestArgs,
        universe: Arc<Universe>,
        target: Target,
        feed: Option<Arc<FeedControl>>,
    ) -> Result<Self, hdrhistogram::CreationError> {
        // 1 µs to 2 minutes, 3 significant digits.
        let histogram = || Histogram::<u64>::new_with_bounds(1, 120_000_000, 3);
        Ok(Self {
            universe,
            target,
            mode: args.mode,
            token: args.token.clone(),
            subprotocol: args
                .binary
                .then_some(crate::loadtest::scan::BINARY_SUBPROTOCOL),
            ack_every: args.ack_every,
            read_buffer: args.read_buffer,
            connect_timeout: args.connect_timeout,
            stall_after: args.stall_after,
            stall_for: args.stall_for,
            stall_recv_buffer: args.stall_recv_buffer,
            read_pause: args.read_pause,
            reconnect_at: args.reconnect_at,
            feed,
            cancel: CancellationToken::new(),
            go: OnceLock::new(),
            established: AtomicU64::new(0),
            subscribed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            quotes: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            regressions: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            latency: Mutex::new(histogram()?),
            latency_stalled: Mutex::new(histogram()?),
            errors: Mutex::default(),
            closes: Mutex::default(),
            convergence_micros: Mutex::default(),
            reconnect_micros: Mutex::default(),
            started: Instant::now(),
            first_established: Mutex::default(),
            last_established: Mutex::default(),
        })
    }

    /// When the first and the last client finished their handshake, from
    /// the start of the run.
    pub(crate) fn handshake_span(&self) -> (Option<Duration>, Option<Duration>) {
        (
            *lock(&self.first_established),
            *lock(&self.last_established),
        )
    }

    pub(crate) fn count_error(&self, kind: &str) {
        *lock(&self.errors).entry(kind.to_owned()).or_default() += 1;
    }

    pub(crate) fn count_close(&self, code: u16) {
        *lock(&self.closes).entry(code).or_default() += 1;
    }

    pub(crate) fn mark_established(&self) {
        let at = self.started.elapsed();
        lock(&self.first_established).get_or_insert(at);
        *lock(&self.last_established) = Some(at);
    }

    pub(crate) fn record_convergence(&self, took: Duration) {
        lock(&self.convergence_micros).push(took.as_micros() as u64);
    }

    pub(crate) fn record_reconnect(&self, took: Duration) {
        lock(&self.reconnect_micros).push(took.as_micros() as u64);
    }

    /// Adds one read's totals and empties `local`.
    pub(crate) fn add(&self, local: &mut Local, stalled: bool) {
        if local.frames == 0 {
            return;
        }
        self.frames.fetch_add(local.frames, Ordering::Relaxed);
        if local.quotes > 0 {
            self.quotes.fetch_add(local.quotes, Ordering::Relaxed);
            self.gaps.fetch_add(local.gaps, Ordering::Relaxed);
            self.progress.fetch_add(local.progress, Ordering::Relaxed);
            let mut histogram = lock(if stalled {
                &self.latency_stalled
            } else {
                &self.latency
            });
            for &micros in &local.latencies {
                histogram.saturating_record(micros.max(1));
            }
        } else if local.progress > 0 {
            self.progress.fetch_add(local.progress, Ordering::Relaxed);
            self.gaps.fetch_add(local.gaps, Ordering::Relaxed);
        }
        if local.regressions > 0 {
            self.regressions
                .fetch_add(local.regressions, Ordering::Relaxed);
        }
        if local.unexpected > 0 {
            self.unexpected
                .fetch_add(local.unexpected, Ordering::Relaxed);
        }
        local.frames = 0;
        local.quotes = 0;
        local.gaps = 0;
        local.progress = 0;
        local.regressions = 0;
        local.unexpected = 0;
        local.latencies.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        let target = Target {
            addr: "127.0.0.1:8080".parse().expect("address"),
            tls: None,
            host: "127.0.0.1:8080".to_owned(),
            path: "/ws".to_owned(),
        };
        let universe = Arc::new(Universe::generated(4, 1.0));
        Shared::new(&LoadtestArgs::for_test(&[]), universe, target, None).expect("histograms")
    }

    fn total(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    #[test]
    fn a_read_is_added_once_and_the_local_totals_start_over() {
        let shared = shared();
        let mut local = Local {
            frames: 3,
            quotes: 2,
            gaps: 1,
            progress: 3,
            regressions: 1,
            unexpected: 1,
            latencies: vec![0, 1_500],
        };
        shared.add(&mut local, false);
        assert_eq!(total(&shared.frames), 3);
        assert_eq!(total(&shared.quotes), 2);
        assert_eq!(total(&shared.gaps), 1);
        assert_eq!(total(&shared.progress), 3);
        assert_eq!(total(&shared.regressions), 1);
        assert_eq!(total(&shared.unexpected), 1);
        let latency = lock(&shared.latency);
        assert_eq!(latency.len(), 2);
        assert_eq!(latency.min(), 1, "a zero age counts as 1 µs");
        assert!(lock(&shared.latency_stalled).is_empty());
        assert_eq!((local.frames, local.quotes, local.progress), (0, 0, 0));
        assert!(local.latencies.is_empty());
    }

    #[test]
    fn stalled_clients_have_their_own_latency_histogram() {
        let shared = shared();
        let mut local = Local {
            frames: 1,
            quotes: 1,
            progress: 1,
            latencies: vec![700],
            ..Local::default()
        };
        shared.add(&mut local, true);
        assert!(lock(&shared.latency).is_empty());
        assert_eq!(lock(&shared.latency_stalled).len(), 1);
    }

    #[test]
    fn snapshots_advance_progress_without_counting_quotes() {
        let shared = shared();
        let mut local = Local {
            frames: 1,
            gaps: 4,
            progress: 5,
            ..Local::default()
        };
        shared.add(&mut local, false);
        assert_eq!(total(&shared.quotes), 0);
        assert_eq!(total(&shared.progress), 5);
        assert_eq!(total(&shared.gaps), 4);
        assert!(lock(&shared.latency).is_empty());
    }

    #[test]
    fn errors_and_closes_are_counted_by_kind() {
        let shared = shared();
        shared.count_error("timeout");
        shared.count_error("timeout");
        shared.count_close(1008);
        assert_eq!(lock(&shared.errors).get("timeout"), Some(&2));
        assert_eq!(lock(&shared.closes).get(&1008), Some(&1));
    }
}
