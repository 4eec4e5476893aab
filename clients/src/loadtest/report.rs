//! The load test's result: totals, percentiles, CPU and memory of the load
//! tester and (with `--server-pid`) of the server, as text or JSON.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::shared::{Shared, lock};
use super::{LoadtestArgs, PeerMode, Popularity};

/// CPU time and memory of one process, read from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcSample {
    /// User + system CPU seconds, all threads.
    pub(crate) cpu_seconds: f64,
    pub(crate) rss_bytes: u64,
}

impl ProcSample {
    pub(crate) fn own() -> Self {
        Self::read("self")
    }

    pub(crate) fn take(pid: u32) -> Self {
        Self::read(&pid.to_string())
    }

    fn read(pid: &str) -> Self {
        // Fields 14 and 15 of /proc/PID/stat (after the `(comm)` field, which
        // may hold spaces) are utime and stime in clock ticks (100 Hz on Linux).
        let cpu_seconds = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let after = stat.rsplit_once(')')?.1;
                let fields: Vec<&str> = after.split_whitespace().collect();
                let utime: f64 = fields.get(11)?.parse().ok()?;
                let stime: f64 = fields.get(12)?.parse().ok()?;
                Some((utime + stime) / 100.0)
            })
            .unwrap_or(0.0);
        let rss_bytes = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(0);
        Self {
            cpu_seconds,
            rss_bytes,
        }
    }
}

pub(crate) struct Inputs<'a> {
    pub(crate) args: &'a LoadtestArgs,
    pub(crate) shared: &'a Shared,
    pub(crate) stalled_clients: usize,
    pub(crate) connect_seconds: f64,
    pub(crate) handshake_span: (Option<Duration>, Option<Duration>),
    pub(crate) measured: f64,
    pub(crate) quotes_window: u64,
    pub(crate) frames_window: u64,
    pub(crate) drain_seconds: f64,
    pub(crate) expected: Option<u64>,
    pub(crate) published: Option<u64>,
    pub(crate) feed_write_errors: Option<u64>,
    pub(crate) self_start: ProcSample,
    pub(crate) self_go: ProcSample,
    pub(crate) self_end: ProcSample,
    pub(crate) server_before: Option<ProcSample>,
    pub(crate) server_connected: Option<ProcSample>,
    pub(crate) server_go: Option<ProcSample>,
    pub(crate) server_end: Option<ProcSample>,
    pub(crate) server_peak_rss: u64,
}

/// The whole result, as `--json` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    label: String,
    url: String,
    mode: PeerMode,
    clients: usize,
    symbols_per_client: usize,
    universe: usize,
    popularity: Popularity,
    duration_seconds: f64,
    feed: Option<FeedReport>,
    connections: Connections,
    throughput: Throughput,
    delivery: Delivery,
    /// Tick-to-client latency of clients that never stalled.
    latency_ms: Latency,
    slow_consumers: Option<SlowConsumers>,
    reconnect: Option<Reconnect>,
    errors: BTreeMap<String, u64>,
    closes_by_code: BTreeMap<u16, u64>,
    loadtest_cpu: Cpu,
    server: Option<Server>,
}

#[derive(Debug, Serialize)]
struct FeedReport {
    rate_per_second: f64,
    popularity: Popularity,
    ticks_published: u64,
    write_errors: u64,
}

#[derive(Debug, Serialize)]
struct Connections {
    established: u64,
    subscribed: u64,
    failed: u64,
    connect_phase_seconds: f64,
    handshakes_per_second: f64,
}

#[derive(Debug, Serialize)]
struct Throughput {
    quotes_per_second: f64,
    frames_per_second: f64,
    quotes_per_frame: f64,
}

#[derive(Debug, Serialize)]
struct Delivery {
    /// Quotes the clients should have seen: ticks published × subscribers.
    expected: Option<u64>,
    /// Update quotes received over the whole run (incl. drain).
    received: u64,
    /// received / expected.
    ratio: Option<f64>,
    /// Ticks skipped between two received seqs (conflated or lost).
    seq_gaps: u64,
    /// Seqs clients never reached by the end of the drain.
    missing_at_end: Option<u64>,
    /// Every client ended holding the latest seq of every symbol.
    all_latest_delivered: Option<bool>,
    /// Quotes with a seq not above one already held.
    seq_regressions: u64,
    /// Quotes for symbols the client did not subscribe to.
    unexpected_quotes: u64,
    drain_seconds: f64,
}

#[derive(Debug, Serialize)]
struct Latency {
    count: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    /// `[quantile, ms]` pairs for plotting the distribution.
    cdf: Vec<(f64, f64)>,
}

