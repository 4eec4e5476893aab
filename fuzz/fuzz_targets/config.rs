//! Config loader: `RUSTC_BOOTSTRAP=1 cargo fuzz run config`.
//!
//! Any text must load or yield a `ConfigError` (syntax or a list of
//! problems), never panic; a config that loads must validate again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickgate::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text, "fuzz") {
        assert!(config.validate().is_ok());
    }
});
