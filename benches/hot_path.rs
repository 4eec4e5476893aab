//! Micro-benchmarks of the gateway's hot path, one tick at a time:
//! tick → store (merge + encode once), quote encoding alone, and the fan-out
//! step as the gateway runs it (`Fanout::apply`: validate, merge, mark dirty
//! on every subscriber; then each subscriber's writer drains its outbox into
//! one update frame) for 1, 100 and 10,000 subscribers.
//!
//! Run: `cargo bench --bench hot_path` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tickgate::fanout::{Delivery, Fanout, Mailbox, Outbox, SnapshotStore, subscriptions};
use tickgate_feeds::{Quote, Symbol, Tick};

fn tick(symbol: Symbol, i: u64) -> Tick {
    let price = 100.0 + (i % 200) as f64 / 100.0;
    Tick {
        symbol: Some(symbol),
        bid: Some(price),
        ask: Some(price + 0.02),
        bid_size: Some(300.0),
        ask_size: Some(200.0),
        ts: Some(1_764_000_000_000_000 + i),
        ..Tick::default()
    }
}

fn store_apply(c: &mut Criterion) {
    let store = SnapshotStore::new(16);
    let symbol = Symbol::parse("AAPL").expect("valid");
    let slot = store.get_or_create(symbol).expect("room");
    let mut i = 0u64;
    c.bench_function("store_apply", |b| {
        b.iter(|| {
            i += 1;
            black_box(store.apply(&slot, &tick(symbol, i), 1_764_000_000_000_000 + i));
        });
    });
}

fn quote_encode(c: &mut Criterion) {
    let symbol = Symbol::parse("AAPL").expect("valid");
    let mut quote = Quote::new(symbol);
    quote.apply(&tick(symbol, 7), 1_764_000_000_000_000);
    c.bench_function("quote_encode_serde_json", |b| {
        b.iter(|| black_box(serde_json::to_string(black_box(&quote)).unwrap_or_default()));
    });
}

/// One tick of one symbol reaching `subscribers` connections: the real
/// fan-out step (`Fanout::apply` with a one-tick batch), and each
/// subscriber's drain (batch encode).
fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_one_tick");
    for subscribers in [1usize, 100, 10_000] {
        let store = SnapshotStore::new(16);
        let symbol = Symbol::parse("AAPL").expect("valid");
        let mailboxes: Vec<Arc<Mailbox>> = (0..subscribers as u64)
            .map(|id| {
                let mailbox = Arc::new(Mailbox::new(id, 1024, Instant::now()));
                subscriptions::subscribe(
                    &store,
                    &mailbox,
                    &[symbol],
                    subscriptions::SubscribeLimits {
                        per_connection: 100,
                        interest: 100,
                    },
                    Delivery::default(),
                    &Default::default(),
                    |_| Vec::new(),
                );
                mailbox
            })
            .collect();
        let mut fanout = Fanout::default();
        let mut batch = vec![tick(symbol, 0)];
        let mut i = 0u64;
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_function(format!("{subscribers}_subscribers"), |b| {
            b.iter(|| {
                i += 1;
                batch[0] = tick(symbol, i);
                fanout.apply(&store, 0, &batch, 1_764_000_000_000_000 + i);
                let mut bytes = 0;
                for mailbox in &mailboxes {
                    if let Some(frame) = mailbox.drain(Instant::now()).update {
                        bytes += frame.len();
                    }
                }
                black_box(bytes)
            });
        });
    }
    group.finish();
}

/// The writer's side alone: drain an outbox with `dirty` changed symbols into
/// one frame (100 symbols is the broadcast scenario's batch).
fn drain_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("outbox_drain");
    for dirty in [1usize, 100] {
        let store = SnapshotStore::new(256);
        let slots: Vec<_> = (0..dirty)
            .map(|i| {
                let symbol = Symbol::parse(&format!("S{i:03}")).expect("valid");
                let slot = store.get_or_create(symbol).expect("room");
                store.apply(&slot, &tick(symbol, 1), 1);
                slot
            })
            .collect();
        group.throughput(Throughput::Elements(dirty as u64));
        group.bench_function(format!("{dirty}_dirty_symbols"), |b| {
            b.iter_batched(
                || {
                    let mut outbox = Outbox::default();
                    for slot in &slots {
                        outbox.subscribe(Arc::clone(slot), Delivery::default(), None);
                        store.apply(slot, &tick(slot.symbol, 2), 2);
                        outbox.mark_dirty(slot.id);
                    }
                    outbox
                },
                |mut outbox| black_box(outbox.drain(Instant::now())),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, store_apply, quote_encode, fanout, drain_batch);
criterion_main!(benches);
