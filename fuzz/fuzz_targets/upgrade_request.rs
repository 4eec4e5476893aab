//! WebSocket upgrade check: `RUSTC_BOOTSTRAP=1 cargo fuzz run upgrade_request`.
//! The checks: `upgrade_request` in `fuzz/checks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::upgrade_request(data));
