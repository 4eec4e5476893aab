//! One client WebSocket connection: a reader that answers requests and a
//! writer that drains the connection's [`Mailbox`], run side by side in one
//! task.
//!
//! The reader parses requests, updates subscriptions and queues replies; it
//! never writes to the socket itself. The writer wakes when the mailbox goes
//! from empty to non-empty, takes everything owed in one go and writes it
//! with a single flush, so a busy connection gets one write per wake-up and a
//! slow one simply finds more symbols dirty (never more than one entry each)
//! the next time its socket drains. Keep-alive (WebSocket pings, JSON
//! heartbeats) and the idle timeout live in the writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tickgate_feeds::now_micros;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::debug;

use crate::auth::Grant;
use crate::ladder::{Ladder, Step};
use crate::limits::{RateVerdict, RequestRate};
use crate::outbox::{Delivery, Kick};
use crate::outbox::{MAX_CONTROL_FRAMES, Mailbox};
use crate::protocol::{self, ErrorCode, Request, RequestId, SubscribeOptions};
use crate::state::AppState;
use crate::subscriptions;
use crate::telemetry;
use rustc_hash::FxHashMap;
use tickgate_feeds::Symbol;

/// Longest wait for the client's side of the closing handshake.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);
/// The same for a slow consumer, whose close frame waits behind its backlog.
const SLOW_CLOSE_HANDSHAKE: Duration = Duration::from_secs(5);

/// Why a connection ended; decides the close frame and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent a close frame or the TCP stream ended.
    ClientClosed,
    /// The gateway is shutting down (close 1001).
    Shutdown,
    /// Nothing received for longer than the idle timeout (close 1000).
    IdleTimeout,
    /// A frame or message above the size limit (close 1009).
    TooBig,
    /// A WebSocket protocol violation, such as an unmasked client frame (1002).
    ProtocolError,
    /// Writing to the socket failed: the peer is gone.
    WriteFailed,
    /// No valid first `auth` message, or a request before it (close 1008).
    Unauthorized,
    /// The token expired and was not refreshed in time (close 1008).
    TokenExpired,
    /// Kept sending faster than the request rate (close 1008).
    RateLimited,
    /// Shed to rebalance connections across instances (close 1013).
    Rebalance,
    /// Closed by an operator through the admin API (close 1008).
    Operator,
    /// Stopped reading for longer than `slow_consumer.close_after_ms`
    /// (close 4008).
    SlowConsumer,
}

/// Close code of a slow consumer (step 3 of the ladder).
pub const SLOW_CONSUMER_CLOSE: u16 = 4008;

impl CloseReason {
    /// Metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::Shutdown => "shutdown",
            Self::IdleTimeout => "idle_timeout",
            Self::TooBig => "message_too_big",
            Self::ProtocolError => "protocol_error",
            Self::WriteFailed => "write_failed",
            Self::Unauthorized => "unauthorized",
            Self::TokenExpired => "token_expired",
            Self::RateLimited => "rate_limited",
            Self::Rebalance => "rebalance",
            Self::Operator => "operator",
            Self::SlowConsumer => "slow_consumer",
        }
    }

    fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Self::ClientClosed | Self::WriteFailed => return None,
            Self::Shutdown => (CloseCode::Away, "server shutting down"),
            Self::IdleTimeout => (CloseCode::Normal, "idle timeout"),
            Self::TooBig => (CloseCode::Size, "message too big"),
            Self::ProtocolError => (CloseCode::Protocol, "protocol error"),
            Self::Unauthorized => (CloseCode::Policy, "unauthorized"),
            Self::TokenExpired => (CloseCode::Policy, "token expired"),
            Self::RateLimited => (CloseCode::Policy, "rate limit exceeded"),
            Self::Rebalance => (
                CloseCode::Again,
                "rebalancing: reconnect, another instance has room",
            ),
            Self::Operator => (CloseCode::Policy, "closed by the operator"),
            Self::SlowConsumer => (
                CloseCode::from(SLOW_CONSUMER_CLOSE),
                "slow consumer: stopped reading for longer than the gateway allows",
            ),
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

