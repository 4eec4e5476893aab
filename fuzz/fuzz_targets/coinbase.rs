//! Coinbase message parser: `RUSTC_BOOTSTRAP=1 cargo fuzz run coinbase`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickgate_feeds::venue::Venue;

mod common {
    include!("common.rs");
}

fuzz_target!(|data: &[u8]| {
    common::run(data, || Venue::Coinbase.decoder(1 << 20));
});
