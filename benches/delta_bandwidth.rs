//! Bandwidth of delta mode against full quotes, in JSON and in the binary
//! encoding (`tickgate.v1.bin`): the bytes of `update` frames one client
//! subscribed to every symbol would receive, computed with the gateway's own
//! store, outbox and binary encoder (the code that builds the frames on the
//! wire, minus the 2–10 bytes of WebSocket framing per frame).
//!
//! Byte counts do not depend on the machine, so this is a plain program,
//! not a timed benchmark. Sources:
//! - the embedded simulator (seed 42, 547 symbols, 200,000 ticks at its
//!   default 2,000 ticks/s of simulated time);
//! - recordings in the generic feed format (docs/feeds.md, one JSON object or
//!   array per line, the replay feed's format): `feeds/testdata/generic.jsonl`
//!   by default, or any files given after `--`.
//!
//! Each source is replayed through two clients, drained either after every
//! tick (a client that keeps up: no conflation) or every 250 ms of the
//! ticks' time (a 4 Hz dashboard: conflated).
//!
//! Run: `cargo bench --bench delta_bandwidth [-- recording.jsonl … coinbase:venue-recording.jsonl …]`
//! (`venue:path` reads a recording in that venue's own message format).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tickgate::fanout::{Delivery, Outbox};
use tickgate::fanout::{Slot, SnapshotStore};
use tickgate::protocol::binary::BinaryEncoder;
use tickgate_feeds::json::parse_ticks;
use tickgate_feeds::parse::{Decoded, JsonScratch};
use tickgate_feeds::sim::{SimConfig, Simulator};
use tickgate_feeds::venue::Venue;
use tickgate_feeds::{Symbol, Tick};

/// Bytes of update frames, and quotes in them, for one client; the same
/// frames in the binary encoding.
#[derive(Default)]
struct Tally {
    bytes: u64,
    quotes: u64,
    binary: BinaryEncoder,
    binary_bytes: u64,
}

/// A plain and a delta client subscribed to every symbol they see.
struct Pair {
    store: SnapshotStore,
    slots: rustc_hash::FxHashMap<Symbol, Arc<Slot>>,
    plain: (Outbox, Tally),
    delta: (Outbox, Tally),
}

impl Pair {
    fn new() -> Self {
        Self {
            store: SnapshotStore::new(1_000_000),
            slots: Default::default(),
            plain: (Outbox::default(), Tally::default()),
            delta: (Outbox::default(), Tally::default()),
        }
    }

    fn apply(&mut self, tick: &Tick, at: u64) {
        let Some(symbol) = tick.symbol else {
            return;
        };
        let slot = match self.slots.get(&symbol) {
            Some(slot) => Arc::clone(slot),
            None => {
                let slot = self.store.get_or_create(symbol).expect("room");
                let delta = Delivery {
                    delta: true,
                    ..Delivery::default()
                };
                self.plain
                    .0
                    .subscribe(Arc::clone(&slot), Delivery::default(), None);
                self.delta.0.subscribe(Arc::clone(&slot), delta, None);
                self.slots.insert(symbol, Arc::clone(&slot));
                slot
            }
        };
        if self.store.apply(&slot, tick, at).is_some() {
            self.plain.0.mark_dirty(slot.id);
            self.delta.0.mark_dirty(slot.id);
        }
    }

    fn drain(&mut self) {
        let now = Instant::now();
        for (outbox, tally) in [&mut self.plain, &mut self.delta] {
            let drain = outbox.drain(now);
            tally.quotes += drain.quotes;
            if let Some(frame) = drain.update {
                tally.bytes += frame.len() as u64;
                tally.binary_bytes += tally.binary.encode(&frame).len() as u64;
            }
        }
    }
}

/// Replays `ticks` (with their time in µs) through both clients; drains
/// after every tick, or whenever `every` of tick time has passed.
fn replay(ticks: &[(u64, Tick)], every: Option<Duration>) -> (Tally, Tally) {
    let mut pair = Pair::new();
    let mut next_drain = ticks.first().map_or(0, |(t, _)| *t);
    for (at, tick) in ticks {
        pair.apply(tick, *at);
        match every {
            None => pair.drain(),
            Some(every) if *at >= next_drain => {
                pair.drain();
                next_drain = at + every.as_micros() as u64;
            }
            Some(_) => {}
        }
    }
    pair.drain();
    (pair.plain.1, pair.delta.1)
}

