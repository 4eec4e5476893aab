//! The thin async layer around the pure parsers: connect, read, decode,
//! filter, hand on; report state; reconnect with backoff; count and log
//! (rate-limited) everything that is skipped. One task per feed, each
//! watching its `CancellationToken`.
//!
//! States sent to the gateway: `Connecting` while (re)connecting, `Live`
//! once ticks flow (venue greetings and acknowledgements are not data),
//! `Stale` after `staleness` without data, `Down` after a disconnect, a
//! failed connect or a venue's refusal of the credentials (while waiting to
//! retry; a refusal never resets the backoff).

mod connected;
mod log_limit;
mod pipeline;
mod replay;

pub(crate) use connected::{Endpoint, run_connected};
pub(crate) use pipeline::{Pipeline, run_forwarded};
pub(crate) use replay::{Replay, run_replay};

use crate::now_micros;

/// The receiver is gone or shutdown was requested: the task ends.
#[derive(Debug)]
pub(crate) struct Stop;

fn jitter_seed(feed: &str) -> u64 {
    feed.bytes()
        .fold(now_micros(), |acc, b| acc.rotate_left(5) ^ u64::from(b))
}
