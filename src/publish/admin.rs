//! The publisher's admin listener: `/metrics`, `/healthz`, `/readyz`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::readiness::Readiness;

type Body = Full<Bytes>;

/// Serves the admin endpoints until `shutdown`; runs the recorder's upkeep
/// every 5 s. Each HTTP connection is a task on `tracker`, so the publisher's
/// stop waits for a scrape in progress.
pub(super) async fn serve_admin(
    listener: TcpListener,
    handle: PrometheusHandle,
    readiness: Arc<Readiness>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut upkeep = tokio::time::interval(Duration::from_secs(5));
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = upkeep.tick() => {
                handle.run_upkeep();
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        let handle = handle.clone();
        let readiness = Arc::clone(&readiness);
        tracker.spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = admin_route(request.uri().path(), &handle, &readiness);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The reply to one admin request.
fn admin_route(path: &str, handle: &PrometheusHandle, readiness: &Readiness) -> Response<Body> {
    let (status, body, content_type) = match path {
        "/healthz" => (StatusCode::OK, "ok\n".to_owned(), "text/plain"),
        "/readyz" => match readiness.not_ready() {
            None if readiness.standby.load(Ordering::Relaxed) => (
                StatusCode::OK,
                "ready: standby, another publisher holds the lease\n".to_owned(),
                "text/plain",
            ),
            None => (StatusCode::OK, "ready\n".to_owned(), "text/plain"),
            Some(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
                "text/plain",
            ),
        },
        "/metrics" => (
            StatusCode::OK,
            handle.render(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "not found\n".to_owned(),
            "text/plain",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use http_body_util::BodyExt;
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;

    /// A recorder's handle, not installed: rendering it needs no global state.
    fn handle() -> PrometheusHandle {
        PrometheusBuilder::new().build_recorder().handle()
    }

    async fn get(path: &str, readiness: &Readiness) -> (StatusCode, String, String) {
        let response = admin_route(path, &handle(), readiness);
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&body).into_owned();
        (status, body, content_type)
    }

    #[tokio::test]
    async fn healthz_answers_ok_even_before_readiness() {
        let (status, body, _) = get("/healthz", &Readiness::default()).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    }

    #[tokio::test]
    async fn readyz_says_why_it_is_not_ready() {
        let (status, body, _) = get("/readyz", &Readiness::default()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "not ready: the stream's last quotes are not loaded yet\n"
        );
    }

    #[tokio::test]
    async fn readyz_answers_ready_once_every_condition_holds() {
        let readiness = Readiness::default();
        for flag in [
            &readiness.loaded,
            &readiness.connected,
            &readiness.upstream_live,
        ] {
            flag.store(true, Ordering::Relaxed);
        }
        let (status, body, _) = get("/readyz", &readiness).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
    }

    #[tokio::test]
    async fn metrics_are_served_in_the_prometheus_text_format() {
        let (status, _, content_type) = get("/metrics", &Readiness::default()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    }

    #[tokio::test]
    async fn other_paths_are_not_found() {
        let (status, body, _) = get("/ws", &Readiness::default()).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::NOT_FOUND, "not found\n")
        );
    }
}
