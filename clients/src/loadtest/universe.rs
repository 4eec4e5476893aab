//! The symbols a load test uses, how popular each one is, and the tick lines
//! the feed writes for them.

use std::io::Write;

use rustc_hash::FxHashMap;

/// How clients (or ticks) spread over the universe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Popularity {
    /// Every symbol equally likely (the feed goes round-robin).
    Uniform,
    /// Symbol of rank r has weight 1/r^s (`--zipf-exponent`).
    Zipf,
}

/// Symbol names in popularity order, with a reverse index.
pub(crate) struct Universe {
    names: Vec<String>,
    index: FxHashMap<Box<[u8]>, u32>,
    zipf_exponent: f64,
}

impl Universe {
    /// `LT0000`, `LT0001`, …: names that cannot collide with real symbols.
    pub(crate) fn generated(count: usize, zipf_exponent: f64) -> Self {
        Self::from_names(
            (0..count).map(|i| format!("LT{i:04}")).collect(),
            zipf_exponent,
        )
    }

    /// The first `count` symbols of the gateway's simulator.
    pub(crate) fn simulator(count: usize, zipf_exponent: f64) -> Self {
        Self::from_names(
            tickgate_feeds::sim::universe()
                .take(count)
                .map(|s| s.as_str().to_owned())
                .collect(),
            zipf_exponent,
        )
    }

    fn from_names(names: Vec<String>, zipf_exponent: f64) -> Self {
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_bytes().into(), i as u32))
            .collect();
        Self {
            names,
            index,
            zipf_exponent,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// Index of a symbol seen on the wire.
    pub(crate) fn lookup(&self, symbol: &[u8]) -> Option<u32> {
        self.index.get(symbol).copied()
    }

    /// `k` distinct symbol indexes for one client, sorted.
    pub(crate) fn choose(&self, k: usize, popularity: Popularity, seed: u64) -> Vec<u32> {
        let n = self.len();
        if k >= n {
            return (0..n as u32).collect();
        }
        let mut picker = self.picker(popularity, seed);
        if popularity == Popularity::Uniform {
            // Random, not round-robin, for subscriptions.
            picker.round_robin = false;
        }
        let mut chosen = vec![false; n];
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            let i = picker.next_index();
            if !chosen[i] {
                chosen[i] = true;
                out.push(i as u32);
            }
        }
        out.sort_unstable();
        out
    }

    pub(crate) fn picker(&self, popularity: Popularity, seed: u64) -> Picker {
        let cumulative = match popularity {
            Popularity::Uniform => Vec::new(),
            Popularity::Zipf => {
                let mut total = 0.0;
                (1..=self.len())
                    .map(|rank| {
                        total += 1.0 / (rank as f64).powf(self.zipf_exponent);
                        total
                    })
                    .collect()
            }
        };
        Picker {
            n: self.len(),
            cumulative,
            state: seed | 1,
            next: 0,
            round_robin: true,
        }
    }

    /// One generic-format JSON tick (docs/feeds.md) plus its `seq`.
    pub(crate) fn write_tick(&self, out: &mut Vec<u8>, index: usize, seq: u64, ts: u64) {
        // A deterministic walk: prices move every tick, sizes cycle.
        let cents = 10_000 + (index as u64 * 37 + seq * 7) % 2_000;
        let _ = write!(
            out,
            r#"{{"symbol":"{}","seq":{seq},"bid":{}.{:02},"ask":{}.{:02},"bid_size":{},"ask_size":{},"ts":{ts}}}"#,
            self.names[index],
            cents / 100,
            cents % 100,
            (cents + 2) / 100,
            (cents + 2) % 100,
            100 + (seq % 9) * 100,
            200 + (seq % 7) * 100,
        );
    }
}

/// Draws symbol indexes: round-robin or xorshift over Zipf weights.
pub(crate) struct Picker {
    n: usize,
    cumulative: Vec<f64>,
    state: u64,
    next: usize,
    round_robin: bool,
}

impl Picker {
    pub(crate) fn next_index(&mut self) -> usize {
        if self.cumulative.is_empty() {
            if self.round_robin {
                let i = self.next;
                self.next = (self.next + 1) % self.n;
                return i;
            }
            return (self.random() * self.n as f64) as usize % self.n;
        }
        let total = self.cumulative[self.n - 1];
        let x = self.random() * total;
        self.cumulative.partition_point(|&c| c < x).min(self.n - 1)
    }

    /// Uniform in [0, 1).
    fn random(&mut self) -> f64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let x = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_choices_favour_the_first_symbols_and_never_repeat() {
        let u = Universe::generated(1000, 1.0);
        let mut hits = vec![0u32; 1000];
        for seed in 0..200 {
            let chosen = u.choose(20, Popularity::Zipf, seed);
            assert_eq!(chosen.len(), 20);
            assert!(chosen.windows(2).all(|w| w[0] < w[1]));
            for c in chosen {
                hits[c as usize] += 1;
            }
        }
        assert!(hits[0] > hits[500] * 5, "{} vs {}", hits[0], hits[500]);
    }

    #[test]
    fn ticks_are_generic_format_json_with_seq_and_ts() {
        let u = Universe::generated(3, 1.0);
        let mut line = Vec::new();
        u.write_tick(&mut line, 2, 5, 1_764_000_000_000_000);
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["symbol"], "LT0002");
        assert_eq!(v["seq"], 5);
        assert_eq!(v["ts"], 1_764_000_000_000_000u64);
        assert!(v["ask"].as_f64() > v["bid"].as_f64());
        assert_eq!(u.lookup(b"LT0002"), Some(2));
    }
}
