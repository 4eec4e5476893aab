//! Replay feeds: play a `.jsonl` recording, paced by the ticks' `ts` or as
//! fast as possible, looping if asked.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};
use tracing::{info, warn};

use super::pipeline::Pipeline;
use super::{Stop, jitter_seed};
use crate::FeedState;
use crate::backoff::Backoff;
use crate::config::FeedPlan;
use crate::parse::ParseError;
use crate::telemetry;
use crate::transport::{End, Frame, LineReader};

/// Most ticks gathered into one batch when replaying as fast as possible.
pub(super) const REPLAY_BATCH: usize = 1024;

/// Replay settings of one feed.
pub(crate) struct Replay {
    pub(crate) path: PathBuf,
    pub(crate) speed: f64,
    pub(crate) looped: bool,
    pub(crate) restamp: bool,
}

/// Plays a `.jsonl` recording: paced by the ticks' `ts` (scaled by `speed`)
/// or as fast as possible (`speed == 0`), looping if asked. At the end of
/// a non-looping file the feed goes stale after its staleness window and
/// the task waits for shutdown.
pub(crate) async fn run_replay(plan: FeedPlan, replay: Replay, mut pipeline: Pipeline) {
    let mut backoff = Backoff::new(plan.backoff_min, plan.backoff_max, jitter_seed(&plan.name));
    let shutdown = pipeline.shutdown.clone();
    loop {
        match play_once(&plan, &replay, &mut pipeline).await {
            Err(Stop) => return,
            Ok(Ok(())) if replay.looped => continue,
            Ok(Ok(())) => break,
            Ok(Err(error)) => {
                warn!(feed = &*plan.name, path = %replay.path.display(), "replay failed: {error}");
                if pipeline.set_state(FeedState::Down).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = sleep(backoff.next_delay()) => {}
                }
                telemetry::reconnect(&plan.name);
            }
        }
    }
    info!(feed = &*plan.name, "replay finished");
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = sleep(plan.staleness) => {}
    }
    if pipeline.set_state(FeedState::Stale).await.is_ok() {
        shutdown.cancelled().await;
    }
}

/// One pass over the file. `Ok(Err(_))` when it cannot be opened or read.
async fn play_once(
    plan: &FeedPlan,
    replay: &Replay,
    pipeline: &mut Pipeline,
) -> Result<Result<(), String>, Stop> {
    let shutdown = pipeline.shutdown.clone();
    let file = match tokio::fs::File::open(&replay.path).await {
        Ok(file) => file,
        Err(error) => return Ok(Err(error.to_string())),
    };
    let reader = tokio::io::BufReader::with_capacity(64 * 1024, file);
    let mut lines = LineReader::new(reader, plan.max_message_bytes);
    // (first recorded ts, when it was sent), for pacing.
    let mut origin: Option<(u64, Instant)> = None;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Err(Stop),
            next = lines.next() => next,
        };
        match next {
            Ok(Frame::Message) => {
                pipeline.decode(&mut lines.line);
            }
            Ok(Frame::Oversize(len)) => {
                let error = ParseError::Oversize {
                    len,
                    max: plan.max_message_bytes,
                };
                pipeline.reject(error.kind(), &error);
                continue;
            }
            Ok(Frame::Control) => continue,
            Err(End::Closed) => break,
            Err(End::Truncated) => {
                pipeline.reject("truncated", &End::Truncated);
                break;
            }
            Err(error) => {
                pipeline.flush(replay.restamp).await?;
                return Ok(Err(error.to_string()));
            }
        }
        if replay.speed > 0.0
            && let Some(ts) = pipeline.first_pending_ts()
        {
            let (first_ts, started) = *origin.get_or_insert((ts, Instant::now()));
            let offset = ts.saturating_sub(first_ts) as f64 / replay.speed;
            let due = started + Duration::from_micros(offset.min(u64::MAX as f64 / 2.0) as u64);
            tokio::select! {
                _ = shutdown.cancelled() => return Err(Stop),
                _ = sleep_until(due) => {}
            }
        }
        if pipeline.pending_len() > 0 {
            pipeline.set_state(FeedState::Live).await?;
        }
        if replay.speed > 0.0 || pipeline.pending_len() >= REPLAY_BATCH {
            pipeline.flush(replay.restamp).await?;
        }
    }
    if pipeline.pending_len() > 0 {
        pipeline.set_state(FeedState::Live).await?;
    }
    pipeline.flush(replay.restamp).await?;
    Ok(Ok(()))
}
