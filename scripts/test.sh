#!/usr/bin/env bash
# Runs every check and test of tickgate. Installs what the tests need when it
# is missing (Debian packages, npm packages, Python tools under .tools/).
# Usage: scripts/test.sh        (from anywhere; CI runs exactly this)
#
# Format, lint and build stop at the first failure: nothing else can run
# without them. After that every suite runs even when an earlier one fails;
# a summary at the end names the failed ones, and the exit status is 1 if
# any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n=== %s ===\n' "$*"; }

failed=()
# suite NAME COMMAND...: runs one suite, remembering it if it fails.
suite() {
  local name=$1
  shift
  step "$name"
  if "$@"; then
    printf -- '--- %s: passed\n' "$name"
  else
    printf -- '--- %s: FAILED (exit %s)\n' "$name" "$?"
    failed+=("$name")
  fi
}

rust_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
  else
    cargo test --workspace --no-fail-fast
  fi
}

nats_server() {
  if ! command -v nats-server >/dev/null; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update && $sudo apt-get install -y --no-install-recommends nats-server
  fi
  nats-server --version
}

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets -- -D warnings

step "build (dev profile, shared by every suite below)"
cargo build --workspace --all-targets
export TICKGATE_BIN="$PWD/target/debug/tickgate"

# Without nats-server the Rust suite still runs; tests/nats.rs then fails
# and says why.
suite "nats-server for tests/nats.rs (Debian package)" nats_server
suite "Rust tests" rust_tests
suite "web client library and dashboard (Node + headless Chromium)" bash web/run-tests.sh
suite "deployment manifests, alert rules, dashboards" bash deploy/test.sh

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED suites (${#failed[@]}):"
  printf '  - %s\n' "${failed[@]}"
  exit 1
fi
echo "all suites passed"
