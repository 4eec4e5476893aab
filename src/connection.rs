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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tickgate_feeds::now_micros;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::debug;

use crate::metrics as m;
use crate::outbox::{MAX_CONTROL_FRAMES, Mailbox};
use crate::protocol::{self, ErrorCode, Request, RequestId};
use crate::state::AppState;
use crate::subscriptions;

/// Longest wait for the client's side of the closing handshake.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);

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
}

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
        }
    }

    fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Self::ClientClosed | Self::WriteFailed => return None,
            Self::Shutdown => (CloseCode::Away, "server shutting down"),
            Self::IdleTimeout => (CloseCode::Normal, "idle timeout"),
            Self::TooBig => (CloseCode::Size, "message too big"),
            Self::ProtocolError => (CloseCode::Protocol, "protocol error"),
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

/// Serves one upgraded WebSocket until it closes or the gateway shuts down.
pub async fn serve<S>(ws: WebSocketStream<S>, state: Arc<AppState>, transport: &'static str)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mailbox = Arc::new(Mailbox::new(state.next_connection_id()));
    let conn_id = mailbox.id;
    metrics::gauge!(m::CONNECTIONS, "transport" => transport).increment(1.0);
    metrics::counter!(m::CONNECTIONS_OPENED, "transport" => transport).increment(1);
    debug!(conn_id, "connection opened");

    state.connection_opened(&mailbox);
    let (mut sink, mut stream) = ws.split();
    let started = Instant::now();
    let last_seen_ms = AtomicU64::new(0);
    let reason = {
        let reader = read_loop(&mut stream, &mailbox, &state, started, &last_seen_ms);
        let writer = write_loop(&mut sink, &mailbox, &state, started, &last_seen_ms);
        tokio::select! {
            reason = reader => reason,
            reason = writer => reason,
            () = state.shutdown.cancelled() => CloseReason::Shutdown,
            () = drained(&state) => CloseReason::Shutdown,
        }
    };

    let dropped = subscriptions::unsubscribe_all(&mailbox);
    metrics::gauge!(m::SUBSCRIPTIONS).decrement(dropped as f64);
    if let Some(frame) = reason.close_frame() {
        // Closing handshake, bounded: send our close, then read until the
        // peer's close or EOF. Dropping the socket with unread input would
        // make the kernel send a reset, which can destroy the close frame
        // before the client reads it.
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
            if sink.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = stream.next().await {}
            }
        })
        .await;
    }
    state.connection_closed(conn_id);
    metrics::gauge!(m::CONNECTIONS, "transport" => transport).decrement(1.0);
    metrics::counter!(m::CONNECTIONS_CLOSED, "reason" => reason.as_str()).increment(1);
    debug!(conn_id, reason = reason.as_str(), "connection closed");
}

/// Resolves at this connection's place in the drain schedule.
async fn drained(state: &AppState) {
    state.drain.cancelled().await;
    tokio::time::sleep(state.drain_delay()).await;
}

