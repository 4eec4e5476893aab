//! The thin async layer around the pure parsers: connect, read, decode,
//! filter, hand on; report state; reconnect with backoff; count and log
//! (rate-limited) everything that is skipped. One task per feed, each
//! watching its `CancellationToken`.
//!
//! States sent to the gateway: `Connecting` while (re)connecting, `Live`
//! once data flows, `Stale` after `staleness` without data, `Down` after a
//! disconnect or failed connect (while waiting to retry).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::config::{FeedPlan, SymbolFilter};
use crate::json::JsonDecoder;
use crate::model::{Symbol, Tick};
use crate::parse::{Decoded, Decoder, Notice, ParseError};
use crate::telemetry;
use crate::transport::{self, End, Frame, LineReader};
use crate::venue::Venue;
use crate::{FeedEvent, FeedSender, FeedState, TickBatch, now_micros};

/// Most ticks gathered into one batch when replaying as fast as possible.
const REPLAY_BATCH: usize = 1024;

/// The receiver is gone or shutdown was requested: the task ends.
#[derive(Debug)]
pub(crate) struct Stop;

/// Decode → filter → prefix → send, with counting and limited logging.
pub(crate) struct Pipeline {
    feed: Arc<str>,
    sink: FeedSender,
    shutdown: CancellationToken,
    decoder: Box<dyn Decoder>,
    decoded: Decoded,
    filter: SymbolFilter,
    prefix: Option<String>,
    /// Ticks decoded but not yet sent; bounded by [`REPLAY_BATCH`] plus one
    /// message's ticks.
    pending: Vec<Tick>,
    state: Option<FeedState>,
    log: LogLimiter,
}

pub(crate) fn decoder_for(format: Option<Venue>, max_message_bytes: usize) -> Box<dyn Decoder> {
    match format {
        Some(venue) => venue.decoder(max_message_bytes),
        None => Box::new(JsonDecoder::new(max_message_bytes)),
    }
}

impl Pipeline {
    pub(crate) fn new(
        plan: &FeedPlan,
        format: Option<Venue>,
        sink: FeedSender,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            feed: Arc::clone(&plan.name),
            sink,
            shutdown,
            decoder: decoder_for(format, plan.max_message_bytes),
            decoded: Decoded::default(),
            filter: plan.filter.clone(),
            prefix: plan.prefix.clone(),
            pending: Vec::new(),
            state: None,
            log: LogLimiter::default(),
        }
    }

    async fn send(&mut self, event: FeedEvent) -> Result<(), Stop> {
        tokio::select! {
            _ = self.shutdown.cancelled() => Err(Stop),
            sent = self.sink.send(event) => sent.map_err(|_| Stop),
        }
    }

    /// Reports `state` if it differs from the last one reported.
    pub(crate) async fn set_state(&mut self, state: FeedState) -> Result<(), Stop> {
        if self.state == Some(state) {
            return Ok(());
        }
        self.state = Some(state);
        debug!(feed = &*self.feed, state = state.as_str(), "feed state");
        self.send(FeedEvent::State {
            feed: Arc::clone(&self.feed),
            state,
        })
        .await
    }

    pub(crate) fn state(&self) -> Option<FeedState> {
        self.state
    }

    /// The shutdown token this pipeline watches.
    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Queues one already-decoded tick through the filter and prefix.
    pub(crate) fn push(&mut self, tick: &Tick) {
        if let Some(tick) = self.admit(tick) {
            self.pending.push(tick);
        }
    }

    /// Decodes one message into `pending`; true when it was real data (it
    /// produced ticks, or it was well-formed and rejected nothing).
    pub(crate) fn decode(&mut self, buf: &mut [u8]) -> bool {
        self.decoded.clear();
        self.decoder.decode(buf, &mut self.decoded);
        let decoded = std::mem::take(&mut self.decoded);
        for error in &decoded.rejects {
            self.reject(error.kind(), error);
        }
        if decoded.gaps > 0 {
            telemetry::gaps(&self.feed, decoded.gaps);
            warn!(
                feed = &*self.feed,
                gaps = decoded.gaps,
                "upstream gap detected"
            );
        }
        for notice in &decoded.notices {
            match notice {
                Notice::UpstreamError { code, message } => {
                    telemetry::upstream_error(&self.feed);
                    warn!(feed = &*self.feed, code, message, "upstream error message");
                }
                Notice::Status(status) => info!(feed = &*self.feed, status, "upstream status"),
            }
        }
        let data = !decoded.ticks.is_empty() || decoded.rejects.is_empty();
        for tick in &decoded.ticks {
            if let Some(tick) = self.admit(tick) {
                self.pending.push(tick);
            }
        }
        self.decoded = decoded;
        data
    }

    /// Applies the symbol filter and prefix.
    fn admit(&mut self, tick: &Tick) -> Option<Tick> {
        let symbol = tick.symbol?;
        if !self.filter.allows(symbol.as_str()) {
            return None;
        }
        let Some(prefix) = &self.prefix else {
            return Some(*tick);
        };
        match Symbol::parse(&format!("{prefix}{symbol}")) {
            Ok(prefixed) => Some(Tick {
                symbol: Some(prefixed),
                ..*tick
            }),
            Err(error) => {
                self.reject("invalid_symbol", &ParseError::InvalidSymbol(error));
                None
            }
        }
    }

    /// Counts one skipped input and logs it, at most a few times per window.
    pub(crate) fn reject(&mut self, reason: &'static str, error: &dyn std::fmt::Display) {
        telemetry::ticks_rejected(&self.feed, reason, 1);
        if let Some(suppressed) = self.log.allow(Instant::now()) {
            warn!(
                feed = &*self.feed,
                reason, suppressed, "skipped feed input: {error}"
            );
        }
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn first_pending_ts(&self) -> Option<u64> {
        self.pending.iter().find_map(|t| t.ts)
    }

    /// Sends the pending ticks as one batch; `restamp` replaces their `ts`.
    pub(crate) async fn flush(&mut self, restamp: bool) -> Result<(), Stop> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut ticks = std::mem::take(&mut self.pending);
        if restamp {
            let now = now_micros();
            ticks.iter_mut().for_each(|t| t.ts = Some(now));
        }
        self.send(FeedEvent::Ticks(TickBatch {
            feed: Arc::clone(&self.feed),
            ticks,
        }))
        .await
    }
}

