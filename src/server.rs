//! HTTP on both listeners: the client listener upgrades `/ws` to WebSocket
//! and serves the dashboard page; the admin listener serves `/metrics`,
//! `/healthz` and `/readyz`. Anything else gets a plain 404.
//!
//! Each accepted TCP connection costs one task. A client that does not finish
//! its request headers within `limits.handshake_timeout_ms` is dropped; a
//! request head over [`handshake::MAX_REQUEST_HEAD_BYTES`] (or with more
//! than hyper's 100 headers) is answered 431 and the connection closed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use tokio::sync::Semaphore;

use crate::auth::Authenticator;
use crate::board::FeedBoard;
use crate::config::Config;
use crate::connection;
use crate::fanout::SnapshotStore;
use crate::limits::IpSlots;
use crate::registry::Connections;
use crate::shutdown::Shutdown;
use crate::telemetry;

pub mod handshake;
mod upgrade;

use self::upgrade::upgrade;

type Body = Full<Bytes>;

/// Static files of the dashboard, embedded at build time.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "/index.html",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../web/style.css"),
    ),
    (
        "/tickgate.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/tickgate.js"),
    ),
    (
        "/tickgate.d.ts",
        "text/plain; charset=utf-8",
        include_str!("../web/tickgate.d.ts"),
    ),
];

/// What the HTTP service hands out: one handle per owner. Cloned into each
/// HTTP connection's task (every field is shared); each handler takes only
/// the handles it needs from it.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub store: Arc<SnapshotStore>,
    pub feeds: Arc<FeedBoard>,
    pub connections: Arc<Connections>,
    /// Token verification; `None` when `auth.mode = "off"`.
    pub auth: Option<Arc<Authenticator>>,
    /// One permit per open client connection (`limits.max_connections`).
    pub connection_slots: Arc<Semaphore>,
    /// Open connections per client IP (`limits.max_connections_per_ip`).
    pub ip_slots: Arc<IpSlots>,
    pub shutdown: Shutdown,
    pub metrics: PrometheusHandle,
}

