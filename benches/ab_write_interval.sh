#!/bin/bash
# A/B of connection.min_write_interval_ms on one gateway build under the same
# broadcast load, alternating: A = the fixed 2 ms floor (the behaviour before
# adaptive coalescing), B = 0 (adaptive, the default).
# Usage: bash benches/ab_write_interval.sh RATE ROUNDS [CLIENTS] [BIN]
# (BIN defaults to target/release/tickgate). Server on core 0, load tester
# on core 1; reports land in /tmp/abw-*.json, one summary line per run.
RATE=$1; ROUNDS=$2; CLIENTS=${3:-100}; BIN=${4:-target/release/tickgate}
for round in $(seq 1 "$ROUNDS"); do
  for ms in 2 0; do
    CFG=$(mktemp /tmp/abw-cfg.XXXXXX)
    printf '[connection]\nmin_write_interval_ms = %s\n' "$ms" > "$CFG"
    PORT=$((18100 + RANDOM % 500)); FEED=$((17100 + RANDOM % 500))
    taskset -c 0 "$BIN" --config "$CFG" --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:0 --feed tcp://127.0.0.1:$FEED > /dev/null 2>&1 &
    GW=$!
    sleep 0.5
    OUT=/tmp/abw-$ms-$RATE-$CLIENTS-$round.json
    taskset -c 1 "$BIN" loadtest --url ws://127.0.0.1:$PORT/ws --feed-listen 127.0.0.1:$FEED --clients "$CLIENTS" --symbols-per-client 100 --universe 100 --feed-rate "$RATE" --duration 5s --drain 3s --server-pid $GW --json --quiet > "$OUT" 2>/dev/null
    kill $GW; wait $GW 2>/dev/null
    rm -f "$CFG"
    python3 - "$OUT" "$ms" "$round" <<'PY'
import json, sys
out, ms, rd = sys.argv[1:]
r = json.load(open(out))
t = r['throughput']; l = r['latency_ms']; d = r['delivery']; s = r.get('server') or {}
print(f"min_write_interval_ms={ms} round {rd}: quotes/s {t['quotes_per_second']:.0f} quotes/frame {t['quotes_per_frame']:.1f} "
      f"ratio {d['ratio']:.4f} p50 {l['p50']} p99 {l['p99']} ms server_cpu {s.get('cpu_seconds')} s "
      f"loadtest_cpu {r['loadtest_cpu'].get('core_share'):.2f}")
PY
  done
done
