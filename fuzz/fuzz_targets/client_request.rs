//! Client message parser: `RUSTC_BOOTSTRAP=1 cargo fuzz run client_request`.
//! The checks: `client_request` in `fuzz/checks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::client_request(data));
