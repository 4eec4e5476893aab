//! The `/ws` upgrade: admission checks (draining, origin, per-IP and total
//! connection limits, token), then the hand-over of the upgraded socket to
//! a connection task.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::debug;

use super::handshake::{self, HandshakeError};
use super::{Body, Services, text};
use crate::auth::{self, AuthError, Grant};
use crate::config::Config;
use crate::connection;
use crate::limits;
use crate::protocol::binary::{self, Encoding};
use crate::telemetry;

/// Answers a WebSocket upgrade on `/ws` and hands the socket to a connection task.
///
/// Refusals come before the upgrade, cheapest first: a request that is not
/// a valid opening handshake ([`handshake::check`]: 405, 400 or 426),
/// draining (503), a browser `Origin` not allowed (403), too many
/// connections from the client IP (429) or in total (503), a missing or bad
/// token (401). Each is counted in `tickgate_connections_refused_total`.
pub(super) fn upgrade(
    mut request: Request<Incoming>,
    transport: &'static str,
    services: Services,
    peer: SocketAddr,
) -> Response<Body> {
    let accept = match handshake::check(request.method(), request.version(), request.headers()) {
        Ok(accept) => accept,
        Err(error) => {
            telemetry::connection_refused(error.kind());
            return refusal(error);
        }
    };
    let headers = request.headers();
    if services.connections.is_draining() {
        telemetry::connection_refused("draining");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "gateway is shutting down; connect to another instance\n",
        );
    }
    let limits = &services.config.limits;
    if let Some(origin) = headers.get(header::ORIGIN)
        && !limits::origin_allowed(&limits.allowed_origins, origin.as_bytes())
    {
        telemetry::connection_refused("origin");
        return text(
            StatusCode::FORBIDDEN,
            "origin not allowed to connect to this gateway\n",
        );
    }
    let proxy_header = limits
        .client_ip_header
        .as_deref()
        .and_then(|name| headers.get(name))
        .map(HeaderValue::as_bytes);
    let client_ip = limits::client_ip(peer.ip(), proxy_header);
    let Some(ip_slot) = services
        .ip_slots
        .try_acquire(client_ip, limits.max_connections_per_ip)
    else {
        telemetry::connection_refused("max_connections_per_ip");
        let mut response = text(
            StatusCode::TOO_MANY_REQUESTS,
            "too many connections from this address; close some first\n",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let Ok(permit) = Arc::clone(&services.connection_slots).try_acquire_owned() else {
        telemetry::connection_refused("max_connections");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections; try again later\n",
        );
    };
    let grant = match authenticate(&request, &services) {
        Ok(grant) => grant,
        Err(error) => {
            telemetry::auth_failure(error.kind());
            telemetry::connection_refused("unauthorized");
            let mut response = text(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "unauthorized: {error}; send a JWT as \"Authorization: Bearer <token>\"{}\n",
                    if services.config.auth.query_token {
                        " or ?token=<token>"
                    } else {
                        ""
                    }
                ),
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tickgate\""),
            );
            return response;
        }
    };
    let encoding = Encoding::negotiate(
        request
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    let on_upgrade = hyper::upgrade::on(&mut request);
    let ws_config = websocket_config(&services.config);
    let context = services.connection_context();
    services.shutdown.spawn(async move {
        let _permit = permit;
        let _ip_slot = ip_slot;
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(ws_config),
                )
                .await;
                connection::serve(ws, context, transport, grant, encoding).await;
            }
            Err(error) => debug!(%error, "websocket upgrade failed"),
        }
    });
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    if encoding == Encoding::Binary {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(binary::SUBPROTOCOL),
        );
    }
    response
}

/// The grant an upgrade request carries: everything when auth is off; the
/// verified token's grant; or `None` when there is no token and a first
/// `auth` message is allowed instead.
fn authenticate(
    request: &Request<Incoming>,
    services: &Services,
) -> Result<Option<Grant>, AuthError> {
    let Some(authenticator) = &services.auth else {
        return Ok(Some(Grant::unrestricted()));
    };
    let settings = &services.config.auth;
    let token = auth::token_from_request(
        request
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        request.uri().query(),
        settings.query_token,
    );
    match token {
        Some(token) => authenticator.verify(&token).map(Some),
        None if settings.first_message => Ok(None),
        None => Err(AuthError::Missing),
    }
}

/// Buffers sized for dashboards: they send little, so the read buffer is
/// small (tungstenite's default is 128 KiB per connection). It is also
/// zeroed up to this size every time the connection's task is polled (the
/// reader is polled on each of the writer's wake-ups), so 1 KiB rather than
/// 4 KiB took that from 3 % of a busy core; a large request simply takes a
/// few more reads.
fn websocket_config(config: &Config) -> WebSocketConfig {
    let max_message = config.limits.max_message_bytes.get();
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(config.connection.max_write_buffer_bytes)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// The answer to a request that is not a valid opening handshake; a 426
/// names what to upgrade to.
fn refusal(error: HandshakeError) -> Response<Body> {
    let mut response = text(error.status(), error.message());
    let headers = response.headers_mut();
    match error {
        HandshakeError::NotWebSocket => {
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        }
        HandshakeError::WebSocketVersion => {
            headers.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        HandshakeError::Method => {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
        }
        HandshakeError::HttpVersion | HandshakeError::Host | HandshakeError::Key => {}
    }
    response
}
