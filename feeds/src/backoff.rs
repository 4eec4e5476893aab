//! Reconnect delays: exponential from a minimum, capped, with jitter so many
//! gateways restarting together do not reconnect in lockstep.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Capped exponential backoff with "equal jitter": each delay is uniformly
/// drawn from `[d/2, d]`, where `d` doubles from `min` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    rng: SmallRng,
}

impl Backoff {
    /// `min` is clamped to `max`; `seed` drives the jitter.
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        let min = min.min(max);
        Self {
            min,
            max,
            current: min,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The delay before the next attempt; never above `max`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_micros() as u64;
        half + Duration::from_micros(self.rng.random_range(0..=spread))
    }

    /// Back to `min` after a connection that delivered data.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn delays_never_exceed_the_cap(min_ms in 1u64..5_000, max_ms in 1u64..60_000, seed: u64, n in 1usize..64) {
            let (min, max) = (Duration::from_millis(min_ms), Duration::from_millis(max_ms));
            let mut backoff = Backoff::new(min, max, seed);
            for _ in 0..n {
                let delay = backoff.next_delay();
                prop_assert!(delay <= max);
                prop_assert!(delay >= min.min(max) / 2);
            }
        }
    }

    #[test]
    fn grows_then_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 1);
        let delays: Vec<_> = (0..6).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100));
        assert!(delays[5] >= Duration::from_millis(500), "{delays:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
