//! Generic JSON ingest parser: `RUSTC_BOOTSTRAP=1 cargo fuzz run json`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickgate_feeds::json::JsonDecoder;
use tickgate_feeds::parse::Decoder;

mod common {
    include!("common.rs");
}

fuzz_target!(|data: &[u8]| {
    common::run(data, || Box::new(JsonDecoder::default()) as Box<dyn Decoder>);
});
