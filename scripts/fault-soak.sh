#!/usr/bin/env bash
# Soak the randomized fault checker (docs/faults.md): runs N seeds (default
# 200) of tests/faults.rs, in chunks of 20 seeds per test run, and prints the
# seeds that fail. Each chunk is bounded by CHUNK_TIMEOUT seconds (default
# 600); the whole soak stops starting chunks after SOAK_SECONDS (default
# 3600) and says how far it got.
#
#   scripts/fault-soak.sh [N] [FIRST_SEED]
#
# Rerun one failing seed with
#   TICKGATE_FAULT_SEED=<seed> cargo nextest run -p tickgate --test faults random_fault --no-capture
set -euo pipefail

count="${1:-200}"
first="${2:-1}"
chunk=20
chunk_timeout="${CHUNK_TIMEOUT:-600}"
soak_seconds="${SOAK_SECONDS:-3600}"
cd "$(dirname "$0")/.."

# Build once, outside the time bound.
cargo nextest run -p tickgate --test faults --no-run >/dev/null

started=$SECONDS
failed=()
ran=0
seed=$first
end=$((first + count))
while ((seed < end)); do
    if ((SECONDS - started > soak_seconds)); then
        echo "time bound of ${soak_seconds}s reached after $ran seeds"
        break
    fi
    to=$((seed + chunk < end ? seed + chunk : end))
    log=$(mktemp)
    if ! TICKGATE_FAULT_SEEDS="$seed..$to" timeout "$chunk_timeout" \
        cargo nextest run -p tickgate --test faults random_fault --no-capture >"$log" 2>&1; then
        chunk_failed=$(grep -oE '^seed [0-9]+: FAILED' "$log" | grep -oE '[0-9]+' || true)
        if [[ -z "$chunk_failed" ]]; then
            echo "seeds $seed..$to: the run itself failed or timed out:"
            tail -20 "$log"
            chunk_failed="$seed..$to"
        fi
        grep -E '^seed [0-9]+: FAILED|^  client' "$log" || true
        failed+=($chunk_failed)
    fi
    rm -f "$log"
    ran=$((ran + to - seed))
    seed=$to
done

echo "fault soak: $ran seeds from $first in $((SECONDS - started))s, ${#failed[@]} failing: ${failed[*]:-none}"
((${#failed[@]} == 0))
