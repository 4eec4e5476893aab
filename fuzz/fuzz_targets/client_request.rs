//! Client message parser: `RUSTC_BOOTSTRAP=1 cargo fuzz run client_request`.
//!
//! Any text must parse to a request or a `bad_request`/`unknown_op` error,
//! never panic; errors must encode to a JSON `error` frame; the symbols of a
//! request must validate without panicking and echo at most 40 bytes each.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickgate::protocol::{self, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match protocol::parse_request(text) {
        Ok(Request::Subscribe { symbols, .. } | Request::Unsubscribe { symbols, .. }) => {
            assert!(!symbols.is_empty());
            let list = protocol::parse_symbols(&symbols);
            assert!(list.valid.len() + list.invalid.len() <= symbols.len());
            assert!(list.invalid.iter().all(|s| s.len() <= 40));
        }
        Ok(Request::Priority { classes, .. }) => {
            assert!(classes.iter().any(|(_, texts)| !texts.is_empty()));
        }
        Ok(Request::Ping { .. } | Request::Auth { .. }) => {}
        Err(error) => {
            let frame = error.to_frame();
            let value: serde_json::Value = serde_json::from_str(&frame).expect("error frame is JSON");
            assert_eq!(value["type"], "error");
        }
    }
});
