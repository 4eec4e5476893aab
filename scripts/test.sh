#!/usr/bin/env bash
# Runs every check and test of tickgate. Installs what the tests need when it
# is missing (Debian packages, npm packages, Python tools under .tools/).
# Usage: scripts/test.sh        (from anywhere; CI runs exactly this)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n=== %s ===\n' "$*"; }

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets -- -D warnings

step "build (dev profile, shared by every suite below)"
cargo build --workspace --all-targets
export TICKGATE_BIN="$PWD/target/debug/tickgate"

step "nats-server for tests/nats.rs (Debian package)"
if ! command -v nats-server >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update && $sudo apt-get install -y --no-install-recommends nats-server
fi
nats-server --version

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

step "web client library and dashboard (Node + headless Chromium)"
bash web/run-tests.sh

step "deployment manifests, alert rules, dashboards"
bash deploy/test.sh

echo
echo "all suites passed"
