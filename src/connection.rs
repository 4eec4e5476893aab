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
//!
//! Coalescing is adaptive: an idle connection writes a change at once, and
//! changes share a frame only while the socket is busy. While a write is in
//! flight (the socket is full) the writer does not drain, so what changes
//! meanwhile conflates in the mailbox and goes out in the next frame, the
//! moment the socket takes more: batches grow with load, and latency stays
//! minimal at light load. `connection.min_write_interval_ms` adds an
//! optional fixed floor between writes (0, the default, for none).

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
    let ack_window = settings.ack_window_frames;
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
        if !keepalive_due {
            // The optional floor: a connection that wrote moments ago waits
            // out the rest of the interval, so the changes of that time share
            // one frame.
            if !min_write_interval.is_zero() {
                let ready_at = last_write + min_write_interval;
                if Instant::now() < ready_at {
                    tokio::time::sleep_until(ready_at).await;
                }
            }
            // One turn of the scheduler, no timer: the fan-out wakes us once
            // its whole batch is marked, and what else is queued for this
            // connection at the same moment (trades, which wake at once,
            // the session's replies) joins this frame too.
            tokio::task::yield_now().await;
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
        // A client that acknowledges what it reads has a full window: hold
        // everything back (the outbox keeps each symbol's latest value) until
        // its next `ack` wakes this loop.
        if mailbox.acks.full(ack_window) {
            continue;
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
        // Counted before the write: a quick client may acknowledge a
        // message before this task runs again.
        mailbox.acks.wrote(sent_frames);
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

#[cfg(test)]
mod tests {
    //! The writer over an in-memory socket: no network, and tokio's paused
    //! clock where timing is the point, so what a timer would delay shows
    //! as clock time, not as luck.

    use std::collections::HashMap;

    use tickgate_feeds::{Symbol, Tick};
    use tokio::io::DuplexStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;
    use crate::fanout::subscriptions::{self, SubscribeLimits};
    use crate::fanout::{Delivery, Fanout};

    const NOW: u64 = 1_764_000_000_000_000;

    /// A store, a connection subscribed to `symbols` whose writer runs on
    /// its own task, and the client end of its socket (`capacity` bytes of
    /// buffer between the two).
    struct Rig {
        store: Arc<SnapshotStore>,
        mailbox: Arc<Mailbox>,
        fanout: Fanout,
        client: WebSocketStream<DuplexStream>,
        ticks: u64,
    }

    impl Rig {
        async fn start(symbols: &[&str], config: Config, capacity: usize) -> Self {
            let store = Arc::new(SnapshotStore::new(100));
            let mailbox = Arc::new(Mailbox::new(1, 16, std::time::Instant::now()));
            let symbols: Vec<Symbol> = symbols
                .iter()
                .map(|s| Symbol::parse(s).expect("symbol"))
                .collect();
            for symbol in &symbols {
                store.get_or_create(*symbol).expect("room");
            }
            subscriptions::subscribe(
                &store,
                &mailbox,
                &symbols,
                SubscribeLimits {
                    per_connection: 100,
                    interest: 100,
                },
                Delivery::default(),
                &Default::default(),
                |_| Vec::new(),
            );
            mailbox.drain(std::time::Instant::now());
            let (server_io, client_io) = tokio::io::duplex(capacity);
            let server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
            let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
            let writer_mailbox = Arc::clone(&mailbox);
            // The writer belongs to the test's runtime and ends with it.
            #[allow(clippy::disallowed_methods)]
            tokio::spawn(async move {
                let (mut sink, _stream) = server.split();
                let feeds = FeedBoard::default();
                let last_seen_ms = AtomicU64::new(0);
                write_loop(
                    &mut sink,
                    &mut Frames::new(Encoding::Json),
                    &writer_mailbox,
                    &feeds,
                    &config,
                    Instant::now(),
                    &last_seen_ms,
                )
                .await
            });
            Self {
                store,
                mailbox,
                fanout: Fanout::default(),
                client,
                ticks: 0,
            }
        }

        /// One tick of `symbol` at `bid`, through the real fan-out step.
        fn tick(&mut self, symbol: &str, bid: f64) {
            let tick = Tick {
                symbol: Some(Symbol::parse(symbol).expect("symbol")),
                bid: Some(bid),
                ..Tick::default()
            };
            let report = self.fanout.apply(&self.store, 0, &[tick], NOW);
            assert_eq!(report.accepted, 1);
            self.ticks += 1;
        }

        /// The quotes (symbol, seq, bid) of the next update frame.
        async fn next_update(&mut self) -> Vec<(String, u64, f64)> {
            loop {
                let message = self.client.next().await.expect("open").expect("a frame");
                let Message::Text(text) = message else {
                    continue;
                };
                let frame: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
                if frame["type"] != "update" {
                    continue;
                }
                return frame["quotes"]
                    .as_array()
                    .expect("quotes")
                    .iter()
                    .map(|q| {
                        (
                            q["symbol"].as_str().expect("symbol").to_string(),
                            q["seq"].as_u64().expect("seq"),
                            q["bid"].as_f64().expect("bid"),
                        )
                    })
                    .collect();
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quote_to_an_idle_connection_is_written_without_waiting_for_any_timer() {
        let mut rig = Rig::start(&["AAPL"], Config::default(), 64 * 1024).await;
        rig.tick("AAPL", 1.0);
        assert_eq!(rig.next_update().await, [("AAPL".into(), 1, 1.0)]);
        // The socket took that frame at once, so it is idle: the next quote,
        // moments later, goes out at once too. The clock is paused and
        // advances only when every task waits for a timer, so any timer on
        // the way would show as elapsed time.
        let sent = Instant::now();
        rig.tick("AAPL", 2.0);
        assert_eq!(rig.next_update().await, [("AAPL".into(), 2, 2.0)]);
        assert_eq!(sent.elapsed(), Duration::ZERO, "waited for a timer");
    }

    #[tokio::test(start_paused = true)]
    async fn min_write_interval_stays_available_as_a_floor() {
        let mut config = Config::default();
        config.connection.min_write_interval = Duration::from_millis(2);
        let mut rig = Rig::start(&["AAPL"], config, 64 * 1024).await;
        rig.tick("AAPL", 1.0);
        rig.next_update().await;
        let sent = Instant::now();
        rig.tick("AAPL", 2.0);
        assert_eq!(rig.next_update().await, [("AAPL".into(), 2, 2.0)]);
        assert_eq!(sent.elapsed(), Duration::from_millis(2));
    }

    #[tokio::test]
    async fn while_the_socket_is_full_changes_conflate_and_the_latest_value_wins() {
        const ROUNDS: u64 = 200;
        let symbols = ["AAPL", "MSFT", "NVDA"];
        // 512 bytes between writer and client, and the client reads nothing
        // until every tick is in: the writer's first frames fill the socket
        // and its write stays in flight.
        let mut rig = Rig::start(&symbols, Config::default(), 512).await;
        for round in 1..=ROUNDS {
            for symbol in symbols {
                rig.tick(symbol, round as f64);
            }
            // Lets the writer run: it drains once, then blocks on the socket.
            tokio::task::yield_now().await;
        }
        assert!(
            rig.mailbox
                .stats
                .blocked_for(std::time::Instant::now())
                .is_some(),
            "the socket is full and a write is in flight"
        );
        // Reading again: every symbol reaches its latest value; seqs only
        // grow, and updates received plus the ticks skipped between them
        // account for every tick.
        let mut last: HashMap<String, (u64, f64)> = HashMap::new();
        let (mut received, mut skipped, mut frames) = (0, 0, 0);
        while symbols
            .iter()
            .any(|s| last.get(*s).is_none_or(|(seq, _)| *seq < ROUNDS))
        {
            let quotes = rig.next_update().await;
            frames += 1;
            for (symbol, seq, bid) in quotes {
                let before = last.get(&symbol).map_or(0, |(seq, _)| *seq);
                assert!(seq > before, "{symbol}: seq {seq} after {before}");
                assert_eq!(bid, seq as f64, "{symbol}: the value of its seq");
                skipped += seq - before - 1;
                received += 1;
                last.insert(symbol, (seq, bid));
            }
        }
        assert_eq!(received + skipped, rig.ticks, "every tick accounted for");
        assert!(
            skipped >= rig.ticks / 2,
            "conflated while the socket was full: {received} updates in {frames} frames, {skipped} skipped"
        );
        for symbol in symbols {
            assert_eq!(last[symbol], (ROUNDS, ROUNDS as f64), "{symbol}");
        }
    }

    /// A client that acknowledges gets at most the window unacknowledged;
    /// meanwhile the outbox conflates, and the next acknowledgement brings
    /// the latest value, not the backlog.
    #[tokio::test(start_paused = true)]
    async fn an_acknowledging_client_gets_at_most_its_window_then_the_latest_value() {
        let mut config = Config::default();
        config.connection.ack_window_frames = 2;
        let mut rig = Rig::start(&["AAPL"], config, 1 << 20).await;
        // Acknowledgements on (what the session does for `{"op":"ack"}`).
        assert_eq!(rig.mailbox.acks.ack(0), Ok(true), "turned on");
        rig.tick("AAPL", 1.0);
        assert_eq!(rig.next_update().await, [("AAPL".into(), 1, 1.0)]);
        rig.tick("AAPL", 2.0);
        assert_eq!(rig.next_update().await, [("AAPL".into(), 2, 2.0)]);
        assert_eq!(rig.mailbox.acks.sent(), 2);
        // Two unacknowledged: nothing more goes out, however long we wait
        // (the paused clock runs ahead while every task is idle).
        for bid in 3..=9 {
            rig.tick("AAPL", f64::from(bid));
        }
        let held = tokio::time::timeout(Duration::from_secs(3), rig.next_update()).await;
        assert!(held.is_err(), "a frame past the window: {held:?}");
        assert_eq!(rig.mailbox.acks.sent(), 2);
        // The client has read both: the latest value comes, conflated.
        assert_eq!(rig.mailbox.acks.ack(2), Ok(true));
        assert_eq!(rig.mailbox.acks.ack(1), Ok(false), "an older count");
        rig.mailbox.wake_writer();
        assert_eq!(rig.next_update().await, [("AAPL".into(), 9, 9.0)]);
        // An acknowledgement of more than was written is refused.
        assert_eq!(rig.mailbox.acks.ack(10), Err(3));
    }
}
