#!/usr/bin/env bash
# Soak the randomized fault checker (docs/faults.md): runs N seeds (default
# 200) of tests/faults.rs in each scenario (`direct`: TCP feeds into the
# gateway; `nats`: publishers, nats-server and its faults; `both`, the
# default), in chunks of 20 seeds per test run, and prints the seeds that
# fail. Each chunk is bounded by CHUNK_TIMEOUT seconds (default 600); the
# soak stops starting chunks after SOAK_SECONDS (default 3600) and says how
# far it got.
#
#   scripts/fault-soak.sh [N] [FIRST_SEED] [direct|nats|both]
#
# Rerun one failing seed with
#   TICKGATE_FAULT_SEED=<seed> cargo nextest run -p tickgate --test faults random_fault --no-capture
#   TICKGATE_FAULT_SEED=<seed> cargo nextest run -p tickgate --test faults random_nats_fault --no-capture
# (TICKGATE_TEST_LOG=info shows the processes' logs.)
set -euo pipefail

count="${1:-200}"
first="${2:-1}"
scenario="${3:-both}"
chunk=20
chunk_timeout="${CHUNK_TIMEOUT:-600}"
soak_seconds="${SOAK_SECONDS:-3600}"
cd "$(dirname "$0")/.."

case "$scenario" in
direct) scenarios=(direct) ;;
nats) scenarios=(nats) ;;
both) scenarios=(direct nats) ;;
*)
    echo "scenario is direct, nats or both, not $scenario" >&2
    exit 64
    ;;
esac

# Build once, outside the time bound.
cargo nextest run -p tickgate --test faults --no-run >/dev/null

started=$SECONDS
status=0
for name in "${scenarios[@]}"; do
    case "$name" in
    direct) filter=random_fault_schedules ;;
    nats) filter=random_nats_fault_schedules ;;
    esac
    scenario_started=$SECONDS
    failed=()
    ran=0
    seed=$first
    end=$((first + count))
    while ((seed < end)); do
        if ((SECONDS - started > soak_seconds)); then
            echo "$name: time bound of ${soak_seconds}s reached after $ran seeds"
            break
        fi
        to=$((seed + chunk < end ? seed + chunk : end))
        log=$(mktemp)
        if ! TICKGATE_FAULT_SEEDS="$seed..$to" timeout "$chunk_timeout" \
            cargo nextest run -p tickgate --test faults "$filter" --no-capture >"$log" 2>&1; then
            chunk_failed=$(grep -oE '^seed [0-9]+: FAILED' "$log" | grep -oE '[0-9]+' || true)
            if [[ -z "$chunk_failed" ]]; then
                echo "$name seeds $seed..$to: the run itself failed or timed out:"
                tail -20 "$log"
                chunk_failed="$seed..$to"
            fi
            grep -E '^seed [0-9]+: |^  client|fault run failed' "$log" | grep -v '^seed [0-9]*: ok ' || true
            kept="${TMPDIR:-/tmp}/fault-soak-$name-$seed-$to.log"
            cp "$log" "$kept"
            echo "$name seeds $seed..$to: full log kept in $kept"
            failed+=($chunk_failed)
        fi
        rm -f "$log"
        ran=$((ran + to - seed))
        seed=$to
    done
    echo "fault soak ($name): $ran seeds from $first in $((SECONDS - scenario_started))s, ${#failed[@]} failing: ${failed[*]:-none}"
    if ((${#failed[@]} > 0)); then
        status=1
    fi
done
exit $status
