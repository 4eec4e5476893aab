//! The embedded simulator feed: a realistic US-equity universe moving by a
//! random walk with bursts, at a configurable aggregate tick rate.
//!
//! Deterministic for a given seed: [`Simulator::next_tick`] is a pure step
//! (the caller passes the clock), and [`Simulator::run`] only paces it.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::model::{Symbol, Tick, TickKind};
use crate::{FeedEvent, FeedSender, FeedState, TickBatch, now_micros};

/// The simulated universe: 540+ US-listed equities and ETFs, roughly by size,
/// so that the first names tick most often.
const UNIVERSE: &str = include_str!("universe.txt");

/// Anchor prices for the names a demo shows first; the rest are drawn from
/// the seed.
const ANCHORS: &[(&str, f64)] = &[
    ("AAPL", 231.40),
    ("MSFT", 418.20),
    ("NVDA", 138.85),
    ("AMZN", 201.70),
    ("GOOGL", 172.60),
    ("GOOG", 174.10),
    ("META", 566.30),
    ("TSLA", 248.50),
    ("SPY", 588.20),
    ("QQQ", 505.40),
];

/// Simulator settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Average ticks per second over the whole universe (bursts go above).
    pub ticks_per_second: f64,
    /// Seed of the random walk: the same seed gives the same ticks.
    pub seed: u64,
    /// Use only the first N symbols of the universe (all when `None`).
    pub symbols: Option<usize>,
    /// Occasional bursts of five times the rate, lasting 0.5 to 2 s.
    pub bursts: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            ticks_per_second: 2_000.0,
            seed: 42,
            symbols: None,
            bursts: true,
        }
    }
}

struct SimSymbol {
    symbol: Symbol,
    mid: f64,
    prev_close: f64,
    volume: f64,
    /// Per-tick volatility as a fraction of price.
    volatility: f64,
}

/// A seeded random-walk market.
pub struct Simulator {
    config: SimConfig,
    rng: SmallRng,
    universe: Vec<SimSymbol>,
    /// Cumulative popularity weights (Zipf-like), for picking the next symbol.
    cumulative: Vec<f64>,
}

/// All symbols the simulator can produce, in popularity order.
pub fn universe() -> impl Iterator<Item = Symbol> {
    UNIVERSE
        .split_whitespace()
        .filter_map(|s| Symbol::parse(s).ok())
}

