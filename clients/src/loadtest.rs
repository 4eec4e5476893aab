//! `tickgate loadtest`: opens many WebSocket clients against a gateway (or a
//! peer server speaking the same contract, or nats-server), optionally acts
//! as the gateway's upstream feed, and reports what the clients saw.
//!
//! A run has four phases: connect (N clients at a controlled rate, each
//! subscribing to K symbols), go (the feed, if ours, starts writing ticks),
//! drain (the feed stops; wait until every client holds every symbol's latest
//! seq, or the drain limit), report. Everything is bounded: client count,
//! run time, drain time.
//!
//! Tick-to-client latency is the client's receive time minus the quote's
//! `ts` (set by the feed when the tick was generated, so it covers the feed
//! hop, the gateway and the client socket). Delivery is counted by `seq`:
//! every quote carries its symbol's sequence number, so a client knows
//! exactly how many ticks it was never sent (conflated) and whether it ends
//! holding the latest one.
//!
//! - `ws`: a minimal WebSocket client (cheap per frame, small buffers).
//! - `scan`: reads type, symbol, seq and ts out of frames without a parser.
//! - `client`: one simulated dashboard (tickgate protocol, NATS over WS, or
//!   Socket.IO over engine.io's WebSocket transport).
//! - `feed`: the upstream: JSON lines over TCP, or NATS `PUB`.
//! - `universe`: symbols, popularity, tick lines.
//! - `report`: totals, percentiles, CPU and memory, text and JSON output.

mod client;
mod feed;
mod report;
mod scan;
mod universe;
mod ws;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use universe::Popularity;

use self::client::ClientPlan;
use self::feed::{FeedControl, FeedSink};
use self::universe::Universe;

/// Most clients one run may open.
pub const MAX_CLIENTS: usize = 50_000;
/// Longest measured phase of one run.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// Which protocol the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerMode {
    /// tickgate's client protocol (also spoken by the peers in benches/peers).
    Tickgate,
    /// The NATS text protocol over WebSocket (nats-server's websocket listener);
    /// each symbol is the subject `md.<SYMBOL>`.
    Nats,
    /// Socket.IO v5 over engine.io v4, WebSocket transport only (the URL is
    /// `ws://HOST:PORT/socket.io/?EIO=4&transport=websocket`): the client
    /// emits `subscribe` with `{"symbols":[…]}`, waits for `subscribed` and
    /// reads the quotes of `update` events.
    #[value(name = "socketio")]
    #[serde(rename = "socketio")]
    SocketIo,
}

/// Where the symbols come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolSource {
    /// `LT0000`, `LT0001`, … (use with a feed of ours).
    Generated,
    /// The gateway's simulator universe, most active first (use with `tickgate --sim-rate`).
    Simulator,
}

/// `tickgate loadtest` options.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// WebSocket URL of the server under test (ws:// or wss://).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// Client protocol.
    #[arg(long, value_enum, default_value = "tickgate")]
    pub mode: PeerMode,
    /// Number of client connections (at most 50,000).
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// New connections per second while connecting.
    #[arg(long, default_value_t = 2_000.0)]
    pub connect_rate: f64,
    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Symbols each client subscribes to (0: connect and stay idle).
    #[arg(long, default_value_t = 10)]
    pub symbols_per_client: usize,
    /// Size of the symbol universe.
    #[arg(long, default_value_t = 100)]
    pub universe: usize,
    /// Where symbol names come from.
    #[arg(long, value_enum, default_value = "generated")]
    pub symbol_source: SymbolSource,
    /// How subscriptions spread over the universe.
    #[arg(long, value_enum, default_value = "uniform")]
    pub popularity: Popularity,
    /// Zipf exponent s (weight of rank r is 1/r^s).
    #[arg(long, default_value_t = 1.0)]
    pub zipf_exponent: f64,
    /// Measured phase, after every client has subscribed (e.g. 10s, 500ms).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Act as the generic TCP feed: listen here and write JSON lines to every
    /// connection (point the server's `--feed tcp://ADDR` at it).
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "feed_nats")]
    pub feed_listen: Option<SocketAddr>,
    /// Act as the feed by publishing `md.<SYMBOL>` to nats-server at this address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub feed_nats: Option<SocketAddr>,
    /// Feed: ticks per second over the whole universe.
    #[arg(long, default_value_t = 1_000.0)]
    pub feed_rate: f64,
    /// Feed: how ticks spread over the universe (uniform is round-robin).
    #[arg(long, value_enum, default_value = "uniform")]
    pub feed_popularity: Popularity,
    /// Feed: how long to wait for the server to connect to the feed.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub feed_wait: Duration,
    /// Share of clients (0..1) that stop reading during the run.
    #[arg(long, default_value_t = 0.0)]
    pub stall_share: f64,
    /// When stalled clients stop reading, counted from the start of the feed.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub stall_after: Duration,
    /// How long stalled clients stop reading.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub stall_for: Duration,
    /// Receive buffer (SO_RCVBUF) of stalled clients, so the kernel does not
    /// absorb the stall.
    #[arg(long, default_value_t = 4096)]
    pub stall_recv_buffer: u32,
    /// Every client drops its connection at this time (from the start of the
    /// feed) and reconnects at once: a reconnect storm.
    #[arg(long, value_parser = parse_duration)]
    pub reconnect_at: Option<Duration>,
    /// After the feed stops, wait at most this long for clients to catch up.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub drain: Duration,
    /// Per-connection limit on the opening handshake.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub connect_timeout: Duration,
    /// Initial read buffer per client in bytes (grows to the largest frame).
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
    /// For wss://: PEM file of a CA to trust besides the public roots (for
    /// example the one `tickgate dev-cert` writes).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Bearer token sent in the `Authorization` header.
    #[arg(long)]
    pub token: Option<String>,
    /// PID of the server under test: report its CPU time and resident memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Runtime worker threads of the load tester (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print one JSON report on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Free-form label copied into the report (scenario scripts use it).
    #[arg(long, default_value = "")]
    pub label: String,
}

