//! The fuzz targets' inputs, replayed through the same parsers with the same
//! checks as part of the ordinary test command (no nightly, no cargo-fuzz):
//! the committed seeds in `fuzz/seeds/<target>/`, any crash reproducers kept
//! there, and — when a local fuzzing run left one — the corpus in
//! `fuzz/corpus/<target>/` (at most 20,000 files per target).

use std::path::{Path, PathBuf};

use tickgate::config::Config;
use tickgate::protocol::{self, Request};

const MAX_FILES: usize = 20_000;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["seeds", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        files.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .take(MAX_FILES),
        );
    }
    files
}

/// The body of `fuzz/fuzz_targets/client_request.rs`.
fn client_request(data: &[u8]) {
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
            let value: serde_json::Value =
                serde_json::from_str(&frame).expect("error frame is JSON");
            assert_eq!(value["type"], "error");
        }
    }
}

/// The body of `fuzz/fuzz_targets/config.rs`.
fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text, "fuzz") {
        assert!(config.validate().is_ok());
    }
}

#[test]
fn client_request_seeds_and_corpus_replay_without_panics() {
    let files = inputs("client_request");
    assert!(files.len() >= 10, "seeds missing: {files:?}");
    for file in files {
        let data = std::fs::read(&file).expect("read");
        client_request(&data);
    }
}

#[test]
fn config_seeds_and_corpus_replay_without_panics() {
    let files = inputs("config");
    assert!(files.len() >= 3, "seeds missing: {files:?}");
    for file in files {
        let data = std::fs::read(&file).expect("read");
        config(&data);
    }
}
