//! Process figures (memory, CPU, file descriptors, threads, start time),
//! read from /proc at each scrape on Linux.

#[cfg(target_os = "linux")]
use metrics::{counter, gauge};

#[cfg(target_os = "linux")]
use super::*;

/// Linux process figures from /proc; silently absent elsewhere.
pub fn observe_process() {
    #[cfg(target_os = "linux")]
    {
        // Clock ticks per second and page size are 100 and 4096 on every
        // Linux platform tickgate targets (x86_64, aarch64).
        const TICKS: f64 = 100.0;
        const PAGE: f64 = 4096.0;
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesized command name, which may hold spaces.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
            let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
            if let (Some(utime), Some(stime)) = (field(14), field(15)) {
                counter!(PROCESS_CPU).absolute(((utime + stime) / TICKS) as u64);
            }
            if let Some(threads) = field(20) {
                gauge!(PROCESS_THREADS).set(threads);
            }
            if let Some(vsize) = field(23) {
                gauge!(PROCESS_VIRTUAL_MEMORY).set(vsize);
            }
            if let Some(rss) = field(24) {
                gauge!(PROCESS_RESIDENT_MEMORY).set(rss * PAGE);
            }
            if let (Some(start), Some(boot)) = (field(22), boot_time()) {
                gauge!(PROCESS_START_TIME).set(boot + start / TICKS);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            gauge!(PROCESS_OPEN_FDS).set(dir.count() as f64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits")
            && let Some(line) = limits.lines().find(|l| l.starts_with("Max open files"))
            && let Some(soft) = line
                .split_whitespace()
                .nth(3)
                .and_then(|v| v.parse::<f64>().ok())
        {
            gauge!(PROCESS_MAX_FDS).set(soft);
        }
    }
}

#[cfg(target_os = "linux")]
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}