/// Serves one upgraded WebSocket until it closes or the gateway shuts down.
///
/// `grant` is what the upgrade's token allows; `None` means the upgrade had
/// no token and the first message must be `{"op":"auth"}`.
pub async fn serve<S>(
    ws: WebSocketStream<S>,
    state: Arc<AppState>,
    transport: &'static str,
    grant: Option<Grant>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mailbox = Arc::new(Mailbox::new(
        state.next_connection_id(),
        state.config.connection.trade_buffer.get(),
    ));
    let conn_id = mailbox.id;
    telemetry::connection_opened(transport);
    debug!(conn_id, "connection opened");

    state.connection_opened(&mailbox);
    let (mut sink, mut stream) = ws.split();
    let started = Instant::now();
    let last_seen_ms = AtomicU64::new(0);
    let mut session = Session::new(grant, &state);
    let reason = {
        let reader = read_loop(
            &mut stream,
            &mailbox,
            &state,
            started,
            &last_seen_ms,
            &mut session,
        );
        let writer = write_loop(&mut sink, &mailbox, &state, started, &last_seen_ms);
        tokio::select! {
            reason = reader => reason,
            reason = writer => reason,
            () = state.shutdown.cancelled() => CloseReason::Shutdown,
            () = drained(&state) => CloseReason::Shutdown,
            why = mailbox.kicked() => match why {
                Kick::Rebalance => CloseReason::Rebalance,
                Kick::Operator => CloseReason::Operator,
            },
        }
    };

    let dropped = subscriptions::unsubscribe_all(&mailbox);
    telemetry::subscriptions_removed(dropped);
    if let Some(frame) = reason.close_frame() {
        // Closing handshake, bounded: send our close, then read until the
        // peer's close or EOF. Dropping the socket with unread input would
        // make the kernel send a reset, which can destroy the close frame
        // before the client reads it. A policy close says why first.
        // Replies already queued still go out.
        let last_words = session
            .last_words
            .lock()
            .map(|mut w| w.take())
            .ok()
            .flatten();
        let owed = match (last_words, reason) {
            (Some(words), _) => {
                let mut owed = mailbox.drain(Instant::now().into_std()).control;
                owed.push(words);
                owed
            }
            // The ladder's notices queued while the write was stuck.
            (None, CloseReason::SlowConsumer) => mailbox.drain(Instant::now().into_std()).control,
            (None, _) => Vec::new(),
        };
        // A slow consumer's close frame queues behind what its socket still
        // holds: give it the time to read that far.
        let handshake = if reason == CloseReason::SlowConsumer {
            SLOW_CLOSE_HANDSHAKE
        } else {
            CLOSE_HANDSHAKE
        };
        let _ = tokio::time::timeout(handshake, async {
            for frame in owed {
                if sink.feed(Message::text(frame)).await.is_err() {
                    break;
                }
            }
            if sink.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = stream.next().await {}
            }
        })
        .await;
    }
    telemetry::connection_closed(transport, reason.as_str());
    state.connection_closed(conn_id);
    debug!(conn_id, reason = reason.as_str(), "connection closed");
}

/// Resolves at this connection's place in the drain schedule.
async fn drained(state: &AppState) {
    state.drain.cancelled().await;
    tokio::time::sleep(state.drain_delay()).await;
}

/// What this connection may do and how fast: its grant (`None` until a
/// first `auth` message when the upgrade carried no token), the moment it
/// must end (first-message timeout or token expiry) and its request rate.
struct Session {
    grant: Option<Grant>,
    deadline: Option<Instant>,
    rate: RequestRate,
    /// An error frame sent just before a policy close (1008).
    last_words: Mutex<Option<String>>,
}

impl Session {
    fn new(grant: Option<Grant>, state: &AppState) -> Self {
        let limits = &state.config.limits;
        let deadline = match &grant {
            Some(grant) => grant.remaining().map(|left| Instant::now() + left),
            None => Some(Instant::now() + state.config.auth.first_message_timeout),
        };
        Self {
            grant,
            deadline,
            rate: RequestRate::new(
                limits.max_requests_per_second,
                limits.request_burst.get(),
                limits.max_rate_limited.get(),
                Instant::now().into_std(),
            ),
            last_words: Mutex::new(None),
        }
    }

    /// Ends the connection with `reason`, sending `code`/`message` first.
    fn close(&self, reason: CloseReason, code: ErrorCode, message: &str) -> CloseReason {
        if let Ok(mut words) = self.last_words.lock() {
            *words = Some(protocol::error(None, code, message, &[]));
        }
        reason
    }

