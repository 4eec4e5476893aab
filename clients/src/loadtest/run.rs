//! One run from start to report: connect and subscribe every client at the
//! configured rate, let the feed run for the measured phase, drain until
//! every client holds the latest seq, then gather the report's inputs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::Semaphore;

use super::args::{LoadtestArgs, SymbolSource, validate};
use super::client;
use super::feed::{self, FeedSink};
use super::plan::{count_per_symbol, plan_clients};
use super::progress::progress_line;
use super::report;
use super::shared::{Shared, lock};
use super::target::resolve;
use super::universe::Universe;

/// Runs the four phases; bad arguments come back as [`UsageError`](super::args::UsageError).
pub(crate) async fn run(args: LoadtestArgs) -> anyhow::Result<report::Report> {
    validate(&args)?;
    let target = resolve(&args.url, args.ca_file.as_deref()).await?;
    let universe = Arc::new(match args.symbol_source {
        SymbolSource::Generated => Universe::generated(args.universe, args.zipf_exponent),
        SymbolSource::Simulator => Universe::simulator(args.universe, args.zipf_exponent),
    });
    let server_before = args.server_pid.map(report::ProcSample::take);
    let feed = match (args.feed_listen, args.feed_nats) {
        (Some(addr), _) => Some(FeedSink::Listen(addr)),
        (None, Some(addr)) => Some(FeedSink::Nats(addr)),
        (None, None) => None,
    }
    .map(|sink| {
        feed::start(
            sink,
            Arc::clone(&universe),
            args.feed_rate,
            args.feed_popularity,
        )
    })
    .transpose()
    .context("cannot start the feed")?;
    if let Some((control, _)) = &feed
        && let Some(addr) = *lock(&control.local_addr)
    {
        eprintln!("{{\"event\":\"feed_listening\",\"addr\":\"{addr}\"}}");
    }
    let shared = Arc::new(Shared::new(
        &args,
        Arc::clone(&universe),
        target,
        feed.as_ref().map(|(c, _)| Arc::clone(c)),
    )?);
    let self_start = report::ProcSample::own();

    // Phase 1: connect and subscribe.
    let plans = plan_clients(&args, &universe, shared.target.addr);
    let subscriptions_per_symbol = count_per_symbol(&plans, universe.len());
    let stalled_clients = plans.iter().filter(|p| p.stalled).count();
    let handshakes = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let progress = tokio::spawn(progress_line(Arc::clone(&shared), args.clients, args.quiet));
    let connect_started = Instant::now();
    for (i, plan) in plans.into_iter().enumerate() {
        let due = connect_started + Duration::from_secs_f64(i as f64 / args.connect_rate);
        tokio::time::sleep_until(due.into()).await;
        let permit = Arc::clone(&handshakes).acquire_owned().await?;
        tasks.spawn(client::run(plan, Arc::clone(&shared), permit));
    }
    let connect_limit = connect_started + args.connect_timeout * 2 + Duration::from_secs(5);
    while shared.subscribed.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
        < args.clients as u64
        && Instant::now() < connect_limit
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let server_connected = match args.server_pid {
        Some(pid) => {
            // Let allocations settle before reading RSS.
            tokio::time::sleep(Duration::from_millis(500)).await;
            Some(report::ProcSample::take(pid))
        }
        None => None,
    };

    // Phase 2: the feed runs.
    if let Some((control, _)) = &feed {
        let wait_until = Instant::now() + args.feed_wait;
        while control.consumers.load(Ordering::Relaxed) == 0 && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if control.consumers.load(Ordering::Relaxed) == 0 {
            shared.cancel.cancel();
            control.stop.store(true, Ordering::Relaxed);
            bail!("nobody connected to the feed within {:?}", args.feed_wait);
        }
    }
    let quotes_before = shared.quotes.load(Ordering::Relaxed);
    let frames_before = shared.frames.load(Ordering::Relaxed);
    let self_go = report::ProcSample::own();
    let server_go = args.server_pid.map(report::ProcSample::take);
    let go = Instant::now();
    let _ = shared.go.set(go);
    if let Some((control, _)) = &feed {
        control.go.store(true, Ordering::Relaxed);
    }
    let mut server_peak_rss = server_go.as_ref().map_or(0, |s| s.rss_bytes);
    while go.elapsed() < args.duration {
        tokio::time::sleep(
            Duration::from_millis(250).min(args.duration.saturating_sub(go.elapsed())),
        )
        .await;
        if let Some(pid) = args.server_pid {
            server_peak_rss = server_peak_rss.max(report::ProcSample::take(pid).rss_bytes);
        }
    }
    let measured = go.elapsed().as_secs_f64();
    let quotes_window = shared.quotes.load(Ordering::Relaxed) - quotes_before;
    let frames_window = shared.frames.load(Ordering::Relaxed) - frames_before;
    let self_end = report::ProcSample::own();
    let server_end = args.server_pid.map(report::ProcSample::take);

    // Phase 3: drain.
    let expected = feed.as_ref().map(|(control, _)| {
        control.stop.store(true, Ordering::Relaxed);
        // Let the feed thread finish its last batch before reading counts.
        std::thread::sleep(Duration::from_millis(5));
        control
            .published
            .iter()
            .zip(&subscriptions_per_symbol)
            .map(|(p, &subs)| p.load(Ordering::Relaxed) * subs)
            .sum::<u64>()
    });
    let drain_started = Instant::now();
    if let Some(expected) = expected {
        while shared.progress.load(Ordering::Relaxed) < expected
            && drain_started.elapsed() < args.drain
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    shared.cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    progress.abort();
    let published = feed.as_ref().map(|(control, _)| control.published_total());
    let feed_write_errors = feed
        .as_ref()
        .map(|(control, _)| control.write_errors.load(Ordering::Relaxed));

    Ok(report::Report::build(report::Inputs {
        args: &args,
        shared: &shared,
        stalled_clients,
        connect_seconds,
        handshake_span: shared.handshake_span(),
        measured,
        quotes_window,
        frames_window,
        drain_seconds,
        expected,
        published,
        feed_write_errors,
        self_start,
        self_go,
        self_end,
        server_before,
        server_connected,
        server_go,
        server_end,
        server_peak_rss,
    }))
}
