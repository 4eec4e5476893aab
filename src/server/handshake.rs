//! The WebSocket opening handshake as RFC 6455 §4.2.1 requires it, checked
//! on the parsed request head before any admission check (draining, origin,
//! per-IP and total slots, token). Pure: it reads the method, the HTTP
//! version and the headers, and hands back the `Sec-WebSocket-Accept` value
//! or why the request is not a valid opening handshake.

use base64::Engine as _;
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::{Method, StatusCode, Version};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Largest request head (request line and headers) the HTTP layer reads on
/// either listener; a longer one is answered 431 and the connection closed.
/// A WebSocket upgrade with a token needs a few KiB.
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

/// The `reason` of `tickgate_connections_refused_total` for a request head
/// over [`MAX_REQUEST_HEAD_BYTES`] or with too many headers (431).
pub const HEAD_TOO_LARGE: &str = "request_head_too_large";

/// Why a request on `/ws` is not a valid WebSocket opening handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// A method other than `GET` (405).
    Method,
    /// Not HTTP/1.1: WebSocket needs it (400).
    HttpVersion,
    /// No `Host` header, an empty one or more than one (400).
    Host,
    /// No `Connection: Upgrade` with `Upgrade: websocket` (426).
    NotWebSocket,
    /// `Sec-WebSocket-Version` missing or not 13 (426, naming 13).
    WebSocketVersion,
    /// `Sec-WebSocket-Key` missing, repeated, or not the base64 of exactly
    /// 16 bytes (400).
    Key,
}

impl HandshakeError {
    /// The `reason` label of `tickgate_connections_refused_total`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::HttpVersion => "http_version",
            Self::Host => "missing_host",
            Self::NotWebSocket => "not_websocket",
            Self::WebSocketVersion => "websocket_version",
            Self::Key => "bad_key",
        }
    }

    /// The HTTP status of the refusal.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Method => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotWebSocket | Self::WebSocketVersion => StatusCode::UPGRADE_REQUIRED,
            Self::HttpVersion | Self::Host | Self::Key => StatusCode::BAD_REQUEST,
        }
    }

    /// The refusal's body: what the client must change.
    pub fn message(self) -> &'static str {
        match self {
            Self::Method => "method not allowed\n",
            Self::HttpVersion => "a WebSocket upgrade must be an HTTP/1.1 request\n",
            Self::Host => "a WebSocket upgrade needs exactly one non-empty Host header\n",
            Self::NotWebSocket => {
                "/ws is a WebSocket endpoint: connect with a WebSocket client (ws:// or wss://)\n"
            }
            Self::WebSocketVersion => "unsupported WebSocket version; use 13\n",
            Self::Key => "Sec-WebSocket-Key must be one base64-encoded 16-byte value\n",
        }
    }
}

/// Checks a request head on `/ws`, cheapest first; on success returns the
/// `Sec-WebSocket-Accept` value for the 101 answer.
pub fn check(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<String, HandshakeError> {
    if method != Method::GET {
        return Err(HandshakeError::Method);
    }
    if version != Version::HTTP_11 {
        return Err(HandshakeError::HttpVersion);
    }
    match single(headers, &header::HOST) {
        Some(host) if !host.is_empty() => {}
        _ => return Err(HandshakeError::Host),
    }
    if !has_token(headers, &header::CONNECTION, "upgrade")
        || !has_token(headers, &header::UPGRADE, "websocket")
    {
        return Err(HandshakeError::NotWebSocket);
    }
    if single(headers, &header::SEC_WEBSOCKET_VERSION) != Some(b"13") {
        return Err(HandshakeError::WebSocketVersion);
    }
    let key = single(headers, &header::SEC_WEBSOCKET_KEY).ok_or(HandshakeError::Key)?;
    if !is_nonce(key) {
        return Err(HandshakeError::Key);
    }
    Ok(derive_accept_key(key))
}

/// The value of a header that must appear exactly once.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a [u8]> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    values.next().is_none().then_some(value.as_bytes())
}

/// Whether any `name` header lists `token` (comma-separated, any case).
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

