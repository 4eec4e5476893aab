//! One simulated dashboard: connect, subscribe, read until told to stop,
//! counting every quote, its age and its seq gap. Optionally stalls (stops
//! reading for a while) or drops and reconnects mid-run. This file owns the
//! connection's life: connect (TCP, TLS, WebSocket handshake within the
//! timeout), run one session, reconnect or stop.
//!
//! - `subscribe`: the subscribe request of each protocol.
//! - `session`: one connection's read loop and its replies.
//! - `seq`: per-symbol seq bookkeeping and one read's totals.
//! - `nats`: the NATS protocol messages inside WebSocket frames.
//!
//! Counters are kept locally per read and added to the shared totals once per
//! read, so the cost per frame stays a few hundred nanoseconds.

mod nats;
mod seq;
mod session;
mod subscribe;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::net::TcpSocket;

use self::seq::Held;
use self::session::{Ended, session};
use super::plan::ClientPlan;
use super::shared::Shared;
use super::ws::{Io, WsClient, WsError};

pub(crate) use self::seq::Local;

/// Runs one client until the shared cancel token fires. Reports success of
/// the first subscription through `shared.subscribed` / `shared.failed`.
pub(crate) async fn run(
    plan: ClientPlan,
    shared: Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut permit = Some(permit);
    let mut held = Held::new(plan.symbols.len());
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
            shared.subprotocol,
            shared.read_buffer,
        )
        .await
    };
    match tokio::time::timeout(shared.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(WsError::Io(std::io::ErrorKind::TimedOut.into())),
    }
}
