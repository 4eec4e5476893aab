//! One client session: `RUSTC_BOOTSTRAP=1 cargo fuzz run session`.
//! The checks: `session` in `fuzz/checks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::session(data));
