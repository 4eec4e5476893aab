#!/usr/bin/env python3
"""Scenario *connection cost*: resident memory per idle WebSocket connection
(RSS after N connections minus RSS before, divided by N) and the handshake
rate, for tickgate and its peers. Clients connect as fast as the server takes
them (at most 512 handshakes in flight) and subscribe to nothing.

Run:   python3 benches/connection_cost.py                (about 2 minutes)
       python3 benches/connection_cost.py --counts 1000 --servers tickgate
       python3 benches/connection_cost.py --servers tickgate-wss,uws-wss   (wss)
Writes benches/results/connection_cost.{json,md} (--out NAME: NAME.json and
NAME.md).
"""

import argparse
import time

import bench


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="1000,10000")
    ap.add_argument("--servers", default=",".join(bench.ALL_SERVERS))
    ap.add_argument("--out", default="connection_cost", help="results file name (without .json/.md)")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    servers = a.servers.split(",")
    bench.prepare(servers, build=not a.no_build)
    started = time.time()
    runs = []
    for kind in servers:
        for n in [int(c) for c in a.counts.split(",")]:
            with bench.Server(kind) as server:
                time.sleep(0.5)
                r = bench.loadtest(server, "--clients", n, "--symbols-per-client", 0, "--universe", 100,
                                   "--feed-rate", 1, "--duration", "1s", "--drain", "0s",
                                   "--connect-rate", 50000, "--connect-concurrency", 512,
                                   "--connect-timeout", "20s", "--label", f"connection cost {kind} {n}")
            if r is None:
                runs.append({"server_kind": kind, "clients": n, "failed": True})
                continue
            runs.append(r)
            s = r["server"]
            bench.log(f"{kind:>18} {n:>6} conns: {s['rss_per_connection_bytes'] / 1024:.1f} KiB/conn, "
                      f"{r['connections']['handshakes_per_second']:.0f} handshakes/s, "
                      f"established {r['connections']['established']} failed {r['connections']['failed']}")
    payload = {"scenario": "connection_cost", "machine": bench.machine(), "seconds": round(time.time() - started),
               "runs": runs}
    bench.write_json(a.out, payload)
    bench.write_text(f"{a.out}.md", table(payload))
    print(table(payload))


def table(p):
    rows = [
        "### connection cost: idle connections (ws, or wss for the *-wss servers)",
        "",
        "| server | connections | established | RSS before MiB | RSS connected MiB | KiB per connection | handshakes/s | load tester CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in p["runs"]:
        if r.get("failed"):
            rows.append(f"| {r['server_kind']} | {r['clients']} | run failed | | | | | |")
            continue
        s = r["server"]
        rows.append(
            f"| {r['server_kind']} | {r['clients']} | {r['connections']['established']} "
            f"| {s['rss_before_bytes'] / 1048576:.1f} | {s['rss_connected_bytes'] / 1048576:.1f} "
            f"| {s['rss_per_connection_bytes'] / 1024:.1f} | {r['connections']['handshakes_per_second']:,.0f} "
            f"| {r['loadtest_cpu']['total_cpu_seconds']:.2f} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
