//! One client WebSocket connection: the driver around a [`Session`]. A
//! reader hands each received frame to the session and performs what it
//! decides; a writer drains the connection's [`Mailbox`]; both run side by
//! side in one task.
//!
//! The reader never writes to the socket itself: the session queues its
//! replies in the mailbox. The writer wakes when the mailbox goes from empty
//! to non-empty, takes everything owed in one go and writes it with a single
//! flush, so a busy connection gets one write per wake-up and a slow one
//! simply finds more symbols dirty (never more than one entry each) the next
//! time its socket drains. Keep-alive (WebSocket pings, JSON heartbeats),
//! the idle timeout, the slow-consumer ladder's clock and the closing
//! handshake live here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tickgate_feeds::now_micros;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::debug;

use crate::auth::Authenticator;
use crate::auth::Grant;
use crate::board::FeedBoard;
use crate::config::Config;
use crate::fanout::SnapshotStore;
use crate::fanout::drain::FeedLiveness;
use crate::fanout::outbox::MAX_CONTROL_FRAMES;
use crate::fanout::{Kick, Mailbox};
use crate::ladder::{Ladder, climb};
use crate::protocol;
use crate::protocol::binary::{BinaryEncoder, Encoding};
use crate::registry::Connections;
use crate::session::{CloseReason, Inbound, Outcome, Session, SessionLimits};
use crate::shutdown::Shutdown;
use crate::telemetry;

/// Longest wait for the client's side of the closing handshake.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);
/// The same for a slow consumer, whose close frame waits behind its backlog.
const SLOW_CLOSE_HANDSHAKE: Duration = Duration::from_secs(5);

/// What a connection needs from the rest of the gateway, one handle per
/// owner.
pub struct Context {
    pub store: Arc<SnapshotStore>,
    pub feeds: Arc<FeedBoard>,
    pub connections: Arc<Connections>,
    pub auth: Option<Arc<Authenticator>>,
    pub config: Arc<Config>,
    pub shutdown: Shutdown,
}

