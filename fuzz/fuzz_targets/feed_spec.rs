//! `--feed SPEC` parser: `RUSTC_BOOTSTRAP=1 cargo fuzz run feed_spec`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickgate_feeds::FeedSpec;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = FeedSpec::parse(text) {
            assert!(config.validate().is_ok(), "a parsed spec must validate");
        }
    }
});
