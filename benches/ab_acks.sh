#!/bin/bash
# A/B of acknowledgements ({"op":"ack"}) on one gateway build under a load
# the load tester cannot read in full, alternating: A = the load tester
# does not acknowledge (whatever the kernel buffers hold reaches it, oldest
# first), B = it acknowledges every 4 messages (the gateway keeps at most
# connection.ack_window_frames = 8 unacknowledged and conflates the rest).
# The figure that matters is the age of what a client receives: the load
# tester's latency (receive time minus the feed's ts), p50 and p99.
# Usage: bash benches/ab_acks.sh RATE ROUNDS [CLIENTS] [BIN] [PAUSE]
# PAUSE (e.g. 20ms, default 0s): every client pauses that long after each
# read of at most 4 KiB, a reader slower than what is offered.
# (BIN defaults to target/release/tickgate). Server on core 0, load tester
# (one thread) on core 1; reports land in /tmp/aba-*.json, one summary line
# per run.
RATE=$1; ROUNDS=$2; CLIENTS=${3:-1000}; BIN=${4:-target/release/tickgate}; PAUSE=${5:-0s}
for round in $(seq 1 "$ROUNDS"); do
  for every in 0 4; do
    PORT=$((18600 + RANDOM % 500)); FEED=$((17600 + RANDOM % 500))
    taskset -c 0 "$BIN" --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:0 --feed tcp://127.0.0.1:$FEED > /dev/null 2>&1 &
    GW=$!
    sleep 0.5
    OUT=/tmp/aba-$every-$RATE-$CLIENTS-$round.json
    taskset -c 1 "$BIN" loadtest --url ws://127.0.0.1:$PORT/ws --feed-listen 127.0.0.1:$FEED --clients "$CLIENTS" \
      --symbols-per-client 100 --universe 100 --feed-rate "$RATE" --duration 5s --drain 3s --ack-every "$every" --read-pause "$PAUSE" --read-buffer 4096 \
      --server-pid $GW --json --quiet > "$OUT" 2>/dev/null
    kill $GW; wait $GW 2>/dev/null
    python3 - "$OUT" "$every" "$round" <<'PY'
import json, sys
out, every, rd = sys.argv[1:]
r = json.load(open(out))
t = r['throughput']; l = r['latency_ms']; d = r['delivery']; s = r.get('server') or {}
print(f"ack_every={every} round {rd}: quotes/s {t['quotes_per_second']:.0f} quotes/frame {t['quotes_per_frame']:.1f} "
      f"ratio {d['ratio']:.4f} all_latest {d.get('all_latest_delivered')} p50 {l['p50']} p99 {l['p99']} ms "
      f"server_cpu {s.get('cpu_seconds')} s loadtest_cpu {r['loadtest_cpu'].get('core_share'):.2f}")
PY
  done
done
