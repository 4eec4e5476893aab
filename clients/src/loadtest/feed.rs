//! The load tester as the upstream: generates ticks at a fixed rate on its own
//! OS thread and writes them either as JSON lines to every TCP client of a
//! listener (the gateway's `--feed tcp://ADDR`, or a peer server), or as NATS
//! `PUB md.<SYMBOL>` messages to a nats-server.
//!
//! Every line carries the tick's own per-symbol `seq` (starting at 1 each
//! run) and `ts` (µs since the epoch at generation), so clients can measure
//! tick-to-client latency end to end and count what they missed.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tickgate_feeds::now_micros;

use super::universe::{Popularity, Universe};

/// Where the generated ticks go.
#[derive(Debug, Clone)]
pub(crate) enum FeedSink {
    /// Listen here; every accepted connection gets every line.
    Listen(SocketAddr),
    /// Publish to nats-server's client port.
    Nats(SocketAddr),
}

/// Shared between the feed thread and the rest of the load tester.
pub(crate) struct FeedControl {
    /// Set to start generating ticks.
    pub(crate) go: AtomicBool,
    /// Set to stop the thread.
    pub(crate) stop: AtomicBool,
    /// Ticks written per symbol (index into the universe).
    pub(crate) published: Vec<AtomicU64>,
    /// Connections currently receiving the feed.
    pub(crate) consumers: AtomicU64,
    /// The address actually bound (for `--feed-listen 127.0.0.1:0`).
    pub(crate) local_addr: Mutex<Option<SocketAddr>>,
    pub(crate) write_errors: AtomicU64,
}

impl FeedControl {
    pub(crate) fn published_total(&self) -> u64 {
        self.published
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .sum()
    }
}

/// Starts the feed thread. Ticks flow only after `control.go` is set.
pub(crate) fn start(
    sink: FeedSink,
    universe: Arc<Universe>,
    rate: f64,
    popularity: Popularity,
) -> io::Result<(Arc<FeedControl>, thread::JoinHandle<()>)> {
    let control = Arc::new(FeedControl {
        go: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        published: (0..universe.len()).map(|_| AtomicU64::new(0)).collect(),
        consumers: AtomicU64::new(0),
        local_addr: Mutex::new(None),
        write_errors: AtomicU64::new(0),
    });
    let outputs: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    match sink {
        FeedSink::Listen(addr) => {
            let listener = TcpListener::bind(addr)?;
            *control.local_addr.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(listener.local_addr()?);
            let outputs = Arc::clone(&outputs);
            let control = Arc::clone(&control);
            thread::spawn(move || accept_loop(&listener, &outputs, &control));
        }
        FeedSink::Nats(addr) => {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            stream.set_nodelay(true)?;
            let mut writer = stream.try_clone()?;
            writer.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"lang\":\"tickgate-loadtest\",\"protocol\":1}\r\n")?;
            let pong = stream.try_clone()?;
            outputs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(writer);
            control.consumers.store(1, Ordering::Relaxed);
            thread::spawn(move || answer_nats_pings(stream, pong));
        }
    }
    let nats = matches!(sink, FeedSink::Nats(_));
    let thread_control = Arc::clone(&control);
    let handle = thread::Builder::new()
        .name("loadtest-feed".into())
        .spawn(move || generate(&universe, rate, popularity, nats, &outputs, &thread_control))?;
    Ok((control, handle))
}

fn accept_loop(listener: &TcpListener, outputs: &Mutex<Vec<TcpStream>>, control: &FeedControl) {
    let _ = listener.set_nonblocking(true);
    while !control.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_nodelay(true);
                outputs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(stream);
                control.consumers.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Replies to the server's keep-alive pings so a long run is not cut off.
fn answer_nats_pings(stream: TcpStream, mut writer: TcpStream) {
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line.starts_with("PING") && writer.write_all(b"PONG\r\n").is_err() {
            return;
        }
        line.clear();
    }
}

/// Writes ticks in 1 ms batches so the rate holds however the OS schedules us.
fn generate(
    universe: &Universe,
    rate: f64,
    popularity: Popularity,
    nats: bool,
    outputs: &Mutex<Vec<TcpStream>>,
    control: &FeedControl,
) {
    while !control.go.load(Ordering::Relaxed) {
        if control.stop.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    let mut picker = universe.picker(popularity, 0x5eed);
    let mut sent: u64 = 0;
    let mut seqs = vec![0u64; universe.len()];
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut line = Vec::with_capacity(256);
    while !control.stop.load(Ordering::Relaxed) {
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        if due <= sent {
            thread::sleep(Duration::from_micros(500));
            continue;
        }
        // Never more than 100 ms of ticks in one write.
        let count = (due - sent).min((rate / 10.0).max(1.0) as u64);
        batch.clear();
        let ts = now_micros();
        let first = seqs.clone();
        for _ in 0..count {
            let index = picker.next_index();
            seqs[index] += 1;
            line.clear();
            universe.write_tick(&mut line, index, seqs[index], ts);
            if nats {
                let symbol = universe.name(index);
                let _ = write!(batch, "PUB md.{symbol} {}\r\n", line.len());
                batch.extend_from_slice(&line);
                batch.extend_from_slice(b"\r\n");
            } else {
                batch.extend_from_slice(&line);
                batch.push(b'\n');
            }
        }
        sent += count;
        let mut outputs = outputs.lock().unwrap_or_else(|e| e.into_inner());
        let before = outputs.len();
        outputs.retain_mut(|out| out.write_all(&batch).is_ok());
        let lost = before - outputs.len();
        if lost > 0 {
            control
                .write_errors
                .fetch_add(lost as u64, Ordering::Relaxed);
            control.consumers.fetch_sub(lost as u64, Ordering::Relaxed);
        }
        if outputs.is_empty() {
            // Nobody received these: do not count them as published.
            seqs = first;
            continue;
        }
        drop(outputs);
        for (index, (now, before)) in seqs.iter().zip(&first).enumerate() {
            if now != before {
                control.published[index].store(*now, Ordering::Relaxed);
            }
        }
    }
}