async fn read_loop<S>(
    stream: &mut futures_util::stream::SplitStream<WebSocketStream<S>>,
    mailbox: &Arc<Mailbox>,
    state: &AppState,
    started: Instant,
    last_seen_ms: &AtomicU64,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        // Backpressure on requests: wait until the writer has taken the
        // replies already queued.
        while mailbox.lock().control_len() >= MAX_CONTROL_FRAMES {
            mailbox.drained.notified().await;
        }
        let message = match stream.next().await {
            None => return CloseReason::ClientClosed,
            Some(Ok(message)) => message,
            Some(Err(error)) => return classify_read_error(&error),
        };
        last_seen_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        match message {
            Message::Text(text) => handle_request(text.as_str(), mailbox, state),
            Message::Binary(_) => {
                metrics::counter!(m::BAD_REQUESTS, "code" => ErrorCode::BadRequest.as_str())
                    .increment(1);
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

/// Applies one request and queues its replies.
fn handle_request(text: &str, mailbox: &Arc<Mailbox>, state: &AppState) {
    let request = match protocol::parse_request(text) {
        Ok(request) => request,
        Err(error) => {
            metrics::counter!(m::BAD_REQUESTS, "code" => error.code.as_str()).increment(1);
            mailbox.push_control([error.to_frame()]);
            return;
        }
    };
    match request {
        Request::Ping { id } => mailbox.push_control([protocol::pong(id.as_ref(), now_micros())]),
        Request::Subscribe { id, symbols } => subscribe(id.as_ref(), &symbols, mailbox, state),
        Request::Unsubscribe { id, symbols } => {
            let list = protocol::parse_symbols(&symbols);
            let before = mailbox.lock().subscription_count();
            subscriptions::unsubscribe(&state.store, mailbox, &list.valid);
            let removed = before - mailbox.lock().subscription_count();
            metrics::gauge!(m::SUBSCRIPTIONS).decrement(removed as f64);
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
}

fn subscribe(id: Option<&RequestId>, texts: &[String], mailbox: &Arc<Mailbox>, state: &AppState) {
    let list = protocol::parse_symbols(texts);
    let mut replies = Vec::with_capacity(4);
    if !list.invalid.is_empty() {
        replies.push(invalid_symbols(id, &list.invalid));
    }
    let limit = state.config.limits.max_subscriptions_per_connection;
    let before = mailbox.lock().subscription_count();
    let result = subscriptions::subscribe(&state.store, mailbox, &list.valid, limit);
    let added = mailbox.lock().subscription_count() - before;
    metrics::gauge!(m::SUBSCRIPTIONS).increment(added as f64);
    metrics::gauge!(m::SYMBOLS).set(state.store.symbol_count() as f64);
    if !result.over_limit.is_empty() {
        let refused: Vec<&str> = result.over_limit.iter().map(|s| s.as_str()).collect();
        metrics::counter!(m::BAD_REQUESTS, "code" => ErrorCode::TooManySubscriptions.as_str())
            .increment(1);
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
        let message =
            "the gateway's symbol table is full; only symbols it already knows can be subscribed";
        replies.push(protocol::error(
            id,
            ErrorCode::InvalidSymbol,
            message,
            &refused,
        ));
    }
    if !result.symbols.is_empty() {
        replies.push(protocol::subscribed(id, &result.symbols, &result.no_data));
        replies.push(protocol::snapshot(&result.snapshot));
        replies.extend(troubled_feeds(&result.symbols, state));
    }
    // The snapshot must precede any update of these symbols: the writer
    // drains control frames before building the update frame, and the
    // outbox already records the snapshot's seq.
    mailbox.push_control(replies);
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

fn invalid_symbols(id: Option<&RequestId>, invalid: &[String]) -> String {
    metrics::counter!(m::BAD_REQUESTS, "code" => ErrorCode::InvalidSymbol.as_str()).increment(1);
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
    let heartbeat = Duration::from_millis(settings.heartbeat_interval_ms);
    let ping_every = Duration::from_millis(settings.ping_interval_ms);
    let idle_timeout = Duration::from_millis(settings.idle_timeout_ms);
    let mut keepalive = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_write = Instant::now();
    let mut last_ping = Instant::now();
    let updates = metrics::counter!(m::UPDATES_SENT);
    let frames = metrics::counter!(m::FRAMES_SENT);
    let bytes = metrics::counter!(m::BYTES_SENT);
    let conflated = metrics::counter!(m::UPDATES_CONFLATED);
    let latency = metrics::histogram!(m::TICK_TO_SEND);
    loop {
        let mut keepalive_due = false;
        tokio::select! {
            biased;
            () = mailbox.wake.notified() => {}
            _ = keepalive.tick() => keepalive_due = true,
        }
        if keepalive_due {
            let seen = Duration::from_millis(last_seen_ms.load(Ordering::Relaxed));
            if started.elapsed().saturating_sub(seen) > idle_timeout {
                return CloseReason::IdleTimeout;
            }
            if last_ping.elapsed() >= ping_every {
                last_ping = Instant::now();
                if sink.feed(Message::Ping(Default::default())).await.is_err() {
                    return CloseReason::WriteFailed;
                }
            }
            if last_write.elapsed() >= heartbeat {
                mailbox.push_control([protocol::heartbeat(now_micros())]);
            }
        }
        let drain = mailbox.drain();
        if drain.is_empty() {
            if keepalive_due && sink.flush().await.is_err() {
                return CloseReason::WriteFailed;
            }
            continue;
        }
        let sent_bytes: usize = drain
            .control
            .iter()
            .chain(&drain.update)
            .map(String::len)
            .sum();
        let sent_frames = (drain.control.len() + usize::from(drain.update.is_some())) as u64;
        mailbox.stats.write_started(sent_bytes);
        for frame in drain.control.into_iter().chain(drain.update) {
            if sink.feed(Message::text(frame)).await.is_err() {
                return CloseReason::WriteFailed;
            }
        }
        if sink.flush().await.is_err() {
            return CloseReason::WriteFailed;
        }
        mailbox.stats.write_finished();
        mailbox
            .stats
            .updates_sent
            .fetch_add(drain.quotes, Ordering::Relaxed);
        mailbox
            .stats
            .conflated
            .fetch_add(drain.conflated, Ordering::Relaxed);
        last_write = Instant::now();
        updates.increment(drain.quotes);
        frames.increment(sent_frames);
        bytes.increment(sent_bytes as u64);
        conflated.increment(drain.conflated);
        if let Some(received) = drain.oldest_received_micros {
            latency.record(now_micros().saturating_sub(received) as f64 / 1e6);
        }
    }
}
