//! One simulated dashboard: connect, subscribe, read until told to stop,
//! counting every quote, its age and its seq gap. Optionally stalls (stops
//! reading for a while) or drops and reconnects mid-run.
//!
//! Counters are kept locally per read and added to the shared totals once per
//! read, so the cost per frame stays a few hundred nanoseconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tickgate_feeds::now_micros;
use tokio::net::TcpSocket;

use super::scan::{self, MessageType};
use super::ws::{Frame, Io, WsClient, WsError};
use super::{PeerMode, Shared};

/// What one client does.
pub(crate) struct ClientPlan {
    /// Universe indexes, sorted.
    pub(crate) symbols: Vec<u32>,
    /// Stops reading for the configured stall.
    pub(crate) stalled: bool,
    /// Local address to connect from, or the kernel's choice.
    pub(crate) source: Option<std::net::IpAddr>,
}

/// Per-symbol seq bookkeeping of one client.
struct Held {
    /// Seq of the first snapshot (0 when subscribed before any data).
    base: Vec<u64>,
    last: Vec<u64>,
    snapshot_seen: bool,
    /// After a stall: the seq each symbol must reach to count as converged.
    targets: Option<(Vec<u64>, usize, Instant)>,
}

/// Totals of one read, added to [`Shared`] at once.
#[derive(Default)]
pub(crate) struct Local {
    pub(crate) frames: u64,
    pub(crate) quotes: u64,
    pub(crate) gaps: u64,
    pub(crate) progress: u64,
    pub(crate) regressions: u64,
    pub(crate) unexpected: u64,
    /// Tick-to-client latency of each quote, µs.
    pub(crate) latencies: Vec<u64>,
}

enum Ended {
    Stop,
    Reconnect,
}

