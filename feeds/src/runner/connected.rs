//! TCP and WebSocket feeds: connect, read until the connection ends or
//! goes silent (marking the feed stale on the way), back off, reconnect.

use std::sync::Arc;

use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::{info, warn};

use super::pipeline::{AuthFailure, Pipeline, Received};
use super::{Stop, jitter_seed};
use crate::FeedState;
use crate::backoff::Backoff;
use crate::config::FeedPlan;
use crate::parse::ParseError;
use crate::telemetry;
use crate::transport::{self, End, Frame, LineReader};

/// Where a connected feed reads from.
pub(crate) enum Endpoint {
    Tcp {
        address: String,
    },
    Ws {
        url: tokio_tungstenite::tungstenite::http::Uri,
        handshake: Vec<String>,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

enum Connection {
    Tcp(Box<LineReader<tokio::io::BufReader<tokio::net::TcpStream>>>),
    Ws(Box<transport::WsConnection>),
}

impl Connection {
    async fn next(&mut self) -> Result<Frame, End> {
        match self {
            Self::Tcp(lines) => lines.next().await,
            Self::Ws(ws) => ws.next().await,
        }
    }

    fn message(&mut self) -> &mut [u8] {
        match self {
            Self::Tcp(lines) => &mut lines.line,
            Self::Ws(ws) => &mut ws.buf,
        }
    }
}

impl Endpoint {
    async fn connect(&self, max: usize) -> Result<Connection, String> {
        match self {
            Self::Tcp { address } => {
                let stream = tokio::net::TcpStream::connect(address.as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                let reader = tokio::io::BufReader::with_capacity(64 * 1024, stream);
                Ok(Connection::Tcp(Box::new(LineReader::new(reader, max))))
            }
            Self::Ws {
                url,
                handshake,
                tls,
            } => transport::connect_ws(url, tls.as_ref(), handshake, max)
                .await
                .map(|ws| Connection::Ws(Box::new(ws)))
                .map_err(|e| e.to_string()),
        }
    }
}

/// Runs a TCP or WebSocket feed until shutdown: connect (bounded by the
/// connect timeout), read until the connection ends, back off, repeat.
pub(crate) async fn run_connected(plan: FeedPlan, endpoint: Endpoint, mut pipeline: Pipeline) {
    let mut backoff = Backoff::new(plan.backoff_min, plan.backoff_max, jitter_seed(&plan.name));
    let shutdown = pipeline.shutdown.clone();
    loop {
        if pipeline.set_state(FeedState::Connecting).await.is_err() {
            return;
        }
        pipeline.decoder.reset();
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            attempt = timeout(plan.connect_timeout, endpoint.connect(plan.max_message_bytes)) => attempt,
        };
        let refused = match attempt {
            Ok(Ok(mut connection)) => {
                info!(feed = &*plan.name, "feed connected");
                let Ok(ended) = session(&plan, &mut pipeline, &mut connection).await else {
                    return;
                };
                // Rejected credentials do not get better by retrying fast:
                // the backoff keeps growing even if some data came first.
                if ended.auth_failure.is_none() {
                    if ended.delivered {
                        backoff.reset();
                    }
                    warn!(feed = &*plan.name, "feed disconnected: {}", ended.reason);
                }
                ended.auth_failure
            }
            Ok(Err(error)) => {
                warn!(feed = &*plan.name, "feed connect failed: {error}");
                None
            }
            Err(_) => {
                warn!(
                    feed = &*plan.name,
                    timeout_ms = plan.connect_timeout.as_millis() as u64,
                    "feed connect timed out"
                );
                None
            }
        };
        if pipeline.set_state(FeedState::Down).await.is_err() {
            return;
        }
        let delay = backoff.next_delay();
        if let Some(AuthFailure { code, message }) = refused {
            telemetry::auth_failure(&plan.name);
            warn!(
                feed = &*plan.name,
                reason = "auth",
                code,
                retry_in_ms = delay.as_millis() as u64,
                "venue rejected the credentials; feed down: {message}"
            );
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep(delay) => {}
        }
        telemetry::reconnect(&plan.name);
    }
}

/// How one connection ended.
struct SessionEnd {
    /// For the log.
    reason: String,
    /// It delivered ticks (the backoff resets).
    delivered: bool,
    /// The venue refused the credentials (the backoff keeps growing).
    auth_failure: Option<AuthFailure>,
}

impl SessionEnd {
    fn closed(reason: impl Into<String>, delivered: bool) -> Self {
        Self {
            reason: reason.into(),
            delivered,
            auth_failure: None,
        }
    }
}

async fn session(
    plan: &FeedPlan,
    pipeline: &mut Pipeline,
    connection: &mut Connection,
) -> Result<SessionEnd, Stop> {
    let shutdown = pipeline.shutdown.clone();
    let mut last_data = Instant::now();
    let mut delivered = false;
    loop {
        let stale_at = last_data + plan.staleness;
        let idle_at = plan.idle_timeout.map(|idle| last_data + idle);
        let stale = pipeline.state() == Some(FeedState::Stale);
        tokio::select! {
            _ = shutdown.cancelled() => return Err(Stop),
            _ = sleep_until(stale_at), if !stale => {
                warn!(feed = &*plan.name, silent_ms = plan.staleness.as_millis() as u64, "feed stale");
                pipeline.set_state(FeedState::Stale).await?;
            }
            _ = sleep_until(idle_at.unwrap_or(stale_at)), if idle_at.is_some() => {
                return Ok(SessionEnd::closed("silent past idle_timeout_ms; reconnecting", delivered));
            }
            next = connection.next() => match next {
                Ok(Frame::Message) => match pipeline.decode(connection.message()) {
                    Received::Data => {
                        last_data = Instant::now();
                        delivered = true;
                        pipeline.set_state(FeedState::Live).await?;
                        pipeline.flush(false).await?;
                    }
                    Received::Heartbeat if pipeline.state() == Some(FeedState::Live) => {
                        last_data = Instant::now();
                    }
                    Received::Heartbeat | Received::Control => {}
                    Received::AuthFailed(failure) => {
                        pipeline.flush(false).await?;
                        return Ok(SessionEnd {
                            reason: "the venue rejected the credentials".into(),
                            delivered,
                            auth_failure: Some(failure),
                        });
                    }
                },
                Ok(Frame::Oversize(len)) => {
                    let error = ParseError::Oversize { len, max: plan.max_message_bytes };
                    pipeline.reject(error.kind(), &error);
                }
                Ok(Frame::Control) => {}
                Err(End::Truncated) => {
                    pipeline.reject("truncated", &End::Truncated);
                    return Ok(SessionEnd::closed(End::Truncated.to_string(), delivered));
                }
                Err(end) => return Ok(SessionEnd::closed(end.to_string(), delivered)),
            },
        }
    }
}