/// Whether `key` is the base64 of exactly 16 bytes: 24 characters, two of
/// them padding (checked on the length first, so a long value costs
/// nothing to decode).
fn is_nonce(key: &[u8]) -> bool {
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|nonce| nonce.len() == 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn valid_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("gateway:8080"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static(KEY));
        headers
    }

    fn check_with(change: impl FnOnce(&mut HeaderMap)) -> Result<String, HandshakeError> {
        let mut headers = valid_headers();
        change(&mut headers);
        check(&Method::GET, Version::HTTP_11, &headers)
    }

    #[test]
    fn a_valid_upgrade_gets_the_rfc_accept_value() {
        // RFC 6455 §1.3's own example.
        assert_eq!(
            check_with(|_| {}),
            Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_owned())
        );
    }

    #[test]
    fn keys_that_are_not_base64_of_16_bytes_are_refused() {
        for key in [
            "",
            "a",
            "not base64 at all!!!!!!!",
            // 15 and 17 bytes
            "AAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAA=",
            "AAAAAAAAAAAAAAAAAAAAAAAA",
            // 16 bytes without padding, and in the URL-safe alphabet
            "AAAAAAAAAAAAAAAAAAAAAA",
            "-_AAAAAAAAAAAAAAAAAAAA==",
        ] {
            let result = check_with(|h| {
                h.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static(key));
            });
            assert_eq!(result, Err(HandshakeError::Key), "{key:?}");
        }
        let long = "A".repeat(60_000);
        let result = check_with(|h| {
            h.insert(
                header::SEC_WEBSOCKET_KEY,
                HeaderValue::from_str(&long).expect("ascii"),
            );
        });
        assert_eq!(result, Err(HandshakeError::Key));
    }

    #[test]
    fn a_missing_or_repeated_key_is_refused() {
        assert_eq!(
            check_with(|h| {
                h.remove(header::SEC_WEBSOCKET_KEY);
            }),
            Err(HandshakeError::Key)
        );
        assert_eq!(
            check_with(|h| {
                h.append(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static(KEY));
            }),
            Err(HandshakeError::Key)
        );
    }

    #[test]
    fn only_http_1_1_may_upgrade() {
        for version in [Version::HTTP_09, Version::HTTP_10, Version::HTTP_2] {
            assert_eq!(
                check(&Method::GET, version, &valid_headers()),
                Err(HandshakeError::HttpVersion),
                "{version:?}"
            );
        }
    }

    #[test]
    fn host_must_be_present_once_and_not_empty() {
        assert_eq!(
            check_with(|h| {
                h.remove(header::HOST);
            }),
            Err(HandshakeError::Host)
        );
        assert_eq!(
            check_with(|h| {
                h.insert(header::HOST, HeaderValue::from_static(""));
            }),
            Err(HandshakeError::Host)
        );
        assert_eq!(
            check_with(|h| {
                h.append(header::HOST, HeaderValue::from_static("other"));
            }),
            Err(HandshakeError::Host)
        );
    }

    #[test]
    fn upgrade_headers_and_version_13_are_required() {
        assert_eq!(
            check_with(|h| {
                h.remove(header::UPGRADE);
            }),
            Err(HandshakeError::NotWebSocket)
        );
        assert_eq!(
            check_with(|h| {
                h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
            }),
            Err(HandshakeError::NotWebSocket)
        );
        assert_eq!(
            check_with(|h| {
                h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
            }),
            Err(HandshakeError::NotWebSocket)
        );
        for version in ["8", "13, 8", ""] {
            assert_eq!(
                check_with(|h| {
                    h.insert(
                        header::SEC_WEBSOCKET_VERSION,
                        HeaderValue::from_static(version),
                    );
                }),
                Err(HandshakeError::WebSocketVersion),
                "{version:?}"
            );
        }
    }

    #[test]
    fn other_methods_are_refused_before_anything_else() {
        assert_eq!(
            check(&Method::POST, Version::HTTP_10, &HeaderMap::new()),
            Err(HandshakeError::Method)
        );
    }

    #[test]
    fn the_head_limit_has_a_registered_label() {
        assert!(crate::telemetry::REFUSE_REASONS.contains(&HEAD_TOO_LARGE));
    }

    #[test]
    fn every_refusal_has_a_registered_label_and_a_body() {
        for error in [
            HandshakeError::Method,
            HandshakeError::HttpVersion,
            HandshakeError::Host,
            HandshakeError::NotWebSocket,
            HandshakeError::WebSocketVersion,
            HandshakeError::Key,
        ] {
            assert!(
                crate::telemetry::REFUSE_REASONS.contains(&error.kind()),
                "{error:?}"
            );
            assert!(error.status().is_client_error(), "{error:?}");
            assert!(error.message().ends_with('\n'), "{error:?}");
        }
    }
}
