//! One connection's session: subscribe, then read until the run stops, the
//! stall begins or the reconnect time comes. Each read's frames are scanned
//! for quotes (tickgate, NATS or Socket.IO framing), pings and control
//! packets are answered, and the read's totals go to [`Shared`] at once.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tickgate_feeds::now_micros;

use super::nats::{NatsMessage, nats_messages};
use super::seq::{Held, Local};
use super::subscribe::{socketio_request, subscribe};
use crate::loadtest::PeerMode;
use crate::loadtest::plan::ClientPlan;
use crate::loadtest::scan::{self, MessageType};
use crate::loadtest::shared::Shared;
use crate::loadtest::ws::{Frame, Io, WsClient, WsError};

/// Why a session ended without an error.
pub(super) enum Ended {
    /// The run is over.
    Stop,
    /// The reconnect storm: drop the connection and connect again.
    Reconnect,
}

/// Runs one connection until it ends; `permit` is given back (and
/// `subscribed` counted) once the server confirms the subscription.
#[allow(clippy::too_many_arguments)]
pub(super) async fn session(
    client: &mut WsClient<Box<dyn Io>>,
    plan: &ClientPlan,
    shared: &Shared,
    held: &mut Held,
    permit: &mut Option<tokio::sync::OwnedSemaphorePermit>,
    reconnected_from: &mut Option<Instant>,
    reconnect_done: bool,
) -> Result<Ended, WsError> {
    subscribe(client, plan, shared).await?;
    let socketio = shared.mode == PeerMode::SocketIo;
    // A Socket.IO client counts as subscribed once the server confirmed its
    // connection to the namespace, even with nothing to subscribe to.
    let mut acked = plan.symbols.is_empty() && !socketio;
    if acked && permit.take().is_some() {
        shared.subscribed.fetch_add(1, Ordering::Relaxed);
    }
    let socketio_request = if socketio && !plan.symbols.is_empty() {
        socketio_request(
            plan.symbols
                .iter()
                .map(|&s| shared.universe.name(s as usize)),
        )
    } else {
        String::new()
    };
    let mut nats_buf: Vec<u8> = Vec::new();
    let mut binary_ids = scan::BinaryIds::default();
    // Messages read on this connection, and the count last acknowledged.
    let (mut received, mut acknowledged) = (0u64, 0u64);
    let mut local = Local::default();
    let mut stall_done = !plan.stalled;
    let cancel = shared.cancel.clone();
    loop {
        let go = shared.go.get().copied();
        if !stall_done && let Some(go) = go {
            let from = go + shared.stall_after;
            if Instant::now() >= from {
                stall_done = true;
                tokio::select! {
                    () = cancel.cancelled() => return Ok(Ended::Stop),
                    () = tokio::time::sleep_until((from + shared.stall_for).into()) => {}
                }
                let published = shared.feed.as_deref().map(|f| f.published.as_slice());
                held.targets = Some(held.convergence_targets(&plan.symbols, published));
            }
        }
        let reconnect_at = match (shared.reconnect_at, go) {
            (Some(after), Some(go)) if !reconnect_done => Some(go + after),
            _ => None,
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(Ended::Stop),
            () = tokio::time::sleep_until(reconnect_at.unwrap_or_else(Instant::now).into()), if reconnect_at.is_some() => {
                return Ok(Ended::Reconnect);
            }
            () = tokio::time::sleep_until((go.unwrap_or_else(Instant::now) + shared.stall_after).into()), if !stall_done && go.is_some() => continue,
            filled = client.fill() => filled?,
        }
        let now = now_micros();
        let mut pong: Option<Vec<u8>> = None;
        let mut nats_ping = false;
        let mut eio = EngineIo::default();
        while let Some(frame) = client.next_frame()? {
            match frame {
                Frame::Text(bytes) if socketio => {
                    local.frames += 1;
                    // engine.io packet type, then (for 4, a message) the
                    // Socket.IO packet type; plain prefixes, not JSON.
                    match bytes {
                        [b'4', b'2', args @ ..] => {
                            let scanned = scan::scan(args, |kind, q| {
                                if kind == MessageType::Update {
                                    on_quote(plan, shared, held, &mut local, q, now, true);
                                }
                            });
                            match scanned.kind {
                                MessageType::Update => {
                                    if let Some(from) = reconnected_from.take() {
                                        shared.record_reconnect(from.elapsed());
                                    }
                                }
                                MessageType::Subscribed if !acked => {
                                    acked = true;
                                    if permit.take().is_some() {
                                        shared.subscribed.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                MessageType::Error => shared.count_error("server_socketio_error"),
                                _ => {}
                            }
                        }
                        [b'4', b'0', ..] => eio.connected = true,
                        [b'4', b'4', ..] => shared.count_error("server_socketio_connect_error"),
                        [b'4', b'1', ..] => shared.count_error("server_socketio_disconnect"),
                        [b'0', ..] => eio.open = true,
                        [b'2', ..] => eio.ping = true,
                        [b'1', ..] => shared.count_error("server_engineio_close"),
                        _ => {}
                    }
                }
                // tickgate's JSON text frames, and its binary frames when
                // this client asked for the binary encoding.
                Frame::Text(bytes) | Frame::Binary(bytes)
                    if shared.mode == PeerMode::Tickgate
                        && (matches!(frame, Frame::Text(_)) || shared.subprotocol.is_some()) =>
                {
                    local.frames += 1;
                    received += 1;
                    let each = |kind: MessageType, q: scan::QuoteRef<'_>| {
                        if matches!(kind, MessageType::Update | MessageType::Snapshot) {
                            on_quote(
                                plan,
                                shared,
                                held,
                                &mut local,
                                q,
                                now,
                                kind == MessageType::Update,
                            );
                        }
                    };
                    let scanned = if matches!(frame, Frame::Binary(_)) {
                        scan::scan_binary(bytes, &mut binary_ids, each)
                    } else {
                        scan::scan(bytes, each)
                    };
                    after_scan(&scanned, shared, held, permit, reconnected_from, &mut acked);
                }
                Frame::Text(bytes) | Frame::Binary(bytes) => {
                    local.frames += 1;
                    if shared.mode == PeerMode::Nats {
                        nats_buf.extend_from_slice(bytes);
                    }
                }
                Frame::Ping(payload) => pong = Some(payload.to_vec()),
                Frame::Close(code) => {
                    client.close(code).await;
                    return Err(WsError::Closed(code));
                }
            }
        }
        if shared.mode == PeerMode::Nats && !nats_buf.is_empty() {
            let consumed = nats_messages(&nats_buf, |message| match message {
                NatsMessage::Msg(payload) => {
                    scan::scan(payload, |_, q| {
                        on_quote(plan, shared, held, &mut local, q, now, true);
                    });
                    if let Some(from) = reconnected_from.take() {
                        shared.record_reconnect(from.elapsed());
                    }
                }
                NatsMessage::Ping => nats_ping = true,
                NatsMessage::Pong => acked = true,
                NatsMessage::Err => shared.count_error("server_nats_err"),
            });
            nats_buf.drain(..consumed);
            if acked && permit.take().is_some() {
                shared.subscribed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(payload) = pong {
            client.send(10, &payload).await?;
        }
        if shared.ack_every > 0 && received - acknowledged >= shared.ack_every {
            acknowledged = received;
            let ack = format!(r#"{{"op":"ack","frames":{received}}}"#);
            client.send(1, ack.as_bytes()).await?;
        }
        if nats_ping {
            client.send(2, b"PONG\r\n").await?;
        }
        if eio.ping {
            client.send(1, b"3").await?;
        }
        if eio.open {
            // Socket.IO CONNECT to the main namespace.
            client.send(1, b"40").await?;
        }
        if eio.connected {
            if socketio_request.is_empty() {
                if !acked {
                    acked = true;
                    if permit.take().is_some() {
                        shared.subscribed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            } else {
                client.send(1, socketio_request.as_bytes()).await?;
            }
        }
        shared.add(&mut local, plan.stalled);
        if !shared.read_pause.is_zero() {
            tokio::select! {
                () = cancel.cancelled() => return Ok(Ended::Stop),
                () = tokio::time::sleep(shared.read_pause) => {}
            }
        }
    }
}

/// What a tickgate frame of `scanned`'s type means besides its quotes: the
/// first update after a reconnect, the snapshot, the subscription's
/// confirmation, or an error.
fn after_scan(
    scanned: &scan::Scanned,
    shared: &Shared,
    held: &mut Held,
    permit: &mut Option<tokio::sync::OwnedSemaphorePermit>,
    reconnected_from: &mut Option<Instant>,
    acked: &mut bool,
) {
    match scanned.kind {
        MessageType::Update => {
            if let Some(from) = reconnected_from.take() {
                shared.record_reconnect(from.elapsed());
            }
        }
        MessageType::Snapshot => {
            held.snapshot_seen = true;
        }
        MessageType::Subscribed => {
            if !*acked {
                *acked = true;
                if permit.take().is_some() {
                    shared.subscribed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        MessageType::Error => {
            let code = scanned.code.as_deref().unwrap_or("unknown");
            shared.count_error(&format!("server_{code}"));
        }
        MessageType::Heartbeat | MessageType::Other => {}
    }
}

/// Books one quote in `held` and `local`; records the stalled client's
/// convergence when this quote completes it.
fn on_quote(
    plan: &ClientPlan,
    shared: &Shared,
    held: &mut Held,
    local: &mut Local,
    quote: scan::QuoteRef<'_>,
    now: u64,
    update: bool,
) {
    let index = shared.universe.lookup(quote.symbol);
    if let Some(took) = held.on_quote(&plan.symbols, index, local, quote, now, update) {
        shared.record_convergence(took);
    }
}

/// What one read's engine.io / Socket.IO control packets ask for.
#[derive(Default)]
struct EngineIo {
    /// `0{…}`: the engine.io session is open; connect to the namespace.
    open: bool,
    /// `40{"sid":…}`: connected to the namespace; subscribe.
    connected: bool,
    /// `2`: an engine.io ping, answered with `3`.
    ping: bool,
}
