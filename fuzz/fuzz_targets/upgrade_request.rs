//! WebSocket upgrade check: `RUSTC_BOOTSTRAP=1 cargo fuzz run upgrade_request`.
//!
//! The input is a request head (a request line, then `name: value` lines),
//! turned into the method, version and headers hyper would hand the check;
//! lines that do not make one are skipped. Any head must be accepted with a
//! 28-character `Sec-WebSocket-Accept` (and then be a `GET` over HTTP/1.1
//! with one `Host` and one key) or refused with a 4xx, a body and a
//! registered refusal reason, never panic.
#![no_main]

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Version};
use libfuzzer_sys::fuzz_target;
use tickgate::server::handshake;
use tickgate::telemetry;

fuzz_target!(|data: &[u8]| upgrade_request(data));

/// Lines that do not make a method, a header name or a header value are
/// skipped, so the check sees every shape of head hyper could hand it.
/// Kept in step with `upgrade_request` in `tests/fuzz_replay.rs`.
fn upgrade_request(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n').map(|line| line.trim_ascii());
    let mut request_line = lines.next().unwrap_or_default().split(|&b| b == b' ');
    let Ok(method) = Method::from_bytes(request_line.next().unwrap_or_default()) else {
        return;
    };
    let version = match request_line.nth(1).unwrap_or_default() {
        b"HTTP/1.0" => Version::HTTP_10,
        b"HTTP/1.1" => Version::HTTP_11,
        b"HTTP/2" | b"HTTP/2.0" => Version::HTTP_2,
        _ => Version::HTTP_09,
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    match handshake::check(&method, version, &headers) {
        Ok(accept) => {
            assert_eq!(method, Method::GET);
            assert_eq!(version, Version::HTTP_11);
            // base64 of a SHA-1 digest
            assert_eq!(accept.len(), 28, "{accept}");
            assert_eq!(headers.get_all(header::SEC_WEBSOCKET_KEY).iter().count(), 1);
            assert_eq!(headers.get_all(header::HOST).iter().count(), 1);
        }
        Err(error) => {
            assert!(error.status().is_client_error(), "{error:?}");
            assert!(error.message().ends_with('\n'), "{error:?}");
            assert!(
                telemetry::REFUSE_REASONS.contains(&error.kind()),
                "{error:?}"
            );
        }
    }
}
