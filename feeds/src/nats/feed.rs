//! The gateway side, the `kind = "nats"` feed: load the last quote of every
//! subject on each (re)connect, report `live`, follow, and go `stale` when
//! the publisher's heartbeats stop or say its upstream is not live.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::{info, warn};

use super::REQUEST_TIMEOUT;
use super::client::Link;
use super::consumer::open_last_per_subject;
use super::plan::NatsPlan;
use super::wire::{Heartbeat, decode_published};
use crate::backoff::Backoff;
use crate::config::FeedPlan;
use crate::model::Symbol;
use crate::model::{TradingStatus, VenueEvent};
use crate::parse::JsonScratch;
use crate::runner::{Pipeline, Stop};
use crate::telemetry;
use crate::{FeedState, now_micros};

/// Most ticks handed to the gateway in one batch.
const BATCH: usize = 512;

/// Loads and follows a stream until shutdown; see the module doc.
pub(crate) async fn run(plan: FeedPlan, nats: NatsPlan, mut pipeline: Pipeline) {
    let shutdown = pipeline.shutdown_token();
    let feed = Arc::clone(&plan.name);
    let connected = nats
        .connect(
            &format!("tickgate feed {feed}"),
            plan.connect_timeout,
            plan.backoff_min,
            plan.backoff_max,
        )
        .await;
    let (client, mut link) = match connected {
        Ok(client) => client,
        Err(error) => {
            warn!(feed = &*feed, "nats feed cannot start: {error}");
            let _ = pipeline.set_state(FeedState::Down).await;
            shutdown.cancelled().await;
            return;
        }
    };
    let mut context = async_nats::jetstream::new(client);
    context.set_timeout(REQUEST_TIMEOUT);
    let mut follower = Follower {
        plan: &plan,
        nats: &nats,
        context,
        seen: HashMap::new(),
        trading: HashMap::new(),
        scratch: JsonScratch::default(),
    };
    let mut backoff = Backoff::new(plan.backoff_min, plan.backoff_max, now_micros());
    let mut first = true;
    loop {
        let state = if first {
            FeedState::Connecting
        } else {
            FeedState::Down
        };
        first = false;
        if pipeline.set_state(state).await.is_err() {
            return;
        }
        // Wait for a connection (the client retries by itself).
        let generation = tokio::select! {
            _ = shutdown.cancelled() => return,
            up = connected_generation(&mut link) => match up {
                Some(generation) => generation,
                None => return,
            },
        };
        if pipeline.set_state(FeedState::Connecting).await.is_err() {
            return;
        }
        match follower.session(&mut pipeline, &mut link, generation).await {
            Err(Stop) => return,
            Ok(Session::Reconnected) => {
                info!(feed = &*feed, "nats reconnected: reloading the snapshot");
                backoff.reset();
            }
            Ok(Session::Failed(reason)) => {
                warn!(feed = &*feed, "nats feed interrupted: {reason}");
                if pipeline.set_state(FeedState::Down).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = sleep(backoff.next_delay()) => {}
                }
            }
        }
        telemetry::reconnect(&feed);
    }
}

/// Why a session ended.
enum Session {
    /// The client lost its connection (and maybe got a new one): start over.
    Reconnected,
    /// Stream missing, consumer failed, …: back off, then start over.
    Failed(String),
}

struct Follower<'a> {
    plan: &'a FeedPlan,
    nats: &'a NatsPlan,
    context: async_nats::jetstream::Context,
    /// Last `seq` handed on per symbol: a reload skips what the gateway has.
    /// One entry per symbol of the stream.
    seen: HashMap<Symbol, u64>,
    /// Last trading status handed on per symbol the publisher ever said
    /// one of; a status is handed on only when it changes.
    trading: HashMap<Symbol, TradingStatus>,
    scratch: JsonScratch,
}

