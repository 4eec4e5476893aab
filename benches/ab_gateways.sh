#!/bin/bash
# A/B of two gateway builds under the same broadcast load, alternating.
# Usage: bash benches/ab_gateways.sh RATE ROUNDS, with the builds to compare
# copied to /tmp/tg-old and /tmp/tg-new (release). Server on core 0, load
# tester (the new build) on core 1; reports land in /tmp/ab-*.json.
RATE=$1; ROUNDS=$2
for round in $(seq 1 $ROUNDS); do
  for which in old new; do
    PORT=$((18100 + RANDOM % 500)); FEED=$((17100 + RANDOM % 500))
    taskset -c 0 /tmp/tg-$which --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:0 --feed tcp://127.0.0.1:$FEED > /dev/null 2>&1 &
    GW=$!
    sleep 0.5
    P0=$(awk '{print $1}' /proc/pressure/cpu | head -1)
    taskset -c 1 /tmp/tg-new loadtest --url ws://127.0.0.1:$PORT/ws --feed-listen 127.0.0.1:$FEED --clients 1000 --symbols-per-client 100 --universe 100 --feed-rate $RATE --duration 5s --drain 3s --server-pid $GW --json --quiet > /tmp/ab-$which-$RATE-$round.json 2>/dev/null
    kill $GW; wait $GW 2>/dev/null
    python3 - "$which" "$round" "$RATE" <<'PY'
import json,sys
w,rd,rate=sys.argv[1:]
r=json.load(open(f'/tmp/ab-{w}-{rate}-{rd}.json'))
t=r['throughput']; l=r['latency_ms']; d=r['delivery']; s=r.get('server') or {}
print(f"{w} round {rd} rate {rate}: delivered/s {t.get('quotes_per_second', t)} ratio {d.get('ratio')} p50 {l['p50']} p99 {l['p99']} max {l['max']} server_cpu {s.get('cpu_seconds')} lt_cpu {r['loadtest_cpu'].get('total_cpu_seconds')}")
PY
  done
done
