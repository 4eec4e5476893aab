//! The randomized fault checker (docs/faults.md).

#[path = "checker/history.rs"]
mod history;