impl Simulator {
    /// Builds the universe from the seed.
    pub fn new(config: SimConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let limit = config.symbols.unwrap_or(usize::MAX).max(1);
        let universe: Vec<SimSymbol> = universe()
            .take(limit)
            .map(|symbol| {
                let anchor = ANCHORS.iter().find(|(s, _)| *s == symbol.as_str());
                // Log-uniform between $8 and $600 for names without an anchor.
                let price = anchor.map_or_else(|| (rng.random_range(2.08f64..6.4)).exp(), |a| a.1);
                let mid = round_cents(price);
                SimSymbol {
                    symbol,
                    mid,
                    prev_close: round_cents(mid * (1.0 + rng.random_range(-0.02..0.02))),
                    volume: (rng.random_range(1_000..200_000) * 100) as f64,
                    volatility: rng.random_range(0.00005..0.0004),
                }
            })
            .collect();
        let mut total = 0.0;
        let cumulative = (0..universe.len())
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(0.8);
                total
            })
            .collect();
        Self {
            config,
            rng,
            universe,
            cumulative,
        }
    }

    /// One complete quote per symbol (prices, sizes, day stats), sent first so
    /// every symbol has data from the start.
    pub fn opening_ticks(&mut self, now: u64) -> Vec<Tick> {
        (0..self.universe.len())
            .map(|i| {
                let mut tick = self.quote_tick(i, now);
                let s = &self.universe[i];
                tick.last = Some(s.mid);
                tick.last_size = Some(100.0);
                tick.volume = Some(s.volume);
                tick.prev_close = Some(s.prev_close);
                tick.open = Some(s.prev_close);
                tick.high = Some(s.mid.max(s.prev_close));
                tick.low = Some(s.mid.min(s.prev_close));
                tick
            })
            .collect()
    }

    /// The next tick of the walk: a quote move (about 75 %) or a trade.
    pub fn next_tick(&mut self, now: u64) -> Tick {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let pick = self.rng.random_range(0.0..total);
        let i = self
            .cumulative
            .partition_point(|&c| c < pick)
            .min(self.universe.len() - 1);
        // Gaussian-ish step: the sum of three uniforms.
        let z: f64 = (0..3).map(|_| self.rng.random_range(-1.0..1.0)).sum();
        let s = &mut self.universe[i];
        s.mid = round_cents((s.mid * (1.0 + z * s.volatility)).max(0.05));
        if self.rng.random_bool(0.25) {
            let s = &self.universe[i];
            let half = spread(s.mid) / 2.0;
            let price = if self.rng.random_bool(0.5) {
                s.mid + half
            } else {
                s.mid - half
            };
            let size = (self.rng.random_range(1..=10)
                * if self.rng.random_bool(0.2) { 1 } else { 100 }) as f64;
            self.universe[i].volume += size;
            Tick {
                symbol: Some(self.universe[i].symbol),
                kind: TickKind::Trade,
                last: Some(round_cents(price)),
                last_size: Some(size),
                ts: Some(now),
                ..Tick::default()
            }
        } else {
            self.quote_tick(i, now)
        }
    }

    fn quote_tick(&mut self, i: usize, now: u64) -> Tick {
        let s = &self.universe[i];
        let spread = spread(s.mid);
        let bid = round_cents(s.mid - spread / 2.0).max(0.01);
        Tick {
            symbol: Some(s.symbol),
            kind: TickKind::Quote,
            bid: Some(bid),
            ask: Some(round_cents(bid + spread)),
            bid_size: Some((self.rng.random_range(1..=20) * 100) as f64),
            ask_size: Some((self.rng.random_range(1..=20) * 100) as f64),
            ts: Some(now),
            ..Tick::default()
        }
    }

    /// Paces the walk at the configured rate into `sink` until `shutdown`.
    /// Returns when the receiver is gone or shutdown is requested.
    pub async fn run(
        mut self,
        feed: std::sync::Arc<str>,
        sink: FeedSender,
        shutdown: CancellationToken,
    ) {
        let opening = self.opening_ticks(now_micros());
        let live = FeedEvent::State {
            feed: feed.clone(),
            state: FeedState::Live,
        };
        if sink.send(live).await.is_err()
            || sink
                .send(FeedEvent::Ticks(TickBatch {
                    feed: feed.clone(),
                    ticks: opening,
                }))
                .await
                .is_err()
        {
            return;
        }
        let rate = self.config.ticks_per_second.max(0.0);
        let period = if rate > 20_000.0 {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        };
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut owed = 0.0f64;
        let mut burst_left = 0u32;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            let mut multiplier = 1.0;
            if self.config.bursts {
                if burst_left == 0 && self.rng.random_bool((period.as_secs_f64() / 10.0).min(1.0)) {
                    burst_left = (self.rng.random_range(0.5..2.0) / period.as_secs_f64()) as u32;
                }
                if burst_left > 0 {
                    burst_left -= 1;
                    multiplier = 5.0;
                }
            }
            owed += rate * multiplier * period.as_secs_f64();
            let count = owed.floor() as usize;
            if count == 0 {
                continue;
            }
            owed -= count as f64;
            let now = now_micros();
            let ticks: Vec<Tick> = (0..count).map(|_| self.next_tick(now)).collect();
            if sink
                .send(FeedEvent::Ticks(TickBatch {
                    feed: feed.clone(),
                    ticks,
                }))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// A plausible spread: a cent for cheap names, about 2 bps for the rest.
fn spread(mid: f64) -> f64 {
    round_cents((mid * 0.0002).max(0.01))
}

fn round_cents(price: f64) -> f64 {
    (price * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn universe_is_large_and_holds_the_demo_names() {
        let names: Vec<String> = universe().map(|s| s.to_string()).collect();
        assert!(names.len() >= 500, "only {} symbols", names.len());
        for must in ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL"] {
            assert!(names.iter().any(|n| n == must), "{must} missing");
        }
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "duplicate symbols");
    }

    #[test]
    fn same_seed_gives_same_ticks() {
        let mut a = Simulator::new(SimConfig::default());
        let mut b = Simulator::new(SimConfig::default());
        let mut c = Simulator::new(SimConfig {
            seed: 7,
            ..SimConfig::default()
        });
        let ta: Vec<Tick> = (0..1000).map(|_| a.next_tick(1)).collect();
        let tb: Vec<Tick> = (0..1000).map(|_| b.next_tick(1)).collect();
        let tc: Vec<Tick> = (0..1000).map(|_| c.next_tick(1)).collect();
        assert_eq!(ta, tb);
        assert_ne!(ta, tc);
    }

    #[test]
    fn ticks_are_valid_and_prices_plausible() {
        let mut sim = Simulator::new(SimConfig::default());
        let now = now_micros();
        for tick in sim.opening_ticks(now).iter().chain(
            (0..20_000)
                .map(|_| sim.next_tick(now))
                .collect::<Vec<_>>()
                .iter(),
        ) {
            tick.validate(now).expect("valid tick");
            if let (Some(bid), Some(ask)) = (tick.bid, tick.ask) {
                assert!(bid < ask, "crossed {tick:?}");
                assert!((ask - bid) / bid < 0.01, "wide spread {tick:?}");
            }
        }
        let aapl = sim
            .universe
            .iter()
            .find(|s| s.symbol.as_str() == "AAPL")
            .expect("AAPL");
        assert!(
            (150.0..350.0).contains(&aapl.mid),
            "AAPL drifted to {}",
            aapl.mid
        );
    }

    #[tokio::test(start_paused = true)]
    async fn run_paces_ticks_at_the_configured_rate() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let shutdown = CancellationToken::new();
        let sim = Simulator::new(SimConfig {
            ticks_per_second: 5_000.0,
            bursts: false,
            ..SimConfig::default()
        });
        // The test owns the task and awaits it below; no tracker to wait for.
        #[allow(clippy::disallowed_methods)]
        let task = tokio::spawn(sim.run("sim".into(), tx, shutdown.clone()));
        assert!(matches!(
            rx.recv().await,
            Some(FeedEvent::State {
                state: FeedState::Live,
                ..
            })
        ));
        let Some(FeedEvent::Ticks(opening)) = rx.recv().await else {
            panic!("no opening batch")
        };
        assert!(opening.ticks.len() >= 500);
        let start = tokio::time::Instant::now();
        let mut ticks = 0;
        while start.elapsed() < Duration::from_secs(2) {
            if let Some(FeedEvent::Ticks(batch)) = rx.recv().await {
                ticks += batch.ticks.len();
            }
        }
        shutdown.cancel();
        task.await.expect("sim task");
        assert!(
            (9_000..=11_000).contains(&ticks),
            "{ticks} ticks in 2 s at 5000/s"
        );
    }
}
