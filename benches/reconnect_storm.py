#!/usr/bin/env python3
"""Scenario *reconnect storm*: N clients (10 Zipf-chosen symbols of 500
each) are connected and receiving; at t = 3 s every client drops its TCP
connection without a closing handshake and reconnects at once. Reports the
time until each client is resubscribed and receiving updates again (p50,
p99, max = "all receiving").

Run:   python3 benches/reconnect_storm.py                (about a minute)
       python3 benches/reconnect_storm.py --clients 1000 --servers uws
Writes benches/results/reconnect_storm.{json,md} (--out NAME: NAME.json and
NAME.md).
"""

import argparse
import time

import bench


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--servers", default="tickgate,uws")
    ap.add_argument("--out", default="reconnect_storm", help="results file name (without .json/.md)")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    servers = a.servers.split(",")
    bench.prepare(servers, build=not a.no_build)
    runs = []
    started = time.time()
    for kind in servers:
        with bench.Server(kind) as server:
            r = bench.loadtest(server, "--clients", a.clients, "--symbols-per-client", 10, "--universe", 500,
                               "--popularity", "zipf", "--feed-rate", 200, "--duration", "10s", "--drain", "2s",
                               "--connect-rate", 20000, "--connect-concurrency", 512, "--connect-timeout", "20s",
                               "--reconnect-at", "3s", "--label", f"reconnect storm {kind}")
        if r is None:
            runs.append({"server_kind": kind, "failed": True})
            continue
        runs.append(r)
        bench.log(bench.summary(r), r["reconnect"])
    payload = {"scenario": "reconnect_storm", "machine": bench.machine(), "clients": a.clients,
               "seconds": round(time.time() - started), "runs": runs}
    bench.write_json(a.out, payload)
    rows = [f"### reconnect storm: {a.clients} clients drop and reconnect at once", "",
            "| server | receiving again | p50 ms | p99 ms | max (all receiving) ms | errors | load tester CPU s |",
            "|---|---:|---:|---:|---:|---|---:|"]
    for r in runs:
        if r.get("failed"):
            rows.append(f"| {r['server_kind']} | run failed | | | | | |")
            continue
        t = r["reconnect"]["time_to_receiving_ms"] or {}
        rows.append(f"| {r['server_kind']} | {r['reconnect']['receiving_again']} | {t.get('p50', '-')} | {t.get('p99', '-')} "
                    f"| {t.get('max', '-')} | {r['errors'] or ''} | {r['loadtest_cpu']['total_cpu_seconds']:.2f} |")
    bench.write_text(f"{a.out}.md", "\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
