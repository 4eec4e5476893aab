#!/usr/bin/env python3
"""Scenario *capacity*: N clients x 50 symbols of a 5,000-symbol Zipf
universe (ticks also Zipf-distributed), feed rate ramped until tick-to-client
p99 exceeds 50 ms or deliveries fall behind (ratio < 0.999). tickgate and
uWebSockets.js by default (the other peers are compared in broadcast.py).

Run:   python3 benches/capacity.py                       (about 3 minutes)
       python3 benches/capacity.py --clients 1000,10000
       python3 benches/capacity.py --from-json benches/results/X.json
                                      (tables and plots again from a saved run)
Writes benches/results/capacity.{json,md}, capacity-throughput.svg
(delivered quotes/s against clients, one line per feed rate) and
capacity-cdf.svg (latency percentiles of every step).
"""

import argparse
import json
import time
from pathlib import Path

import bench
from broadcast import passed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", default="1000")
    ap.add_argument("--servers", default="tickgate,uws")
    ap.add_argument("--rates", default="1000,3000,10000,30000,100000")
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--all-steps", action="store_true", help="run every rate, not only up to the first miss")
    ap.add_argument("--out", default="capacity", help="results file name (without .json/.md)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--from-json", help="write the table and plots of a saved run instead of running")
    a = ap.parse_args()
    if a.from_json:
        write_outputs(json.loads(Path(a.from_json).read_text()), Path(a.from_json).stem)
        return
    servers = a.servers.split(",")
    bench.prepare(servers, build=not a.no_build)
    runs = []
    started = time.time()
    for kind in servers:
        for n in [int(c) for c in a.clients.split(",")]:
            for rate in [float(r) for r in a.rates.split(",")]:
                with bench.Server(kind) as server:
                    r = bench.loadtest(server, "--clients", n, "--symbols-per-client", 50, "--universe", 5000,
                                       "--popularity", "zipf", "--feed-popularity", "zipf", "--feed-rate", rate,
                                       "--duration", a.duration, "--drain", "3s", "--connect-rate", 10000,
                                       "--connect-concurrency", 512, "--connect-timeout", "20s",
                                       "--label", f"capacity {kind} {n} {rate:g}")
                if r is None:
                    runs.append({"server_kind": kind, "clients": n, "feed_rate": rate, "failed": True})
                    break
                r["passed"] = passed(r)
                runs.append(r)
                bench.log(bench.summary(r), "PASS" if r["passed"] else "fail")
                if not r["passed"] and not a.all_steps:
                    break
    payload = {"scenario": "capacity", "machine": bench.machine(), "seconds": round(time.time() - started), "runs": runs}
    bench.write_json(a.out, payload)
    write_outputs(payload, a.out)


def write_outputs(payload, out):
    runs = payload["runs"]
    rows = ["### capacity: clients x 50 of 5,000 Zipf symbols, Zipf ticks", "",
            "| server | clients | feed ticks/s | delivered quotes/s | ratio | p50 ms | p99 ms | max ms | server CPU | server RSS MiB | load tester CPU | CPU pressure | pass |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|"]
    for r in runs:
        if r.get("failed"):
            rows.append(f"| {r['server_kind']} | {r['clients']} | {r['feed_rate']:g} | run failed | | | | | | | | | |")
            continue
        s = r["server"]
        rows.append(f"| {r['server_kind']} | {r['clients']} | {r['feed']['rate_per_second']:g} "
                    f"| {r['throughput']['quotes_per_second']:,.0f} | {r['delivery']['ratio']:.4f} "
                    f"| {r['latency_ms']['p50']:.2f} | {r['latency_ms']['p99']:.2f} | {r['latency_ms']['max']:.1f} "
                    f"| {s['core_share']:.2f} | {s['rss_peak_bytes'] / 1048576:.1f} | {r['loadtest_cpu']['core_share']:.2f} "
                    f"| {bench.pressure(r)} | {'yes' if r['passed'] else 'no'} |")
    bench.write_text(f"{out}.md", "\n".join(rows) + "\n")
    ok = [r for r in runs if not r.get("failed")]
    by_rate = {}
    for r in ok:
        name = f"{r['server_kind']} {r['feed']['rate_per_second']:g} ticks/s"
        by_rate.setdefault(name, []).append((r["clients"], r["throughput"]["quotes_per_second"]))
    bench.write_text(f"{out}-throughput.svg", bench.svg_lines(
        "capacity: delivered quotes/s against clients (50 of 5,000 Zipf symbols each)",
        "clients", "delivered quotes/s", by_rate))
    bench.write_text(f"{out}-cdf.svg", bench.svg_lines(
        "capacity: tick-to-client latency percentiles per step",
        "1 / (1 - quantile)  (2 = p50, 100 = p99)", "latency ms",
        {f"{r['server_kind']} {r['clients']} clients {r['feed']['rate_per_second']:g}/s": bench.cdf_points(r) for r in ok}))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