/// Runs a load test to completion and prints its report. Exit status 64 for
/// bad arguments, 1 when the run could not be carried out, 0 otherwise.
pub fn main(args: LoadtestArgs) -> ExitCode {
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tickgate loadtest: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let json = args.json;
    match runtime.block_on(run(args)) {
        Ok(report) => {
            report.print(json);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tickgate loadtest: {error:#}");
            if error.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(64)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// Host, port and path of the server under test.
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    /// For `wss://`: the connector and the name the certificate must carry.
    pub(crate) tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    pub(crate) host: String,
    pub(crate) path: String,
}

/// Everything the client tasks share.
pub(crate) struct Shared {
    pub(crate) universe: Arc<Universe>,
    pub(crate) target: Target,
    pub(crate) mode: PeerMode,
    pub(crate) token: Option<String>,
    pub(crate) read_buffer: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) stall_after: Duration,
    pub(crate) stall_for: Duration,
    pub(crate) stall_recv_buffer: u32,
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
    started: Instant,
    first_established: Mutex<Option<Duration>>,
    last_established: Mutex<Option<Duration>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
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
    fn add(&self, local: &mut client::Local, stalled: bool) {
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

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{text}`: unit must be ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// `ws://host:port/path` → address, Host header, path.
async fn resolve(url: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<Target> {
    let (rest, tls, default_port) = if let Some(rest) = url.strip_prefix("wss://") {
        (rest, true, 443)
    } else if let Some(rest) = url.strip_prefix("ws://") {
        (rest, false, 80)
    } else {
        bail!(UsageError(format!(
            "--url {url:?}: expected ws://HOST:PORT/PATH or wss://HOST:PORT/PATH"
        )));
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    let addr = tokio::net::lookup_host(&with_port)
        .await
        .with_context(|| format!("cannot resolve {with_port}"))?
        .next()
        .with_context(|| format!("{with_port} resolves to no address"))?;
    let tls = if tls {
        let config = tickgate_feeds::transport::tls_client_config(ca_file)
            .map_err(|e| UsageError(format!("--ca-file: {e}")))?;
        let host = with_port
            .rsplit_once(':')
            .map_or(with_port.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let name = rustls_pki_types::ServerName::try_from(host)
            .map_err(|e| UsageError(format!("--url {url:?}: {e}")))?;
        Some((tokio_rustls::TlsConnector::from(config), name))
    } else {
        None
    };
    Ok(Target {
        addr,
        tls,
        host: authority.to_owned(),
        path,
    })
}

fn validate(args: &LoadtestArgs) -> Result<(), UsageError> {
    let mut problems = Vec::new();
    if args.clients == 0 || args.clients > MAX_CLIENTS {
        problems.push(format!("--clients must be 1..={MAX_CLIENTS}"));
    }
    if args.duration > MAX_DURATION || args.duration.is_zero() {
        problems.push("--duration must be more than 0 and at most 10m".to_owned());
    }
    if args.connect_rate.is_nan() || args.connect_rate <= 0.0 {
        problems.push("--connect-rate must be positive".to_owned());
    }
    if !(0.0..=1.0).contains(&args.stall_share) {
        problems.push("--stall-share must be between 0 and 1".to_owned());
    }
    if args.universe == 0 || args.universe > 100_000 {
        problems.push("--universe must be 1..=100000".to_owned());
    }
    if args.feed_rate.is_nan() || args.feed_rate <= 0.0 || args.feed_rate > 10_000_000.0 {
        problems.push("--feed-rate must be more than 0 and at most 10,000,000".to_owned());
    }
    if args.drain > Duration::from_secs(60) {
        problems.push("--drain must be at most 60s".to_owned());
    }
    if args.mode == PeerMode::SocketIo
        && !(args.url.contains("EIO=4") && args.url.contains("transport=websocket"))
    {
        problems.push(
            "--mode socketio needs a URL like ws://HOST:PORT/socket.io/?EIO=4&transport=websocket"
                .to_owned(),
        );
    }
    if let Some(addr) = args.feed_listen.or(args.feed_nats)
        && !addr.ip().is_loopback()
    {
        problems.push("the feed talks to loopback addresses only".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(UsageError(problems.join("; ")))
    }
}

async fn run(args: LoadtestArgs) -> anyhow::Result<report::Report> {
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
    let histogram = || Histogram::<u64>::new_with_bounds(1, 120_000_000, 3);
    let shared = Arc::new(Shared {
        universe: Arc::clone(&universe),
        target,
        mode: args.mode,
        token: args.token.clone(),
        read_buffer: args.read_buffer,
        connect_timeout: args.connect_timeout,
        stall_after: args.stall_after,
        stall_for: args.stall_for,
        stall_recv_buffer: args.stall_recv_buffer,
        reconnect_at: args.reconnect_at,
        feed: feed.as_ref().map(|(c, _)| Arc::clone(c)),
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
    });
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
        handshake_span: (
            *lock(&shared.first_established),
            *lock(&shared.last_established),
        ),
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

/// Loopback addresses the clients of a loopback target connect from. One
/// source address gives only ~28,000 ports, and the kernel's search for a
/// free one slows down as they fill: a reconnect storm of 10,000 clients
/// spent a quarter of the load tester's CPU there.
const LOOPBACK_SOURCES: usize = 250;

/// The source address of client `i`: spread over 127.0.0.2–127.0.0.251 when
/// the target is on IPv4 loopback, as clients from many hosts would be.
fn loopback_source(target: SocketAddr, i: usize) -> Option<std::net::IpAddr> {
    match target {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => {
            Some(std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % LOOPBACK_SOURCES) as u8).into())
        }
        _ => None,
    }
}

fn plan_clients(args: &LoadtestArgs, universe: &Universe, target: SocketAddr) -> Vec<ClientPlan> {
    let stalled_every = if args.stall_share > 0.0 {
        (1.0 / args.stall_share).round().max(1.0) as usize
    } else {
        usize::MAX
    };
    (0..args.clients)
        .map(|i| ClientPlan {
            symbols: universe.choose(args.symbols_per_client, args.popularity, i as u64 + 1),
            stalled: stalled_every != usize::MAX && i % stalled_every == stalled_every - 1,
            source: loopback_source(target, i),
        })
        .collect()
}

fn count_per_symbol(plans: &[ClientPlan], n: usize) -> Vec<u64> {
    let mut counts = vec![0u64; n];
    for plan in plans {
        for &s in &plan.symbols {
            counts[s as usize] += 1;
        }
    }
    counts
}

/// One line a second on stderr: connections, rates, latency so far.
async fn progress_line(shared: Arc<Shared>, clients: usize, quiet: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn loopback_clients_come_from_many_loopback_addresses() {
        let addr = |s: &str| s.parse::<SocketAddr>().expect("address");
        let local = addr("127.0.0.1:8080");
        let sources: std::collections::BTreeSet<_> = (0..1000)
            .filter_map(|i| loopback_source(local, i))
            .collect();
        assert_eq!(sources.len(), LOOPBACK_SOURCES);
        assert!(sources.iter().all(|ip| ip.is_loopback()));
        assert!(
            !sources.contains(&local.ip()),
            "never the target's own address"
        );
        // Anywhere else, the kernel picks the source as for any client.
        assert_eq!(loopback_source(addr("10.1.2.3:443"), 7), None);
        assert_eq!(loopback_source(addr("[::1]:443"), 7), None);
    }
}
