#!/usr/bin/env bash
# Runs the web tests: the client library against a real gateway and the
# dashboard in headless Chromium. Installs what is missing first:
#   - npm dev dependencies (ws, playwright-core, axe-core, typescript, @types/ws,
#     @msgpack/msgpack) into web/node_modules
#   - Debian's chromium at /usr/bin/chromium
#   - the gateway binary (cargo build, dev profile) unless TICKGATE_BIN is set
# Usage: web/run-tests.sh            (from anywhere; run as root for apt-get)
set -euo pipefail

web_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$web_dir/.." && pwd)"
cd "$repo_root"

if [ ! -d "$web_dir/node_modules/ws" ] || [ ! -d "$web_dir/node_modules/playwright-core" ] \
  || [ ! -d "$web_dir/node_modules/axe-core" ] || [ ! -d "$web_dir/node_modules/typescript" ] \
  || [ ! -d "$web_dir/node_modules/@msgpack/msgpack" ]; then
  echo "web: installing npm dev dependencies" >&2
  (cd "$web_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -x /usr/bin/chromium ]; then
  echo "web: installing chromium" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends chromium
fi

if [ -z "${TICKGATE_BIN:-}" ]; then
  # The page is embedded in the binary: build so it serves these web files.
  cargo build --bin tickgate
fi

node --test web/test/
