//! The fuzz targets' inputs, replayed through the same parsers with the same
//! checks as part of the ordinary test command (no nightly, no cargo-fuzz):
//! the committed seeds in `fuzz/seeds/<target>/`, any crash reproducers kept
//! there, and — when a local fuzzing run left one — the corpus in
//! `fuzz/corpus/<target>/` (at most 20,000 files per target).

use std::path::{Path, PathBuf};

#[path = "../fuzz/checks.rs"]
mod checks;
use checks::{client_request, config, session, upgrade_request};

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

#[test]
fn session_seeds_and_corpus_replay_without_panics() {
    let files = inputs("session");
    assert!(files.len() >= 5, "seeds missing: {files:?}");
    for file in files {
        // A fuzzing run working on the local corpus may remove a file
        // between the listing and the read.
        let Ok(data) = std::fs::read(&file) else {
            continue;
        };
        session(&data);
    }
}

#[test]
fn client_request_seeds_and_corpus_replay_without_panics() {
    let files = inputs("client_request");
    assert!(files.len() >= 10, "seeds missing: {files:?}");
    for file in files {
        // A fuzzing run working on the local corpus may remove a file
        // between the listing and the read.
        let Ok(data) = std::fs::read(&file) else {
            continue;
        };
        client_request(&data);
    }
}

#[test]
fn config_seeds_and_corpus_replay_without_panics() {
    let files = inputs("config");
    assert!(files.len() >= 3, "seeds missing: {files:?}");
    for file in files {
        // A fuzzing run working on the local corpus may remove a file
        // between the listing and the read.
        let Ok(data) = std::fs::read(&file) else {
            continue;
        };
        config(&data);
    }
}

#[test]
fn upgrade_request_seeds_and_corpus_replay_without_panics() {
    let files = inputs("upgrade_request");
    assert!(files.len() >= 10, "seeds missing: {files:?}");
    for file in files {
        // A fuzzing run working on the local corpus may remove a file
        // between the listing and the read.
        let Ok(data) = std::fs::read(&file) else {
            continue;
        };
        upgrade_request(&data);
    }
}
