//! Feed parsing on the same recorded ticks: the gateway's simd-json decoder
//! for the generic format (`tickgate_feeds::json::JsonDecoder`) against a
//! straightforward serde_json derive of the same fields. Both produce
//! `Tick`s with validated symbols.
//!
//! Input: `feeds/testdata/generic.jsonl` plus 1,000 ticks in the shape the
//! load tester's feed writes (symbol, seq, bid, ask, sizes, ts).
//! Run: `cargo bench --bench feed_parse`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize;
use tickgate_feeds::json::JsonDecoder;
use tickgate_feeds::parse::{Decoded, Decoder};
use tickgate_feeds::{Symbol, Tick, TickKind};

const RECORDED: &str = include_str!("../feeds/testdata/generic.jsonl");

fn lines() -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = RECORDED
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect();
    for i in 0..1_000u64 {
        let cents = 10_000 + (i * 7) % 2_000;
        lines.push(
            format!(
                r#"{{"symbol":"LT{:04}","seq":{},"bid":{}.{:02},"ask":{}.{:02},"bid_size":{},"ask_size":{},"ts":{}}}"#,
                i % 100,
                i / 100 + 1,
                cents / 100,
                cents % 100,
                (cents + 2) / 100,
                (cents + 2) % 100,
                100 + (i % 9) * 100,
                200 + (i % 7) * 100,
                1_764_000_000_000_000 + i
            )
            .into_bytes(),
        );
    }
    lines
}

#[derive(Deserialize)]
struct Generic<'a> {
    #[serde(borrow)]
    symbol: &'a str,
    bid: Option<f64>,
    ask: Option<f64>,
    bid_size: Option<f64>,
    ask_size: Option<f64>,
    last: Option<f64>,
    last_size: Option<f64>,
    volume: Option<f64>,
    open: Option<f64>,
    high: Option<f64>,
    low: Option<f64>,
    prev_close: Option<f64>,
    ts: Option<u64>,
    kind: Option<&'a str>,
}

fn serde_tick(line: &[u8]) -> Option<Tick> {
    let g: Generic<'_> = serde_json::from_slice(line).ok()?;
    let symbol = Symbol::parse(g.symbol).ok()?;
    let kind = match g.kind {
        Some("trade") => TickKind::Trade,
        Some(_) => TickKind::Quote,
        None if g.last.is_some() && g.bid.is_none() && g.ask.is_none() => TickKind::Trade,
        None => TickKind::Quote,
    };
    Some(Tick {
        symbol: Some(symbol),
        kind,
        bid: g.bid,
        ask: g.ask,
        bid_size: g.bid_size,
        ask_size: g.ask_size,
        last: g.last,
        last_size: g.last_size,
        volume: g.volume,
        open: g.open,
        high: g.high,
        low: g.low,
        prev_close: g.prev_close,
        ts: g.ts,
        seq: None,
        trade_id: None,
        cleared: Default::default(),
        session: None,
    })
}

fn parse(c: &mut Criterion) {
    let lines = lines();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("feed_parse_generic");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("simd_json_decoder", |b| {
        let mut decoder = JsonDecoder::default();
        let mut out = Decoded::default();
        let mut buf = Vec::with_capacity(512);
        b.iter(|| {
            let mut ticks = 0;
            for line in &lines {
                // simd-json parses in place: copy into a reused buffer, as the
                // feed runner does.
                buf.clear();
                buf.extend_from_slice(line);
                out.clear();
                decoder.decode(&mut buf, &mut out);
                ticks += out.ticks.len();
            }
            black_box(ticks)
        });
    });
    group.bench_function("serde_json_derive", |b| {
        b.iter(|| {
            let ticks = lines.iter().filter_map(|l| serde_tick(l)).count();
            black_box(ticks)
        });
    });
    group.finish();
    eprintln!(
        "feed_parse: {} lines, {} bytes ({:.0} B/line)",
        lines.len(),
        bytes,
        bytes as f64 / lines.len() as f64
    );
}

criterion_group!(benches, parse);
criterion_main!(benches);
