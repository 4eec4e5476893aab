//! The pipeline every feed task hands its input to: decode, filter by
//! symbol, prefix, batch and send to the gateway, counting and (rate-limited)
//! logging what it skips.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Stop;
use super::log_limit::LogLimiter;
use crate::config::{FeedPlan, SymbolFilter};
use crate::json::JsonDecoder;
use crate::model::{SessionStamper, Symbol, Tick, VenueEvent};
use crate::parse::{Decoded, Decoder, Notice, ParseError};
use crate::telemetry;
use crate::venue::Venue;
use crate::{FeedEvent, FeedSender, FeedState, TickBatch, VenueBatch, now_micros};

/// Decode → filter → prefix → send, with counting and limited logging.
pub(crate) struct Pipeline {
    feed: Arc<str>,
    sink: FeedSender,
    pub(super) shutdown: CancellationToken,
    pub(super) decoder: Box<dyn Decoder>,
    decoded: Decoded,
    filter: SymbolFilter,
    prefix: Option<String>,
    /// Stamps each tick with its trading session (`None` for kind `nats`).
    session: Option<SessionStamper>,
    /// Ticks decoded but not yet sent; bounded by [`REPLAY_BATCH`](super::replay::REPLAY_BATCH) plus one
    /// message's ticks.
    pending: Vec<Tick>,
    /// Venue events decoded but not yet sent, each with the number of
    /// `pending` ticks that came before it, so [`Pipeline::flush`] keeps the
    /// feed's order. Bounded like `pending`: flushed with it.
    pending_events: Vec<(usize, VenueEvent)>,
    state: Option<FeedState>,
    log: LogLimiter,
    /// Separate from `log`, so venue events never crowd out reject lines.
    events_log: LogLimiter,
}

/// What one upstream message turned out to be, for the feed's state and
/// its reconnect backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Received {
    /// It produced ticks: the feed is live and the backoff resets.
    Data,
    /// A venue heartbeat: keeps a live feed live, nothing more.
    Heartbeat,
    /// A greeting, acknowledgement, status, or input that was skipped.
    Control,
    /// The venue refused the credentials: the connection is ended.
    AuthFailed(AuthFailure),
}

/// The venue's own words when it refused the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthFailure {
    pub(crate) code: Option<i64>,
    pub(crate) message: String,
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
            session: plan.session.clone().map(SessionStamper::new),
            pending: Vec::new(),
            pending_events: Vec::new(),
            state: None,
            log: LogLimiter::default(),
            events_log: LogLimiter::default(),
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

    /// Decodes one message into `pending` and says what it was: only ticks
    /// are data; a venue heartbeat only proves the subscription is alive;
    /// greetings, acknowledgements and garbage are neither.
    pub(crate) fn decode(&mut self, buf: &mut [u8]) -> Received {
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
        let mut auth_failure = None;
        for notice in &decoded.notices {
            match notice {
                Notice::UpstreamError { code, message } => {
                    telemetry::upstream_error(&self.feed);
                    warn!(feed = &*self.feed, code, message, "upstream error message");
                }
                // Logged once per backoff step by the runner, which ends the
                // connection.
                Notice::AuthFailed { code, message } => {
                    telemetry::upstream_error(&self.feed);
                    auth_failure.get_or_insert_with(|| AuthFailure {
                        code: *code,
                        message: message.clone(),
                    });
                }
                Notice::Status(status) => info!(feed = &*self.feed, status, "upstream status"),
            }
        }
        // A message's ticks go before its events: a cancel or correction
        // names an earlier trade, which may be in the same message.
        for tick in &decoded.ticks {
            if let Some(tick) = self.admit(tick) {
                self.pending.push(tick);
            }
        }
        for event in &decoded.events {
            self.venue_event(event);
        }
        let received = if let Some(failure) = auth_failure {
            Received::AuthFailed(failure)
        } else if !decoded.ticks.is_empty() || !decoded.events.is_empty() {
            Received::Data
        } else if decoded.heartbeats > 0 {
            Received::Heartbeat
        } else {
            Received::Control
        };
        self.decoded = decoded;
        received
    }

    /// Queues a halt, resumption, correction or cancel through the symbol
    /// filter and prefix, after the ticks queued so far; logged at debug
    /// level, rate-limited.
    pub(crate) fn venue_event(&mut self, event: &VenueEvent) {
        let symbol = event.symbol();
        if !self.filter.allows(symbol.as_str()) {
            return;
        }
        let event = match &self.prefix {
            None => *event,
            Some(prefix) => match Symbol::parse(&format!("{prefix}{symbol}")) {
                Ok(prefixed) => event.with_symbol(prefixed),
                Err(error) => {
                    self.reject("invalid_symbol", &ParseError::InvalidSymbol(error));
                    return;
                }
            },
        };
        if let Some(suppressed) = self.events_log.allow(Instant::now()) {
            debug!(
                feed = &*self.feed,
                kind = event.kind(),
                %symbol,
                suppressed,
                "venue event: {event:?}"
            );
        }
        self.pending_events.push((self.pending.len(), event));
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
        self.pending.len() + self.pending_events.len()
    }

    pub(crate) fn first_pending_ts(&self) -> Option<u64> {
        self.pending.iter().find_map(|t| t.ts)
    }

    /// Sends the pending ticks as one batch; `restamp` replaces their `ts`.
    /// Each tick is stamped with the trading session its `ts` (or, without
    /// one, this moment) falls in.
    /// Venue events go in their own batches between the ticks, in feed order.
    pub(crate) async fn flush(&mut self, restamp: bool) -> Result<(), Stop> {
        if self.pending_events.is_empty() {
            return self.flush_ticks(restamp).await;
        }
        let mut ticks = std::mem::take(&mut self.pending);
        let events = std::mem::take(&mut self.pending_events);
        let mut sent_ticks = 0;
        let mut run: Vec<VenueEvent> = Vec::new();
        for (before, event) in events {
            if before > sent_ticks && !run.is_empty() {
                self.send_events(std::mem::take(&mut run)).await?;
            }
            if before > sent_ticks {
                self.pending = ticks.drain(..before - sent_ticks).collect();
                sent_ticks = before;
                self.flush_ticks(restamp).await?;
            }
            run.push(event);
        }
        if !run.is_empty() {
            self.send_events(run).await?;
        }
        self.pending = ticks;
        self.flush_ticks(restamp).await
    }

    async fn send_events(&mut self, events: Vec<VenueEvent>) -> Result<(), Stop> {
        self.send(FeedEvent::Venue(VenueBatch {
            feed: Arc::clone(&self.feed),
            events,
        }))
        .await
    }

    async fn flush_ticks(&mut self, restamp: bool) -> Result<(), Stop> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut ticks = std::mem::take(&mut self.pending);
        let now = now_micros();
        if restamp {
            ticks.iter_mut().for_each(|t| t.ts = Some(now));
        }
        if let Some(stamper) = &mut self.session {
            for tick in &mut ticks {
                tick.session = stamper.session_of(tick.ts.unwrap_or(now));
            }
        }
        self.send(FeedEvent::Ticks(TickBatch {
            feed: Arc::clone(&self.feed),
            ticks,
        }))
        .await
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
            FeedEvent::Venue(batch) => {
                for event in &batch.events {
                    pipeline.venue_event(event);
                }
                pipeline.flush(false).await
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
