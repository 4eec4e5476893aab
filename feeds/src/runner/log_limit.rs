//! Rate limit for log lines about skipped input: a burst per window, then a
//! count of what was held back.

use std::time::Duration;

use tokio::time::Instant;

/// At most `BURST` log lines per `WINDOW`; the next line after a quiet
/// stretch says how many were suppressed.
#[derive(Debug, Default)]
pub(crate) struct LogLimiter {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimiter {
    const WINDOW: Duration = Duration::from_secs(10);
    const BURST: u32 = 5;

    /// `Some(suppressed_before)` when this event may be logged.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        let fresh = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= Self::WINDOW);
        if fresh {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged < Self::BURST {
            self.logged += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_allows_a_burst_then_reports_what_it_held_back() {
        let mut limiter = LogLimiter::default();
        let start = Instant::now();
        let allowed = (0..20).filter(|_| limiter.allow(start).is_some()).count();
        assert_eq!(allowed, LogLimiter::BURST as usize);
        assert_eq!(limiter.allow(start + LogLimiter::WINDOW), Some(15));
    }
}