/// Serves one upgraded WebSocket until it closes or the gateway shuts down.
///
/// `grant` is what the upgrade's token allows; `None` means the upgrade had
/// no token and the first message must be `{"op":"auth"}`.
pub async fn serve<S>(
    ws: WebSocketStream<S>,
    context: Context,
    transport: &'static str,
    grant: Option<Grant>,
    encoding: Encoding,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Context {
        store,
        feeds,
        connections,
        auth,
        config,
        shutdown,
    } = context;
    let mailbox = Arc::new(Mailbox::new(
        connections.next_id(),
        config.connection.trade_buffer.get(),
        std::time::Instant::now(),
    ));
    let conn_id = mailbox.id;
    telemetry::connection_opened(transport);
    debug!(conn_id, "connection opened");

    connections.opened(&mailbox);
    let (mut sink, mut stream) = ws.split();
    let started = Instant::now();
    let last_seen_ms = AtomicU64::new(0);
    let mut session = Session::new(
        &store,
        &feeds,
        auth.as_deref(),
        Arc::clone(&mailbox),
        SessionLimits::from_config(&config),
        grant,
        started.into_std(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let mut wire = Frames::new(encoding);
    let reason = {
        let reader = read_loop(&mut stream, &mailbox, started, &last_seen_ms, &mut session);
        let writer = write_loop(
            &mut sink,
            &mut wire,
            &mailbox,
            &feeds,
            &config,
            started,
            &last_seen_ms,
        );
        let drain_window = config.shutdown.drain_window;
        tokio::select! {
            reason = reader => reason,
            reason = writer => reason,
            () = shutdown.stopped() => CloseReason::Shutdown,
            () = drained(&shutdown, &connections, drain_window) => CloseReason::Shutdown,
            why = kicked(&mailbox) => match why {
                Kick::Rebalance => CloseReason::Rebalance,
                Kick::Operator => CloseReason::Operator,
            },
        }
    };

    session.end();
    // Replies already queued still go out before a close frame; a policy
    // close says why first.
    let owed = match (session.take_last_words(), reason) {
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
    let owed = owed.into_iter().map(|frame| wire.message(frame)).collect();
    let _ = tokio::time::timeout(handshake, close_handshake(sink, stream, reason, owed)).await;
    telemetry::connection_closed(transport, reason.as_str());
    connections.closed(conn_id);
    debug!(conn_id, reason = reason.as_str(), "connection closed");
}

/// The closing handshake (RFC 6455 §7.1), bounded by the caller's timeout.
///
/// Our close: `owed` frames, then the close frame of `reason`, then frames
/// are read until the client's close. The client's close: tungstenite has
/// already queued the answer (an echo of its code, or 1002 for a code RFC
/// 6455 §7.4 forbids, such as 999, 1005, 1006, 1015 or 5000), and the next
/// read sends it. Either way the gateway then closes the TCP connection
/// first and reads until the client closes its side, discarding: a socket
/// closed with unread input (the rest of an oversized frame, a flood still
/// in flight) makes the kernel send a reset, which can destroy the close
/// frame before the client reads it.
async fn close_handshake<S>(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    mut stream: futures_util::stream::SplitStream<WebSocketStream<S>>,
    reason: CloseReason,
    owed: Vec<Message>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match reason.close_frame() {
        Some((code, why)) => {
            for frame in owed {
                if sink.feed(frame).await.is_err() {
                    return;
                }
            }
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: why.into(),
            };
            if sink.send(Message::Close(Some(frame))).await.is_err() {
                return;
            }
            // Ends at the client's close, or at once when a 1009 or 1002
            // left the frames unreadable.
            while let Some(Ok(_)) = stream.next().await {}
        }
        None if reason == CloseReason::ClientClosed => {
            while let Some(Ok(_)) = stream.next().await {}
        }
        // Writing failed: the peer is gone.
        None => return,
    }
    let Ok(mut ws) = sink.reunite(stream) else {
        return;
    };
    let socket = ws.get_mut();
    if socket.shutdown().await.is_ok() {
        let _ = tokio::io::copy(socket, &mut tokio::io::sink()).await;
    }
}

/// Resolves when the gateway asked this connection to close, with why.
async fn kicked(mailbox: &Mailbox) -> Kick {
    loop {
        let notified = mailbox.kicked.notified();
        if let Some(why) = mailbox.kick_reason() {
            return why;
        }
        notified.await;
    }
}

/// Resolves at this connection's place in the drain schedule.
async fn drained(shutdown: &Shutdown, connections: &Connections, window: Duration) {
    shutdown.draining().await;
    tokio::time::sleep(connections.drain_delay(window)).await;
}

/// Reads frames and hands each to the session, with the time it arrived,
/// until the session or the socket ends the connection; calls the session
/// back at its deadline.
async fn read_loop<S>(
    stream: &mut futures_util::stream::SplitStream<WebSocketStream<S>>,
    mailbox: &Mailbox,
    started: Instant,
    last_seen_ms: &AtomicU64,
    session: &mut Session<'_>,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        if session.has_unfinished_request() {
            // A large subscribe goes a slice at a time: the fan-out and the
            // other connections run between slices, and its replies wait
            // for the writer like any others.
            tokio::task::yield_now().await;
            while mailbox.lock().control_len() >= MAX_CONTROL_FRAMES {
                mailbox.drained.notified().await;
            }
            session.continue_request();
            continue;
        }
        let next = async {
            // Backpressure on requests: wait until the writer has taken the
            // replies already queued.
            while mailbox.lock().control_len() >= MAX_CONTROL_FRAMES {
                mailbox.drained.notified().await;
            }
            stream.next().await
        };
        let deadline = session.deadline();
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            next = next => match next {
                None => return CloseReason::ClientClosed,
                Some(Ok(message)) => message,
                Some(Err(error)) => return classify_read_error(&error),
            },
            () = expired => match session.on_deadline(Instant::now().into_std()) {
                Outcome::Close(reason) => return reason,
                Outcome::Continue => continue,
            },
        };
        last_seen_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let frame = match &message {
            Message::Text(text) => Inbound::Text(text.as_str()),
            Message::Binary(_) => Inbound::Binary,
            Message::Ping(_) => Inbound::Ping,
            // A raw frame is never yielded by a read; like a pong it only
            // proves liveness.
            Message::Pong(_) | Message::Frame(_) => Inbound::Pong,
            Message::Close(_) => Inbound::Close,
        };
        if let Outcome::Close(reason) = session.handle(frame, Instant::now().into_std()) {
            return reason;
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

#[allow(clippy::too_many_arguments)] // one handle per owner, by design
async fn write_loop<S>(
    sink: &mut futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    wire: &mut Frames,
    mailbox: &Mailbox,
    feeds: &FeedBoard,
    config: &Config,
    started: Instant,
    last_seen_ms: &AtomicU64,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let settings = &config.connection;
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
    let mut ladder = Ladder::new(&config.slow_consumer);
    let reduced_rate_hz = config.slow_consumer.reduced_rate_hz;
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
            && let Some(reason) = climb(
                &mut ladder,
                Instant::now().into_std(),
                None,
                mailbox,
                reduced_rate_hz,
            )
        {
            return reason;
        }
        let feeds_not_live = || feeds.feeds_not_live();
        let drain = mailbox.drain_with(
            Instant::now().into_std(),
            &mut FeedLiveness::new(&feeds_not_live),
        );
        next_due = drain.next_due.map(Instant::from_std);
        if drain.is_empty() && !ping {
            continue;
        }
        let (sent_frames, sent_bytes) = drain.size();
        let (quotes, gaps, trades) = (drain.quotes, drain.conflated, drain.trade_count);
        let oldest_received = drain.oldest_received_micros;
        mailbox
            .stats
            .write_started(sent_bytes, Instant::now().into_std());
        let write_started = Instant::now();
        {
            let sink = &mut *sink;
            let wire = &mut *wire;
            let mut write = std::pin::pin!(async move {
                if ping {
                    sink.feed(Message::Ping(Default::default())).await?;
                }
                for frame in drain.into_frames() {
                    sink.feed(wire.message(frame)).await?;
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
                                Instant::now().into_std(),
                                Some(write_started.into_std()),
                                mailbox,
                                reduced_rate_hz,
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

/// How this connection's frames travel: JSON text (the default), or the
/// binary encoding its client chose at the upgrade (`tickgate.v1.bin`).
struct Frames {
    binary: Option<BinaryEncoder>,
}

impl Frames {
    fn new(encoding: Encoding) -> Self {
        Self {
            binary: (encoding == Encoding::Binary).then(BinaryEncoder::default),
        }
    }

    /// One server message, built as JSON, in this connection's encoding.
    fn message(&mut self, frame: String) -> Message {
        match &mut self.binary {
            Some(encoder) => Message::binary(encoder.encode(&frame)),
            None => Message::text(frame),
        }
    }
}