impl Follower<'_> {
    /// Loads the last value of every subject, reports `live`, follows.
    async fn session(
        &mut self,
        pipeline: &mut Pipeline,
        link: &mut watch::Receiver<Link>,
        generation: u64,
    ) -> Result<Session, Stop> {
        let shutdown = pipeline.shutdown_token();
        let feed = Arc::clone(&self.plan.name);
        let started = Instant::now();
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return Err(Stop),
            () = link_lost(link, generation) => return Ok(Session::Reconnected),
            opened = timeout(REQUEST_TIMEOUT * 2, open_last_per_subject(&self.context, self.nats)) => opened,
        };
        let (mut messages, mut remaining, last_sequence) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(error)) => return Ok(Session::Failed(error)),
            Err(_) => return Ok(Session::Failed("timed out opening the stream".into())),
        };
        let mut loading = true;
        let mut loaded = 0u64;
        let mut unchanged = 0u64;
        let mut last_alive = Instant::now();
        let heartbeat_subject = self.nats.heartbeat_subject();
        loop {
            if loading && remaining == 0 {
                pipeline.flush(false).await?;
                loading = false;
                last_alive = Instant::now();
                telemetry::nats_snapshot_loaded(&feed, started.elapsed());
                info!(
                    feed = &*feed,
                    symbols = loaded,
                    unchanged,
                    ms = started.elapsed().as_millis() as u64,
                    "nats snapshot loaded"
                );
                pipeline.set_state(FeedState::Live).await?;
            }
            if unchanged > 0 && !loading {
                telemetry::nats_unchanged(&feed, std::mem::take(&mut unchanged));
            }
            let stale_at = last_alive + self.plan.staleness;
            let live = pipeline.state() == Some(FeedState::Live);
            // Take what is ready without waiting; wait only when nothing is.
            let next = match messages.next().now_or_never() {
                Some(next) => next,
                None => {
                    pipeline.flush(false).await?;
                    tokio::select! {
                        _ = shutdown.cancelled() => return Err(Stop),
                        () = link_lost(link, generation) => return Ok(Session::Reconnected),
                        _ = sleep_until(stale_at), if live => {
                            warn!(feed = &*feed, silent_ms = self.plan.staleness.as_millis() as u64,
                                "nats feed stale: no publisher heartbeat");
                            pipeline.set_state(FeedState::Stale).await?;
                            continue;
                        }
                        next = messages.next() => next,
                    }
                }
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => return Ok(Session::Failed(format!("consumer: {error}"))),
                None => return Ok(Session::Failed("consumer ended".into())),
            };
            if let Ok(info) = message.info() {
                // The stream's last message at open time, or a later one:
                // loaded, whatever the server counts as pending.
                remaining = if info.stream_sequence >= last_sequence {
                    0
                } else {
                    info.pending
                };
            }
            if message.subject.as_str() == heartbeat_subject {
                let beat: Option<Heartbeat> = serde_json::from_slice(&message.payload).ok();
                let fresh = beat.is_some_and(|b| {
                    b.live
                        && now_micros().saturating_sub(b.ts)
                            < self.plan.staleness.as_micros() as u64
                });
                if !loading {
                    if fresh {
                        last_alive = Instant::now();
                        if pipeline.state() == Some(FeedState::Stale) {
                            pipeline.set_state(FeedState::Live).await?;
                        }
                    } else if beat.is_some_and(|b| !b.live) && live {
                        warn!(
                            feed = &*feed,
                            "nats feed stale: the publisher's upstream is not live"
                        );
                        pipeline.set_state(FeedState::Stale).await?;
                    }
                }
                continue;
            }
            let mut payload = message.payload.to_vec();
            let (tick, trading) = match decode_published(&mut self.scratch, &mut payload) {
                Ok(decoded) => decoded,
                Err(error) => {
                    pipeline.reject(error.kind(), &error);
                    continue;
                }
            };
            let (Some(symbol), Some(seq)) = (tick.symbol, tick.seq) else {
                continue;
            };
            let known = self.seen.entry(symbol).or_insert(0);
            if seq <= *known {
                unchanged += 1;
                continue;
            }
            *known = seq;
            if loading {
                loaded += 1;
            } else {
                last_alive = Instant::now();
                if pipeline.state() == Some(FeedState::Stale) {
                    pipeline.flush(false).await?;
                    pipeline.set_state(FeedState::Live).await?;
                }
            }
            pipeline.push(&tick);
            if let Some(status) = trading {
                let before = self.trading.insert(symbol, status);
                if before.unwrap_or(TradingStatus::Trading) != status {
                    pipeline.venue_event(&VenueEvent::TradingStatus {
                        symbol,
                        status,
                        ts: tick.ts,
                    });
                }
            }
            if pipeline.pending_len() >= BATCH {
                pipeline.flush(false).await?;
            }
        }
    }
}

/// Waits for a connection; its generation, or `None` when the client is gone.
async fn connected_generation(link: &mut watch::Receiver<Link>) -> Option<u64> {
    link.wait_for(|l| l.connected)
        .await
        .ok()
        .map(|l| l.generation)
}

/// Returns once connection `generation` is lost (or replaced by a newer
/// one); never when the client is gone.
async fn link_lost(link: &mut watch::Receiver<Link>, generation: u64) {
    let lost = link
        .wait_for(|l| !l.connected || l.generation != generation)
        .await
        .is_ok();
    if !lost {
        std::future::pending::<()>().await;
    }
}