    /// Adopts a newly verified grant; returns the `authenticated` reply.
    fn adopt(&mut self, grant: Grant, id: Option<&RequestId>) -> String {
        self.deadline = grant.remaining().map(|left| Instant::now() + left);
        let reply = protocol::authenticated(id, grant.subject.as_deref(), grant.expires_at);
        self.grant = Some(grant);
        reply
    }
}

async fn read_loop<S>(
    stream: &mut futures_util::stream::SplitStream<WebSocketStream<S>>,
    mailbox: &Arc<Mailbox>,
    state: &AppState,
    started: Instant,
    last_seen_ms: &AtomicU64,
    session: &mut Session,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let next = async {
            // Backpressure on requests: wait until the writer has taken the
            // replies already queued.
            while mailbox.lock().control_len() >= MAX_CONTROL_FRAMES {
                mailbox.drained.notified().await;
            }
            stream.next().await
        };
        let deadline = session.deadline;
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            next = next => match next {
                None => return CloseReason::ClientClosed,
                Some(Ok(message)) => message,
                Some(Err(error)) => return classify_read_error(&error),
            },
            () = expired => {
                return if session.grant.is_some() {
                    telemetry::auth_failure("expired");
                    session.close(CloseReason::TokenExpired, ErrorCode::Unauthorized, "token expired")
                } else {
                    telemetry::auth_failure("missing");
                    session.close(
                        CloseReason::Unauthorized,
                        ErrorCode::Unauthorized,
                        "no {\"op\":\"auth\"} message in time",
                    )
                };
            }
        };
        last_seen_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        if matches!(message, Message::Close(_)) {
            return CloseReason::ClientClosed;
        }
        match session.rate.check(Instant::now().into_std()) {
            RateVerdict::Allow => {}
            RateVerdict::Refuse => {
                telemetry::rate_limited();
                if matches!(message, Message::Text(_) | Message::Binary(_)) {
                    telemetry::bad_request(ErrorCode::RateLimited.as_str());
                    mailbox.push_control([protocol::error(
                        None,
                        ErrorCode::RateLimited,
                        "too many requests; this one was ignored, slow down",
                        &[],
                    )]);
                }
                continue;
            }
            RateVerdict::Close => {
                telemetry::rate_limited();
                return session.close(
                    CloseReason::RateLimited,
                    ErrorCode::RateLimited,
                    "too many requests; closing",
                );
            }
        }
        match message {
            Message::Text(text) => {
                if let Some(reason) = handle_request(text.as_str(), mailbox, state, session) {
                    return reason;
                }
            }
            Message::Binary(_) => {
                telemetry::bad_request(ErrorCode::BadRequest.as_str());
                mailbox.push_control([protocol::error(
                    None,
                    ErrorCode::BadRequest,
                    "binary frames are not supported; send JSON text frames",
                    &[],
                )]);
            }
            Message::Close(_) => return CloseReason::ClientClosed,
            // Pings are answered by the WebSocket layer; pongs only prove liveness.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

fn classify_read_error(error: &WsError) -> CloseReason {
    match error {
        WsError::Capacity(_) => CloseReason::TooBig,
        WsError::Protocol(_) | WsError::Utf8(_) => CloseReason::ProtocolError,
        _ => CloseReason::ClientClosed,
    }
}

/// Applies one request and queues its replies; returns a reason when the
/// connection must close (authentication failed before any grant).
fn handle_request(
    text: &str,
    mailbox: &Arc<Mailbox>,
    state: &AppState,
    session: &mut Session,
) -> Option<CloseReason> {
    let request = match protocol::parse_request(text) {
        Ok(request) => request,
        Err(error) => {
            telemetry::bad_request(error.code.as_str());
            mailbox.push_control([error.to_frame()]);
            return None;
        }
    };
    if let Request::Auth { id, token } = &request {
        return authenticate(id.as_ref(), token, mailbox, state, session);
    }
    let Some(grant) = &session.grant else {
        telemetry::auth_failure("missing");
        return Some(session.close(
            CloseReason::Unauthorized,
            ErrorCode::Unauthorized,
            "authenticate first: send {\"op\":\"auth\",\"token\":\"<JWT>\"}",
        ));
    };
    match request {
        Request::Auth { .. } => {}
        Request::Ping { id } => mailbox.push_control([protocol::pong(id.as_ref(), now_micros())]),
        Request::Subscribe {
            id,
            symbols,
            options,
        } => subscribe(id.as_ref(), &symbols, &options, grant, mailbox, state),
        Request::Priority { id, classes } => {
            set_priority(id.as_ref(), &classes, mailbox, state);
        }
        Request::Unsubscribe { id, symbols } => {
            let list = protocol::parse_symbols(&symbols);
            let before = mailbox.lock().subscription_count();
            subscriptions::unsubscribe(&state.store, mailbox, &list.valid);
            let removed = before - mailbox.lock().subscription_count();
            telemetry::subscriptions_removed(removed);
            let mut replies = Vec::with_capacity(2);
            if !list.invalid.is_empty() {
                replies.push(invalid_symbols(id.as_ref(), &list.invalid));
            }
            if !list.valid.is_empty() {
                replies.push(protocol::unsubscribed(id.as_ref(), &list.valid));
            }
            mailbox.push_control(replies);
        }
    }
    None
}

/// `{"op":"auth"}`: a first token, or a fresh one before the current one
/// expires. A failure closes an unauthenticated connection and leaves an
/// authenticated one on its current token. Subscriptions the new token no
/// longer covers are dropped and named in a `not_entitled` error.
fn authenticate(
    id: Option<&RequestId>,
    token: &str,
    mailbox: &Arc<Mailbox>,
    state: &AppState,
    session: &mut Session,
) -> Option<CloseReason> {
    let Some(authenticator) = &state.authenticator else {
        mailbox.push_control([protocol::error(
            id,
            ErrorCode::BadRequest,
            "authentication is off on this gateway; no token is needed",
            &[],
        )]);
        return None;
    };
    let grant = match authenticator.verify(token) {
        Ok(grant) => grant,
        Err(error) => {
            telemetry::auth_failure(error.kind());
            telemetry::bad_request(ErrorCode::Unauthorized.as_str());
            let message = format!("authentication failed: {error}");
            if session.grant.is_none() {
                return Some(session.close(
                    CloseReason::Unauthorized,
                    ErrorCode::Unauthorized,
                    &message,
                ));
            }
            mailbox.push_control([protocol::error(id, ErrorCode::Unauthorized, &message, &[])]);
            return None;
        }
    };
    let revoked = mailbox
        .lock()
        .symbols_where(|slot| !grant.entitlement.allows(&slot.symbol));
    let mut replies = Vec::with_capacity(2);
    if !revoked.is_empty() {
        let before = mailbox.lock().subscription_count();
        subscriptions::unsubscribe(&state.store, mailbox, &revoked);
        let removed = before - mailbox.lock().subscription_count();
        telemetry::subscriptions_removed(removed);
        replies.push(symbols_error(
            id,
            ErrorCode::NotEntitled,
            "the new token does not cover these symbols; they were unsubscribed",
            &revoked,
        ));
    }
    replies.push(session.adopt(grant, id));
    mailbox.push_control(replies);
    None
}

/// How a subscription with these options is delivered, within the
/// configured rate ceiling and the token's `max_rate`.
fn delivery_for(options: &SubscribeOptions, grant: &Grant, state: &AppState) -> Delivery {
    let configured = state.config.connection.max_update_rate_hz;
    let ceiling = match grant.max_rate {
        Some(claim) if configured > 0.0 => claim.min(configured),
        Some(claim) => claim,
        None => configured,
    };
    let rate = match (options.max_rate, ceiling > 0.0) {
        (Some(asked), true) => Some(asked.min(ceiling)),
        (Some(asked), false) => Some(asked),
        (None, true) => Some(ceiling),
        (None, false) => None,
    };
    Delivery {
        min_interval: rate.map(|hz| Duration::from_secs_f64(1.0 / hz)),
        delta: options.delta,
        meta: options.meta,
        trades: options.trades,
        priority: options.priority,
    }
}

/// `{"op":"priority"}`: ranks subscribed symbols for the slow-consumer
/// ladder. Symbols the connection does not hold are named in a
/// `not_subscribed` error; the others take effect at once.
fn set_priority(
    id: Option<&RequestId>,
    classes: &[(protocol::Priority, Vec<String>)],
    mailbox: &Mailbox,
    state: &AppState,
) {
    let mut replies = Vec::with_capacity(3);
    let mut set: [Vec<Symbol>; 3] = Default::default();
    let mut missing = Vec::new();
    let mut invalid = Vec::new();
    for (priority, texts) in classes {
        let list = protocol::parse_symbols(texts);
        invalid.extend(list.invalid);
        let mut outbox = mailbox.lock();
        for symbol in list.valid {
            let held = state
                .store
                .get(&symbol)
                .is_some_and(|slot| outbox.set_priority(slot.id, *priority));
            if held {
                set[*priority as usize].push(symbol);
            } else {
                missing.push(symbol);
            }
        }
    }
    if !invalid.is_empty() {
        replies.push(invalid_symbols(id, &invalid));
    }
    if !missing.is_empty() {
        telemetry::bad_request(ErrorCode::NotSubscribed.as_str());
        replies.push(symbols_error(
            id,
            ErrorCode::NotSubscribed,
            "subscribe to these symbols before ranking them",
            &missing,
        ));
    }
    let [background, normal, visible] = &set;
    if !(background.is_empty() && normal.is_empty() && visible.is_empty()) {
        replies.push(protocol::priority(id, visible, normal, background));
    }
    mailbox.push_control(replies);
}

fn subscribe(
    id: Option<&RequestId>,
    texts: &[String],
    options: &SubscribeOptions,
    grant: &Grant,
    mailbox: &Arc<Mailbox>,
    state: &AppState,
) {
    let mut list = protocol::parse_symbols(texts);
    let mut replies = Vec::with_capacity(5);
    if !list.invalid.is_empty() {
        replies.push(invalid_symbols(id, &list.invalid));
    }
    // Entitlement first: a refused symbol never reaches the store, the
    // subscriber sets or this connection's outbox.
    let (entitled, refused): (Vec<Symbol>, Vec<Symbol>) = list
        .valid
        .into_iter()
        .partition(|symbol| grant.entitlement.allows(symbol));
    list.valid = entitled;
    if !refused.is_empty() {
        telemetry::bad_request(ErrorCode::NotEntitled.as_str());
        replies.push(symbols_error(
            id,
            ErrorCode::NotEntitled,
            "your token does not entitle you to these symbols",
            &refused,
        ));
    }
    let configured = state.config.limits.max_subscriptions_per_connection.get();
    let limit = grant
        .max_subscriptions
        .map_or(configured, |own| own.min(configured));
    let before = mailbox.lock().subscription_count();
    let resume: FxHashMap<Symbol, u64> = options
        .resume
        .iter()
        .filter_map(|(text, seq)| Symbol::parse(text).ok().map(|symbol| (symbol, *seq)))
        .collect();
    let delivery = delivery_for(options, grant, state);
    // The replies are queued under the lock that records the subscriptions:
    // the writer drains control frames before building an update, so the
    // snapshot precedes any update of these symbols.
    let answer = |result: &subscriptions::Subscribed| {
        if !result.over_limit.is_empty() {
            let refused: Vec<&str> = result.over_limit.iter().map(|s| s.as_str()).collect();
            telemetry::bad_request(ErrorCode::TooManySubscriptions.as_str());
            let message = format!(
                "at most {limit} subscriptions per connection; these symbols were not subscribed"
            );
            replies.push(protocol::error(
                id,
                ErrorCode::TooManySubscriptions,
                &message,
                &refused,
            ));
        }
        if !result.table_full.is_empty() {
            let refused: Vec<&str> = result.table_full.iter().map(|s| s.as_str()).collect();
            let message = "the gateway's symbol table is full; only symbols it already knows can be subscribed";
            replies.push(protocol::error(
                id,
                ErrorCode::InvalidSymbol,
                message,
                &refused,
            ));
        }
        if !result.symbols.is_empty() {
            replies.push(protocol::subscribed(id, &result.symbols, &result.no_data));
            replies.push(if options.resume.is_empty() {
                protocol::snapshot(&result.snapshot)
            } else {
                protocol::snapshot_resumed(&result.snapshot, result.unchanged)
            });
        }
        replies
    };
    let result = subscriptions::subscribe(
        &state.store,
        mailbox,
        &list.valid,
        limit,
        delivery,
        &resume,
        answer,
    );
    let added = mailbox.lock().subscription_count() - before;
    telemetry::subscriptions_added(added);
    telemetry::symbols(state.store.symbol_count());
    if !result.symbols.is_empty() {
        mailbox.push_control(troubled_feeds(&result.symbols, state));
    }
}

/// Status frames for subscribed symbols whose feed is stale or down right
/// now, so a new subscriber learns it at once, not at the next change.
fn troubled_feeds(symbols: &[tickgate_feeds::Symbol], state: &AppState) -> Vec<String> {
    let mut by_feed: std::collections::BTreeMap<u32, Vec<tickgate_feeds::Symbol>> =
        Default::default();
    for symbol in symbols {
        if let Some(slot) = state.store.get(symbol) {
            by_feed
                .entry(slot.feed.load(Ordering::Relaxed))
                .or_default()
                .push(*symbol);
        }
    }
    by_feed
        .into_iter()
        .filter_map(|(feed, symbols)| {
            let (name, feed_state) = state.feeds.state_of(feed)?;
            matches!(
                feed_state,
                tickgate_feeds::FeedState::Stale | tickgate_feeds::FeedState::Down
            )
            .then(|| protocol::status(&name, feed_state.as_str(), &symbols))
        })
        .collect()
}

/// An error reply naming `symbols`.
fn symbols_error(
    id: Option<&RequestId>,
    code: ErrorCode,
    message: &str,
    symbols: &[Symbol],
) -> String {
    let names: Vec<&str> = symbols.iter().map(Symbol::as_str).collect();
    protocol::error(id, code, message, &names)
}

fn invalid_symbols(id: Option<&RequestId>, invalid: &[String]) -> String {
    telemetry::bad_request(ErrorCode::InvalidSymbol.as_str());
    let refused: Vec<&str> = invalid.iter().map(String::as_str).collect();
    protocol::error(
        id,
        ErrorCode::InvalidSymbol,
        "symbols are 1 to 32 characters of A-Z a-z 0-9 . - _ / : ^",
        &refused,
    )
}

async fn write_loop<S>(
    sink: &mut futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    mailbox: &Mailbox,
    state: &AppState,
    started: Instant,
    last_seen_ms: &AtomicU64,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let settings = &state.config.connection;
    let heartbeat = settings.heartbeat_interval;
    let ping_every = settings.ping_interval;
    let idle_timeout = settings.idle_timeout;
    let mut keepalive = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_write = Instant::now();
    let mut last_ping = Instant::now();
    let telemetry::DeliveryHandles {
        updates,
        frames,
        bytes,
        conflated,
        trades_sent,
        latency,
    } = telemetry::delivery_handles();
    let min_write_interval = settings.min_write_interval;
    let mut ladder = Ladder::new(&state.config.slow_consumer);
    // When rate-capped symbols are pending, the next slot at which one may go.
    let mut next_due: Option<Instant> = None;
    loop {
        let mut keepalive_due = false;
        let mut ping = false;
        let capped_slot = async {
            match next_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = mailbox.wake.notified() => {}
            () = capped_slot => {}
            _ = keepalive.tick() => keepalive_due = true,
        }
        if keepalive_due {
            let seen = Duration::from_millis(last_seen_ms.load(Ordering::Relaxed));
            if started.elapsed().saturating_sub(seen) > idle_timeout {
                return CloseReason::IdleTimeout;
            }
            if last_ping.elapsed() >= ping_every {
                last_ping = Instant::now();
                ping = true;
            }
            if last_write.elapsed() >= heartbeat {
                mailbox.push_control([protocol::heartbeat(now_micros())]);
            }
        }
        // Coalescing: a connection that wrote moments ago waits out the rest
        // of the interval, so the changes of that time share one frame.
        if !min_write_interval.is_zero() && !keepalive_due {
            let ready_at = last_write + min_write_interval;
            if Instant::now() < ready_at {
                tokio::time::sleep_until(ready_at).await;
            }
        }
        if ladder.is_behind()
            && let Some(reason) = climb(&mut ladder, None, mailbox, state)
        {
            return reason;
        }
        let drain = mailbox.drain(Instant::now().into_std());
        next_due = drain.next_due.map(Instant::from_std);
        if drain.is_empty() && !ping {
            continue;
        }
        let (sent_frames, sent_bytes) = drain.size();
        let (quotes, gaps, trades) = (drain.quotes, drain.conflated, drain.trade_count);
        let oldest_received = drain.oldest_received_micros;
        mailbox.stats.write_started(sent_bytes);
        let write_started = Instant::now();
        {
            let sink = &mut *sink;
            let mut write = std::pin::pin!(async move {
                if ping {
                    sink.feed(Message::Ping(Default::default())).await?;
                }
                for frame in drain.into_frames() {
                    sink.feed(Message::text(frame)).await?;
                }
                sink.flush().await
            });
            // Every write, pings included, runs under the ladder's clock, so
            // a stalled reader cannot hold the writer past close_after_ms.
            // Most writes finish at once; only a blocked one needs a timer.
            let written = match write.as_mut().now_or_never() {
                Some(written) => written,
                None => loop {
                    let deadline = ladder.next_deadline(write_started.into_std());
                    let timer = async {
                        match deadline {
                            Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        biased;
                        written = write.as_mut() => break written,
                        () = timer => {
                            if let Some(reason) = climb(
                                &mut ladder,
                                Some(write_started.into_std()),
                                mailbox,
                                state,
                            ) {
                                return reason;
                            }
                        }
                    }
                },
            };
            if written.is_err() {
                return CloseReason::WriteFailed;
            }
        }
        last_write = Instant::now();
        ladder.observe_write(write_started.into_std(), last_write.into_std());
        mailbox.stats.write_finished();
        let stats = &mailbox.stats;
        stats.updates_sent.fetch_add(quotes, Ordering::Relaxed);
        if gaps > 0 {
            stats.conflated.fetch_add(gaps, Ordering::Relaxed);
        }
        if trades > 0 {
            stats.trades_sent.fetch_add(trades, Ordering::Relaxed);
        }
        // Global counters cost two atomics each; skip the ones with nothing
        // to add (most writes carry no gaps and no trades).
        updates.increment(quotes);
        frames.increment(sent_frames);
        bytes.increment(sent_bytes as u64);
        if gaps > 0 {
            conflated.increment(gaps);
        }
        if trades > 0 {
            trades_sent.increment(trades);
        }
        if let Some(received) = oldest_received {
            latency.record(now_micros().saturating_sub(received) as f64 / 1e6);
        }
    }
}

/// Takes the ladder's next step (see [`crate::ladder`]): slows the next
/// priority class, restores full rate, or says the connection must close.
/// Notices are queued as control frames, which go out before any data.
fn climb(
    ladder: &mut Ladder,
    writing_since: Option<std::time::Instant>,
    mailbox: &Mailbox,
    state: &AppState,
) -> Option<CloseReason> {
    let now = std::time::Instant::now();
    let behind_ms = ladder.behind_for(now).as_millis() as u64;
    match ladder.poll(now, writing_since) {
        Step::Stay => None,
        Step::SlowDown => {
            let hz = state.config.slow_consumer.reduced_rate_hz;
            let slowed = {
                let mut outbox = mailbox.lock();
                let slowed = outbox.slow_down(Duration::from_secs_f64(1.0 / hz));
                mailbox
                    .stats
                    .ladder_level
                    .store(outbox.slowdown_level(), Ordering::Relaxed);
                slowed
            };
            if let Some((class, symbols)) = slowed {
                telemetry::slow_consumer_step("slowed");
                debug!(
                    conn_id = mailbox.id,
                    class = class.as_str(),
                    "slow consumer slowed"
                );
                mailbox.push_control([protocol::slowed(class, hz, &symbols, behind_ms)]);
            }
            None
        }
        Step::Restore => {
            let was_slowed = mailbox.lock().restore();
            mailbox.stats.ladder_level.store(0, Ordering::Relaxed);
            if was_slowed {
                telemetry::slow_consumer_step("restored");
                mailbox.push_control([protocol::restored(behind_ms)]);
            }
            None
        }
        Step::Close => {
            telemetry::slow_consumer_step("closed");
            Some(CloseReason::SlowConsumer)
        }
    }
}
