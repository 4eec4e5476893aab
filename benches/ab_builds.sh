#!/bin/bash
# A/B of two gateway builds under the same broadcast load, alternating
# (A, B, A, B, …) in one sitting: the before/after run a change on the hot
# path owes. Each run: the gateway on core 0 fed by the load tester's TCP
# feed, the load tester (always BIN_B's, so the client side is the same) on
# core 1, CLIENTS clients x 100 symbols, RATE feed ticks/s, 5 s measured.
# Usage: bash benches/ab_builds.sh BIN_A BIN_B RATE ROUNDS [CLIENTS]
# (A_CONFIG / B_CONFIG: a config file for that side, e.g. to A/B one key on
# one build.)
# Reports land in /tmp/abb-*.json, one summary line per run.
A=$1; B=$2; RATE=$3; ROUNDS=$4; CLIENTS=${5:-1000}
for round in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    BIN=$A; CONFIG=${A_CONFIG:-}
    if [ "$side" = B ]; then BIN=$B; CONFIG=${B_CONFIG:-}; fi
    CONFIG_ARGS=(); [ -n "$CONFIG" ] && CONFIG_ARGS=(--config "$CONFIG")
    PORT=$((19100 + RANDOM % 500)); FEED=$((16100 + RANDOM % 500))
    taskset -c 0 "$BIN" "${CONFIG_ARGS[@]}" --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:0 --feed tcp://127.0.0.1:$FEED > /dev/null 2>&1 &
    GW=$!
    sleep 0.5
    OUT=/tmp/abb-$side-$RATE-$CLIENTS-$round.json
    taskset -c 1 "$B" loadtest --url ws://127.0.0.1:$PORT/ws --feed-listen 127.0.0.1:$FEED --clients "$CLIENTS" \
      --symbols-per-client 100 --universe 100 --feed-rate "$RATE" --duration 5s --drain 3s \
      --server-pid $GW --json --quiet > "$OUT" 2>/dev/null
    kill $GW; wait $GW 2>/dev/null
    python3 - "$OUT" "$side" "$round" <<'PY'
import json, sys
out, side, rd = sys.argv[1:]
r = json.load(open(out))
t = r['throughput']; l = r['latency_ms']; d = r['delivery']; s = r.get('server') or {}
print(f"{side} round {rd}: quotes/s {t['quotes_per_second']:.0f} quotes/frame {t['quotes_per_frame']:.1f} "
      f"ratio {d['ratio']:.4f} p50 {l['p50']} p99 {l['p99']} ms server_cpu {s.get('cpu_seconds')} s "
      f"loadtest_cpu {r['loadtest_cpu'].get('core_share'):.2f}")
PY
  done
done