fn simulator_ticks(count: usize) -> Vec<(u64, Tick)> {
    let config = SimConfig::default();
    let step = (1e6 / config.ticks_per_second) as u64;
    let mut sim = Simulator::new(config);
    let mut now = 1_764_000_000_000_000u64;
    let mut ticks: Vec<(u64, Tick)> = sim
        .opening_ticks(now)
        .into_iter()
        .map(|t| (now, t))
        .collect();
    for _ in 0..count {
        now += step;
        ticks.push((now, sim.next_tick(now)));
    }
    ticks
}

fn recorded_ticks(path: &str) -> Vec<(u64, Tick)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut scratch = JsonScratch::default();
    let mut ticks = Vec::new();
    let mut rejects = Vec::new();
    let mut last_ts = 0u64;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut buf = line.as_bytes().to_vec();
        let mut parsed = Vec::new();
        if parse_ticks(&mut scratch, &mut buf, &mut parsed, &mut rejects).is_err() {
            continue;
        }
        for tick in parsed {
            last_ts = tick.ts.unwrap_or(last_ts);
            ticks.push((last_ts, tick));
        }
    }
    ticks
}

/// A recording in a venue's own wire format (`feeds/testdata/<venue>.jsonl`,
/// one message per line), decoded by that venue's adapter.
fn venue_ticks(venue: Venue, path: &str) -> Vec<(u64, Tick)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut decoder = venue.decoder(1 << 20);
    let mut out = Decoded::default();
    let mut ticks = Vec::new();
    let mut last_ts = 0u64;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        out.clear();
        decoder.decode(&mut line.as_bytes().to_vec(), &mut out);
        for tick in out.ticks.drain(..) {
            last_ts = tick.ts.unwrap_or(last_ts);
            ticks.push((last_ts, tick));
        }
    }
    ticks
}

fn report(source: &str, ticks: &[(u64, Tick)]) {
    for (policy, every) in [
        ("every tick", None),
        ("every 250 ms", Some(Duration::from_millis(250))),
    ] {
        let (plain, delta) = replay(ticks, every);
        let saved = 100.0 * (1.0 - delta.bytes as f64 / plain.bytes.max(1) as f64);
        let per_quote = |bytes: u64, tally: &Tally| bytes as f64 / tally.quotes.max(1) as f64;
        println!(
            "| {source} | {} | {policy} | {} | {:.1} | {:.1} | {saved:.1} % | {:.1} | {:.1} | {:.2} |",
            ticks.len(),
            plain.quotes,
            per_quote(plain.bytes, &plain),
            per_quote(delta.bytes, &delta),
            per_quote(plain.binary_bytes, &plain),
            per_quote(delta.binary_bytes, &delta),
            delta.binary_bytes as f64 / plain.bytes.max(1) as f64,
        );
    }
}

fn main() {
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!(
        "| source | ticks | drained | quotes sent | JSON full B/quote | JSON delta B/quote | delta saved | binary full B/quote | binary delta B/quote | binary delta / JSON full |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    report("simulator (seed 42)", &simulator_ticks(200_000));
    let files = if files.is_empty() {
        vec![concat!(env!("CARGO_MANIFEST_DIR"), "/feeds/testdata/generic.jsonl").to_owned()]
    } else {
        files
    };
    for file in files {
        // `venue:path` reads a recording in that venue's own format.
        let (venue, path) = match file.split_once(':') {
            Some((name, path)) => match Venue::from_name(name) {
                Some(venue) => (Some(venue), path.to_owned()),
                None => (None, file.clone()),
            },
            None => (None, file.clone()),
        };
        let name = std::path::Path::new(&path)
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        match venue {
            Some(venue) => report(
                &format!("{name} ({})", venue.as_str()),
                &venue_ticks(venue, &path),
            ),
            None => report(&name, &recorded_ticks(&path)),
        }
    }
}