/// Quantiles of [`Latency::cdf`].
const CDF_QUANTILES: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999, 1.0,
];

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
        Self {
            count: h.len(),
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: h.max() as f64 / 1e3,
            cdf: CDF_QUANTILES.iter().map(|&q| (q, ms(q))).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct SlowConsumers {
    stalled_clients: usize,
    stall_after_seconds: f64,
    stall_seconds: f64,
    latency_ms: Latency,
    converged: usize,
    convergence_ms: Option<Spread>,
}

#[derive(Debug, Serialize)]
struct Reconnect {
    at_seconds: f64,
    receiving_again: usize,
    time_to_receiving_ms: Option<Spread>,
}

#[derive(Debug, Serialize)]
struct Spread {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Spread {
    fn of(micros: &mut [u64]) -> Option<Self> {
        if micros.is_empty() {
            return None;
        }
        micros.sort_unstable();
        let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
        Some(Self {
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

#[derive(Debug, Serialize)]
struct Cpu {
    /// CPU seconds during the measured phase.
    cpu_seconds: f64,
    /// Of one core, during the measured phase.
    core_share: f64,
    /// CPU seconds of the whole run.
    total_cpu_seconds: f64,
}

#[derive(Debug, Serialize)]
struct Server {
    pid: u32,
    cpu_seconds: f64,
    core_share: f64,
    /// Server CPU per delivered quote during the measured phase.
    cpu_ns_per_quote: Option<f64>,
    rss_before_bytes: u64,
    rss_connected_bytes: u64,
    rss_peak_bytes: u64,
    rss_end_bytes: u64,
    /// (rss_connected − rss_before) / established connections.
    rss_per_connection_bytes: Option<f64>,
}

impl Report {
    pub(crate) fn build(i: Inputs<'_>) -> Self {
        let a = i.args;
        let s = i.shared;
        let received = s.quotes.load(Ordering::Relaxed);
        let progress = s.progress.load(Ordering::Relaxed);
        let established = s.established.load(Ordering::Relaxed);
        let handshakes_per_second = match i.handshake_span {
            (Some(first), Some(last)) if last > first => {
                established.saturating_sub(1) as f64 / (last - first).as_secs_f64()
            }
            _ => 0.0,
        };
        let quotes_per_second = i.quotes_window as f64 / i.measured;
        let server = a.server_pid.map(|pid| {
            let before = i.server_before.unwrap_or_default();
            let connected = i.server_connected.unwrap_or_default();
            let go = i.server_go.unwrap_or_default();
            let end = i.server_end.unwrap_or_default();
            let cpu = end.cpu_seconds - go.cpu_seconds;
            Server {
                pid,
                cpu_seconds: cpu,
                core_share: cpu / i.measured,
                cpu_ns_per_quote: (i.quotes_window > 0).then(|| cpu * 1e9 / i.quotes_window as f64),
                rss_before_bytes: before.rss_bytes,
                rss_connected_bytes: connected.rss_bytes,
                rss_peak_bytes: i.server_peak_rss,
                rss_end_bytes: end.rss_bytes,
                rss_per_connection_bytes: (established > 0).then(|| {
                    (connected.rss_bytes as f64 - before.rss_bytes as f64) / established as f64
                }),
            }
        });
        let self_cpu = i.self_end.cpu_seconds - i.self_go.cpu_seconds;
        Self {
            label: a.label.clone(),
            url: a.url.clone(),
            mode: a.mode,
            clients: a.clients,
            symbols_per_client: a.symbols_per_client,
            universe: a.universe,
            popularity: a.popularity,
            duration_seconds: i.measured,
            feed: i.published.map(|published| FeedReport {
                rate_per_second: a.feed_rate,
                popularity: a.feed_popularity,
                ticks_published: published,
                write_errors: i.feed_write_errors.unwrap_or(0),
            }),
            connections: Connections {
                established,
                subscribed: s.subscribed.load(Ordering::Relaxed),
                failed: s.failed.load(Ordering::Relaxed),
                connect_phase_seconds: i.connect_seconds,
                handshakes_per_second,
            },
            throughput: Throughput {
                quotes_per_second,
                frames_per_second: i.frames_window as f64 / i.measured,
                quotes_per_frame: if i.frames_window > 0 {
                    i.quotes_window as f64 / i.frames_window as f64
                } else {
                    0.0
                },
            },
            delivery: Delivery {
                expected: i.expected,
                received,
                ratio: i.expected.map(|e| {
                    if e == 0 {
                        1.0
                    } else {
                        received as f64 / e as f64
                    }
                }),
                seq_gaps: s.gaps.load(Ordering::Relaxed),
                missing_at_end: i.expected.map(|e| e.saturating_sub(progress)),
                all_latest_delivered: i.expected.map(|e| progress >= e),
                seq_regressions: s.regressions.load(Ordering::Relaxed),
                unexpected_quotes: s.unexpected.load(Ordering::Relaxed),
                drain_seconds: i.drain_seconds,
            },
            latency_ms: Latency::of(&lock(&s.latency)),
            slow_consumers: (i.stalled_clients > 0).then(|| {
                let mut micros = lock(&s.convergence_micros).clone();
                SlowConsumers {
                    stalled_clients: i.stalled_clients,
                    stall_after_seconds: a.stall_after.as_secs_f64(),
                    stall_seconds: a.stall_for.as_secs_f64(),
                    latency_ms: Latency::of(&lock(&s.latency_stalled)),
                    converged: micros.len(),
                    convergence_ms: Spread::of(&mut micros),
                }
            }),
            reconnect: a.reconnect_at.map(|at| {
                let mut micros = lock(&s.reconnect_micros).clone();
                Reconnect {
                    at_seconds: at.as_secs_f64(),
                    receiving_again: micros.len(),
                    time_to_receiving_ms: Spread::of(&mut micros),
                }
            }),
            errors: lock(&s.errors).clone(),
            closes_by_code: lock(&s.closes).clone(),
            loadtest_cpu: Cpu {
                cpu_seconds: self_cpu,
                core_share: self_cpu / i.measured,
                total_cpu_seconds: i.self_end.cpu_seconds - i.self_start.cpu_seconds,
            },
            server,
        }
    }

    /// Prints the report on stdout: JSON for scripts, text for people.
    pub(crate) fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string_pretty(self).unwrap_or_default());
        } else {
            println!("{}", self.text());
        }
    }

    /// A human summary.
    pub(crate) fn text(&self) -> String {
        let d = &self.delivery;
        let l = &self.latency_ms;
        let mut out = format!(
            "{} clients × {} symbols ({} universe, {:?}) against {} ({:?}) for {:.1}s\n\
             connections: {} established, {} subscribed, {} failed; {:.0} handshakes/s\n\
             throughput:  {:.0} quotes/s in {:.0} frames/s ({:.1} quotes/frame)\n\
             latency:     p50 {:.2} ms  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} quotes)\n\
             delivery:    {} received, {} seq gaps, {} regressions, {} unexpected",
            self.clients,
            self.symbols_per_client,
            self.universe,
            self.popularity,
            self.url,
            self.mode,
            self.duration_seconds,
            self.connections.established,
            self.connections.subscribed,
            self.connections.failed,
            self.connections.handshakes_per_second,
            self.throughput.quotes_per_second,
            self.throughput.frames_per_second,
            self.throughput.quotes_per_frame,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            l.count,
            d.received,
            d.seq_gaps,
            d.seq_regressions,
            d.unexpected_quotes,
        );
        if let (Some(expected), Some(ratio), Some(missing)) =
            (d.expected, d.ratio, d.missing_at_end)
        {
            out.push_str(&format!(
                " of {expected} expected (ratio {ratio:.4}); {missing} seqs missing at the end"
            ));
        }
        if let Some(slow) = &self.slow_consumers {
            out.push_str(&format!(
                "\nstalled:     {} clients, p99 {:.2} ms, {} converged{}",
                slow.stalled_clients,
                slow.latency_ms.p99,
                slow.converged,
                slow.convergence_ms
                    .as_ref()
                    .map_or(String::new(), |c| format!(
                        " (p50 {:.1} ms, max {:.1} ms)",
                        c.p50, c.max
                    )),
            ));
        }
        if let Some(r) = &self.reconnect {
            out.push_str(&format!(
                "\nreconnect:   {} receiving again{}",
                r.receiving_again,
                r.time_to_receiving_ms
                    .as_ref()
                    .map_or(String::new(), |c| format!(
                        " (p50 {:.1} ms, max {:.1} ms)",
                        c.p50, c.max
                    )),
            ));
        }
        if !self.errors.is_empty() || !self.closes_by_code.is_empty() {
            out.push_str(&format!(
                "\nerrors:      {:?}; closes {:?}",
                self.errors, self.closes_by_code
            ));
        }
        out.push_str(&format!(
            "\nload tester: {:.2} CPU s ({:.0}% of a core)",
            self.loadtest_cpu.cpu_seconds,
            self.loadtest_cpu.core_share * 100.0
        ));
        if let Some(server) = &self.server {
            out.push_str(&format!(
                "\nserver:      {:.2} CPU s ({:.0}% of a core), RSS {:.1} → {:.1} MiB (peak {:.1}), {:.0} B per connection",
                server.cpu_seconds,
                server.core_share * 100.0,
                server.rss_before_bytes as f64 / 1048576.0,
                server.rss_connected_bytes as f64 / 1048576.0,
                server.rss_peak_bytes as f64 / 1048576.0,
                server.rss_per_connection_bytes.unwrap_or(0.0),
            ));
        }
        out
    }
}