impl Services {
    /// Why the gateway is not ready, or `None` when it is: draining, or,
    /// before its first readiness only, a required feed not live or no
    /// data from any feed yet. A feed failing later does not make it
    /// unready (see [`crate::freshness::Freshness::not_ready`]).
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.connections.is_draining() {
            return Some("draining".into());
        }
        if let Some(feed) = self.feeds.not_ready() {
            return Some(feed);
        }
        if self.store.ticks_applied() == 0 {
            return Some("no data received from any feed yet".into());
        }
        None
    }

    fn connection_context(&self) -> connection::Context {
        connection::Context {
            store: Arc::clone(&self.store),
            feeds: Arc::clone(&self.feeds),
            connections: Arc::clone(&self.connections),
            auth: self.auth.clone(),
            config: Arc::clone(&self.config),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// Which listener a connection arrived on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Listener {
    Client { transport: &'static str },
    Admin,
}

/// Accepts connections on `listener` until shutdown.
pub async fn accept_loop(listener: TcpListener, kind: Listener, services: Services) {
    loop {
        // The client listener closes as soon as draining starts (new
        // clients go to other instances); the admin listener keeps serving
        // /readyz and /metrics until the end.
        let stop = async {
            match kind {
                Listener::Client { .. } => services.shutdown.draining().await,
                Listener::Admin => services.shutdown.stopped().await,
            }
        };
        let (stream, peer) = tokio::select! {
            () = stop => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly
                    // rather than spinning.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        if let Listener::Client { .. } = kind {
            let socket = socket2::SockRef::from(&stream);
            let connection = &services.config.connection;
            // A small kernel send buffer, and little of it unsent, keep a
            // stalled client's backlog in its outbox, where it conflates,
            // instead of seconds of stale frames queued in the kernel.
            if connection.send_buffer_bytes > 0 {
                let _ = socket.set_send_buffer_size(connection.send_buffer_bytes);
            }
            if let Ok(bytes @ 1..) = u32::try_from(connection.notsent_lowat_bytes) {
                let _ = socket.set_tcp_notsent_lowat(bytes);
            }
        }
        services
            .shutdown
            .spawn(serve_http(stream, peer, kind, services.clone()));
    }
}

/// Serves HTTP/1.1 on one connection (plain or already TLS-wrapped).
pub async fn serve_http<S>(io: S, peer: SocketAddr, kind: Listener, services: Services)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake_timeout = services.config.limits.handshake_timeout;
    let shutdown = services.shutdown.clone();
    let service = service_fn(move |request| {
        let services = services.clone();
        async move { Ok::<_, Infallible>(route(request, kind, services, peer)) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        // A complete head over the limit, and an incomplete one that
        // fills the read buffer, are both answered 431.
        .max_header_size(handshake::MAX_REQUEST_HEAD_BYTES)
        .max_buf_size(handshake::MAX_REQUEST_HEAD_BYTES)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                // hyper answered 431 and closed.
                if error.is_parse_too_large() && matches!(kind, Listener::Client { .. }) {
                    telemetry::connection_refused(handshake::HEAD_TOO_LARGE);
                }
                debug!(%peer, %error, "http connection ended with an error");
            }
        }
        () = shutdown.stopped() => connection.as_mut().graceful_shutdown(),
    }
}

fn route(
    request: Request<Incoming>,
    kind: Listener,
    services: Services,
    peer: SocketAddr,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    match (kind, path.as_str()) {
        (Listener::Client { transport }, "/ws") => upgrade(request, transport, services, peer),
        (Listener::Client { .. }, _) => match ASSETS.iter().find(|(p, _, _)| *p == path) {
            Some((_, content_type, body))
                if request.method() == Method::GET || request.method() == Method::HEAD =>
            {
                let mut response = text(StatusCode::OK, body);
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                response
            }
            Some(_) => method_not_allowed(),
            None => not_found(),
        },
        (Listener::Admin, "/healthz") => text(StatusCode::OK, "ok\n"),
        (Listener::Admin, "/readyz") => match services.not_ready_reason() {
            None => text(StatusCode::OK, "ready\n"),
            Some(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {reason}\n"),
            ),
        },
        (Listener::Admin, "/metrics") => {
            observe(&services);
            let mut response = text(StatusCode::OK, &services.metrics.render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        (Listener::Admin, "/connections") if request.method() == Method::GET => {
            json(&crate::admin::connections(
                &services.connections,
                services.config.connection.slow_consumer,
            ))
        }
        (Listener::Admin, "/symbols") if request.method() == Method::GET => {
            let top = request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("top=")))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(20)
                .min(10_000);
            json(&crate::admin::top_symbols(&services.store, top))
        }
        (Listener::Admin, p) if p.starts_with("/connections/") => {
            let Some(target) = crate::admin::close_target(p) else {
                return not_found();
            };
            if request.method() != Method::POST {
                return method_not_allowed();
            }
            match target {
                crate::admin::CloseTarget::Id(id)
                    if crate::admin::close(&services.connections, id) =>
                {
                    text(StatusCode::ACCEPTED, "closing\n")
                }
                crate::admin::CloseTarget::Id(_) => {
                    text(StatusCode::NOT_FOUND, "no such connection\n")
                }
                crate::admin::CloseTarget::BadId => text(
                    StatusCode::BAD_REQUEST,
                    "connection ids are decimal numbers\n",
                ),
            }
        }
        (Listener::Admin, _) => not_found(),
    }
}

/// Samples what is only known by walking the open connections (slow
/// consumers, buffered bytes), the feed gauges and the process figures, for
/// the scrape about to be rendered.
fn observe(services: &Services) {
    let now = std::time::Instant::now();
    let threshold = services.config.connection.slow_consumer;
    let connections = services.connections.all();
    let slow = connections
        .iter()
        .filter(|m| m.stats.blocked_for(now).is_some_and(|d| d >= threshold))
        .count();
    let slowed = connections
        .iter()
        .filter(|m| {
            m.stats
                .ladder_level
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        })
        .count();
    let queued = connections.iter().map(|m| m.stats.inflight_bytes());
    telemetry::connections_sampled(slow, slowed, queued);
    services.feeds.publish_gauges(now);
    telemetry::interest_symbols(services.store.interest().symbol_count());
    telemetry::observe_process();
}

fn json<T: serde::Serialize>(value: &T) -> Response<Body> {
    let mut response = text(
        StatusCode::OK,
        &serde_json::to_string(value).unwrap_or_default(),
    );
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Body::new(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

fn method_not_allowed() -> Response<Body> {
    text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
}