/// At most `BURST` log lines per `WINDOW`; the next line after a quiet
/// stretch says how many were suppressed.
#[derive(Debug, Default)]
pub(crate) struct LogLimiter {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimiter {
    const WINDOW: Duration = Duration::from_secs(10);
    const BURST: u32 = 5;

    /// `Some(suppressed_before)` when this event may be logged.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        let fresh = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= Self::WINDOW);
        if fresh {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged < Self::BURST {
            self.logged += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// Forwards the events of an in-process feed (the simulator) through the
/// pipeline's symbol filter and prefix.
pub(crate) async fn run_forwarded(
    mut events: tokio::sync::mpsc::Receiver<FeedEvent>,
    mut pipeline: Pipeline,
) {
    while let Some(event) = events.recv().await {
        let sent = match event {
            FeedEvent::State { state, .. } => pipeline.set_state(state).await,
            FeedEvent::Ticks(batch) => {
                for tick in &batch.ticks {
                    if let Some(tick) = pipeline.admit(tick) {
                        pipeline.pending.push(tick);
                    }
                }
                pipeline.flush(false).await
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Where a connected feed reads from.
pub(crate) enum Endpoint {
    Tcp {
        address: String,
    },
    Ws {
        url: tokio_tungstenite::tungstenite::http::Uri,
        handshake: Vec<String>,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

enum Connection {
    Tcp(Box<LineReader<tokio::io::BufReader<tokio::net::TcpStream>>>),
    Ws(Box<transport::WsConnection>),
}

impl Connection {
    async fn next(&mut self) -> Result<Frame, End> {
        match self {
            Self::Tcp(lines) => lines.next().await,
            Self::Ws(ws) => ws.next().await,
        }
    }

    fn message(&mut self) -> &mut [u8] {
        match self {
            Self::Tcp(lines) => &mut lines.line,
            Self::Ws(ws) => &mut ws.buf,
        }
    }
}

impl Endpoint {
    async fn connect(&self, max: usize) -> Result<Connection, String> {
        match self {
            Self::Tcp { address } => {
                let stream = tokio::net::TcpStream::connect(address.as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                let reader = tokio::io::BufReader::with_capacity(64 * 1024, stream);
                Ok(Connection::Tcp(Box::new(LineReader::new(reader, max))))
            }
            Self::Ws {
                url,
                handshake,
                tls,
            } => transport::connect_ws(url, tls.as_ref(), handshake, max)
                .await
                .map(|ws| Connection::Ws(Box::new(ws)))
                .map_err(|e| e.to_string()),
        }
    }
}

fn jitter_seed(feed: &str) -> u64 {
    feed.bytes()
        .fold(now_micros(), |acc, b| acc.rotate_left(5) ^ u64::from(b))
}

/// Runs a TCP or WebSocket feed until shutdown: connect (bounded by the
/// connect timeout), read until the connection ends, back off, repeat.
pub(crate) async fn run_connected(plan: FeedPlan, endpoint: Endpoint, mut pipeline: Pipeline) {
    let mut backoff = Backoff::new(plan.backoff_min, plan.backoff_max, jitter_seed(&plan.name));
    let shutdown = pipeline.shutdown.clone();
    loop {
        if pipeline.set_state(FeedState::Connecting).await.is_err() {
            return;
        }
        pipeline.decoder.reset();
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            attempt = timeout(plan.connect_timeout, endpoint.connect(plan.max_message_bytes)) => attempt,
        };
        match attempt {
            Ok(Ok(mut connection)) => {
                info!(feed = &*plan.name, "feed connected");
                match session(&plan, &mut pipeline, &mut connection).await {
                    Err(Stop) => return,
                    Ok((end, delivered)) => {
                        if delivered {
                            backoff.reset();
                        }
                        warn!(feed = &*plan.name, "feed disconnected: {end}");
                    }
                }
            }
            Ok(Err(error)) => warn!(feed = &*plan.name, "feed connect failed: {error}"),
            Err(_) => warn!(
                feed = &*plan.name,
                timeout_ms = plan.connect_timeout.as_millis() as u64,
                "feed connect timed out"
            ),
        }
        if pipeline.set_state(FeedState::Down).await.is_err() {
            return;
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep(delay) => {}
        }
        telemetry::reconnect(&plan.name);
    }
}

/// Why a session ended, and whether it delivered any data.
type SessionEnd = (String, bool);

async fn session(
    plan: &FeedPlan,
    pipeline: &mut Pipeline,
    connection: &mut Connection,
) -> Result<SessionEnd, Stop> {
    let shutdown = pipeline.shutdown.clone();
    let mut last_data = Instant::now();
    let mut delivered = false;
    loop {
        let stale_at = last_data + plan.staleness;
        let idle_at = plan.idle_timeout.map(|idle| last_data + idle);
        let stale = pipeline.state() == Some(FeedState::Stale);
        tokio::select! {
            _ = shutdown.cancelled() => return Err(Stop),
            _ = sleep_until(stale_at), if !stale => {
                warn!(feed = &*plan.name, silent_ms = plan.staleness.as_millis() as u64, "feed stale");
                pipeline.set_state(FeedState::Stale).await?;
            }
            _ = sleep_until(idle_at.unwrap_or(stale_at)), if idle_at.is_some() => {
                return Ok(("silent past idle_timeout_ms; reconnecting".into(), delivered));
            }
            next = connection.next() => match next {
                Ok(Frame::Message) => {
                    if pipeline.decode(connection.message()) {
                        last_data = Instant::now();
                        delivered = true;
                        pipeline.set_state(FeedState::Live).await?;
                        pipeline.flush(false).await?;
                    }
                }
                Ok(Frame::Oversize(len)) => {
                    let error = ParseError::Oversize { len, max: plan.max_message_bytes };
                    pipeline.reject(error.kind(), &error);
                }
                Ok(Frame::Control) => {}
                Err(End::Truncated) => {
                    pipeline.reject("truncated", &End::Truncated);
                    return Ok((End::Truncated.to_string(), delivered));
                }
                Err(end) => return Ok((end.to_string(), delivered)),
            },
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_allows_a_burst_then_reports_what_it_held_back() {
        let mut limiter = LogLimiter::default();
        let start = Instant::now();
        let allowed = (0..20).filter(|_| limiter.allow(start).is_some()).count();
        assert_eq!(allowed, LogLimiter::BURST as usize);
        assert_eq!(limiter.allow(start + LogLimiter::WINDOW), Some(15));
    }
}