/// Runs one client until the shared cancel token fires. Reports success of
/// the first subscription through `shared.subscribed` / `shared.failed`.
pub(crate) async fn run(
    plan: ClientPlan,
    shared: Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut permit = Some(permit);
    let mut held = Held {
        base: vec![0; plan.symbols.len()],
        last: vec![0; plan.symbols.len()],
        snapshot_seen: false,
        targets: None,
    };
    let mut reconnected_from: Option<Instant> = None;
    let mut reconnect_done = false;
    loop {
        let mut client = match connect(&plan, &shared).await {
            Ok(client) => client,
            Err(error) => {
                shared.count_error(&error.kind());
                if permit.take().is_some() || reconnected_from.is_some() {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        };
        if permit.is_some() {
            shared.established.fetch_add(1, Ordering::Relaxed);
            shared.mark_established();
        }
        let ended = session(
            &mut client,
            &plan,
            &shared,
            &mut held,
            &mut permit,
            &mut reconnected_from,
            reconnect_done,
        )
        .await;
        match ended {
            Ok(Ended::Stop) => {
                client.close(1000).await;
                return;
            }
            Ok(Ended::Reconnect) => {
                // Drop the TCP connection without a closing handshake, as a
                // network blip or a killed browser tab would.
                drop(client);
                reconnected_from = Some(Instant::now());
                reconnect_done = true;
            }
            Err(error) => {
                if let WsError::Closed(code) = error {
                    shared.count_close(code);
                } else {
                    shared.count_error(&error.kind());
                }
                if permit.take().is_some() {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        }
    }
}

async fn connect(plan: &ClientPlan, shared: &Shared) -> Result<WsClient<Box<dyn Io>>, WsError> {
    let target = &shared.target;
    let attempt = async {
        let socket = match target.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(source) = plan.source {
            // Port 0: the kernel picks a free port of this source address.
            socket.bind(SocketAddr::new(source, 0))?;
        }
        if plan.stalled {
            // A small receive buffer, so the stall is felt by the server
            // instead of being absorbed by the kernel.
            socket.set_recv_buffer_size(shared.stall_recv_buffer)?;
        }
        let stream = socket.connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let stream: Box<dyn Io> = match &target.tls {
            Some((connector, name)) => Box::new(connector.connect(name.clone(), stream).await?),
            None => Box::new(stream),
        };
        WsClient::connect(
            stream,
            &target.host,
            &target.path,
            shared.token.as_deref(),
            shared.read_buffer,
        )
        .await
    };
    match tokio::time::timeout(shared.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(WsError::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

async fn subscribe(
    client: &mut WsClient<Box<dyn Io>>,
    plan: &ClientPlan,
    shared: &Shared,
) -> Result<(), WsError> {
    if plan.symbols.is_empty() {
        return Ok(());
    }
    let mut request = String::with_capacity(32 + plan.symbols.len() * 10);
    match shared.mode {
        PeerMode::Tickgate => {
            request.push_str(r#"{"op":"subscribe","id":1,"symbols":"#);
            push_symbol_list(&mut request, plan, shared);
            request.push('}');
            client.send(1, request.as_bytes()).await
        }
        PeerMode::Nats => {
            request.push_str(
                "CONNECT {\"verbose\":false,\"pedantic\":false,\"lang\":\"tickgate-loadtest\",\"protocol\":1}\r\n",
            );
            for (sid, &s) in plan.symbols.iter().enumerate() {
                request.push_str("SUB md.");
                request.push_str(shared.universe.name(s as usize));
                request.push_str(&format!(" {sid}\r\n"));
            }
            // The PONG to this PING proves every SUB above is registered.
            request.push_str("PING\r\n");
            client.send(2, request.as_bytes()).await
        }
        // Sent once the Socket.IO connection is confirmed (see `session`).
        PeerMode::SocketIo => Ok(()),
    }
}

/// The Socket.IO `subscribe` event: engine.io message (4), Socket.IO EVENT
/// (2) on the main namespace, no ack id.
fn socketio_subscribe(plan: &ClientPlan, shared: &Shared) -> String {
    let mut request = String::with_capacity(32 + plan.symbols.len() * 10);
    request.push_str(r#"42["subscribe",{"symbols":"#);
    push_symbol_list(&mut request, plan, shared);
    request.push_str("}]");
    request
}

/// Appends the client's symbols as a JSON array of strings.
fn push_symbol_list(request: &mut String, plan: &ClientPlan, shared: &Shared) {
    request.push('[');
    for (i, &s) in plan.symbols.iter().enumerate() {
        if i > 0 {
            request.push(',');
        }
        request.push('"');
        request.push_str(shared.universe.name(s as usize));
        request.push('"');
    }
    request.push(']');
}

#[allow(clippy::too_many_arguments)]
async fn session(
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
        socketio_subscribe(plan, shared)
    } else {
        String::new()
    };
    let mut nats_buf: Vec<u8> = Vec::new();
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
                held.targets = Some(convergence_targets(plan, shared, held));
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
                Frame::Text(bytes) if shared.mode == PeerMode::Tickgate => {
                    local.frames += 1;
                    let scanned = scan::scan(bytes, |kind, q| {
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
                    });
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
                            if !acked {
                                acked = true;
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
    }
}

/// Seq each symbol must reach to count as caught up after a stall: what the
/// feed had published when reading resumed.
fn convergence_targets(
    plan: &ClientPlan,
    shared: &Shared,
    held: &Held,
) -> (Vec<u64>, usize, Instant) {
    let Some(feed) = &shared.feed else {
        return (Vec::new(), 0, Instant::now());
    };
    let targets: Vec<u64> = plan
        .symbols
        .iter()
        .zip(&held.base)
        .map(|(&s, &base)| base + feed.published[s as usize].load(Ordering::Relaxed))
        .collect();
    let remaining = targets
        .iter()
        .zip(&held.last)
        .filter(|(target, last)| last < target)
        .count();
    (targets, remaining, Instant::now())
}

fn on_quote(
    plan: &ClientPlan,
    shared: &Shared,
    held: &mut Held,
    local: &mut Local,
    quote: scan::QuoteRef<'_>,
    now: u64,
    update: bool,
) {
    let Some(index) = shared.universe.lookup(quote.symbol) else {
        local.unexpected += 1;
        return;
    };
    let Ok(i) = plan.symbols.binary_search(&index) else {
        local.unexpected += 1;
        return;
    };
    let last = held.last[i];
    if !update && !held.snapshot_seen && last == 0 {
        // First snapshot: where this symbol's count starts.
        held.base[i] = quote.seq;
        held.last[i] = quote.seq;
        return;
    }
    if update {
        local.quotes += 1;
        local.latencies.push(now.saturating_sub(quote.ts));
    }
    if quote.seq <= last {
        if update {
            local.regressions += 1;
        }
        return;
    }
    local.gaps += quote.seq - last - 1;
    local.progress += quote.seq - last;
    held.last[i] = quote.seq;
    if let Some((targets, remaining, since)) = &mut held.targets
        && *remaining > 0
        && last < targets[i]
        && quote.seq >= targets[i]
    {
        *remaining -= 1;
        if *remaining == 0 {
            shared.record_convergence(since.elapsed());
        }
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

enum NatsMessage<'a> {
    Msg(&'a [u8]),
    Ping,
    Pong,
    Err,
}

/// Parses complete NATS protocol messages from `buf`; returns bytes consumed.
fn nats_messages<'a>(buf: &'a [u8], mut each: impl FnMut(NatsMessage<'a>)) -> usize {
    let mut pos = 0;
    while let Some(eol) = super::ws::find(&buf[pos..], b"\r\n") {
        let line = &buf[pos..pos + eol];
        if line.starts_with(b"MSG ") {
            let len: usize = line
                .rsplit(|&b| b == b' ')
                .next()
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let start = pos + eol + 2;
            if buf.len() < start + len + 2 {
                break;
            }
            each(NatsMessage::Msg(&buf[start..start + len]));
            pos = start + len + 2;
            continue;
        }
        if line.starts_with(b"PING") {
            each(NatsMessage::Ping);
        } else if line.starts_with(b"PONG") {
            each(NatsMessage::Pong);
        } else if line.starts_with(b"-ERR") {
            each(NatsMessage::Err);
        }
        pos += eol + 2;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_parser_keeps_partial_messages_for_the_next_read() {
        let buf = b"INFO {}\r\nMSG md.A 1 5\r\nhello\r\nPING\r\nMSG md.B 2 10\r\nabc";
        let mut seen = Vec::new();
        let consumed = nats_messages(buf, |m| match m {
            NatsMessage::Msg(p) => seen.push(String::from_utf8_lossy(p).into_owned()),
            NatsMessage::Ping => seen.push("PING".into()),
            _ => {}
        });
        assert_eq!(seen, ["hello", "PING"]);
        assert_eq!(&buf[consumed..], b"MSG md.B 2 10\r\nabc");
    }
}
