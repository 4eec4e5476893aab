#!/usr/bin/env bash
# Checks everything an SRE deploys and watches tickgate with: manifests,
# container image file, alert rules, Grafana dashboards, metrics docs, all
# against the real binary. Prints `N passed, N failed` last; exits non-zero
# on any failure.
#
#   bash deploy/test.sh
#
# Installs what it needs when missing: a venv in .tools/venv
# (kubernetes-validate, yamllint, websockets from PyPI) and promtool
# (Debian package prometheus). Uses $TICKGATE_BIN, default
# target/debug/tickgate, built with `cargo build` when missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="$root/.tools/venv"
if ! "$venv/bin/python" -c 'import kubernetes_validate, yamllint, websockets, yaml' 2>/dev/null; then
    echo "# installing kubernetes-validate, yamllint, websockets into .tools/venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'kubernetes-validate==1.37.0' 'yamllint==1.38.0' 'websockets==17.4'
fi

promtool="$(command -v promtool || true)"
if [ -z "$promtool" ]; then
    echo "# installing promtool (Debian package prometheus)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    promtool="$(command -v promtool)"
fi

bin="${TICKGATE_BIN:-$root/target/debug/tickgate}"
if [ ! -x "$bin" ]; then
    if [ -n "${TICKGATE_BIN:-}" ]; then
        echo "TICKGATE_BIN=$TICKGATE_BIN is not an executable" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "# building target/debug/tickgate"
    cargo build --quiet --bin tickgate
fi

TICKGATE_BIN="$bin" TOOLS_BIN="$venv/bin" PROMTOOL="$promtool" \
    exec "$venv/bin/python" "$root/deploy/tests/check_deploy.py"
