#!/usr/bin/env python3
"""Scenario *5,000 clients*: 5,000 clients all on the same 100 symbols, the
feed at 100 ticks/s (500,000 quotes/s offered), for tickgate on ws and wss
and every peer, one at a time on the same core, servers taking turns in each
round. Target: tick-to-client p99 <= 30 ms.

Run:   python3 benches/latency_5000.py                   (about 4 minutes)
       python3 benches/latency_5000.py --rounds 2 --servers tickgate,tickgate-wss
Writes benches/results/latency_5000.{json,md} and latency_5000-cdf.svg.
"""

import argparse
import statistics
import time

import bench

TARGET_P99_MS = 30.0
SERVERS = ["tickgate", "tickgate-wss", "uws", "uws-wss", "nats", "node-ws", "socketio", "naive-tungstenite", "floor"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=100, help="feed ticks/s over the 100 symbols")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--rounds", type=int, default=1, help="every server once per round")
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--out", default="latency_5000")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    servers = a.servers.split(",")
    bench.prepare(servers, build=not a.no_build)
    started = time.time()
    runs = []
    for round_ in range(a.rounds):
        for kind in servers:
            with bench.Server(kind) as server:
                r = bench.loadtest(server, "--clients", a.clients, "--symbols-per-client", 100,
                                   "--universe", 100, "--feed-rate", a.rate, "--duration", a.duration,
                                   "--drain", "3s", "--connect-rate", 5000, "--connect-concurrency", 512,
                                   "--connect-timeout", "20s",
                                   "--label", f"5000 clients {kind} round {round_ + 1}")
            if r is None:
                runs.append({"server_kind": kind, "round": round_ + 1, "failed": True})
                continue
            r["round"] = round_ + 1
            r["passed"] = (r["delivery"]["ratio"] or 0) >= 0.999 and r["latency_ms"]["p99"] <= TARGET_P99_MS
            runs.append(r)
            bench.log(bench.summary(r), "PASS" if r["passed"] else "fail")
    payload = {"scenario": "latency_5000", "machine": bench.machine(), "clients": a.clients, "rate": a.rate,
               "target_p99_ms": TARGET_P99_MS, "seconds": round(time.time() - started), "runs": runs}
    bench.write_json(a.out, payload)
    bench.write_text(f"{a.out}.md", table(payload))
    series = {}
    for r in runs:
        if not r.get("failed") and r["round"] == 1:
            series[r["server_kind"]] = bench.cdf_points(r)
    bench.write_text(f"{a.out}-cdf.svg", bench.svg_lines(
        f"{a.clients} clients x 100 symbols at {a.rate:g} ticks/s: tick-to-client latency",
        "percentile as 1/(1-q): 2 = p50, 10 = p90, 100 = p99, 1000 = p99.9", "latency (ms)", series))
    print(table(payload))


def table(p):
    rows = [
        f"### {p['clients']:,} clients x the same 100 symbols at {p['rate']:g} ticks/s "
        f"({p['clients'] * p['rate']:,.0f} quotes/s offered); target p99 <= {p['target_p99_ms']:g} ms",
        "",
        "| server | round | delivered quotes/s | ratio | latest delivered | p50 ms | p99 ms | p99.9 ms | max ms "
        "| quotes/frame | server CPU | server RSS MiB | load tester CPU | CPU pressure | errors / closes | p99 target |",
        "|---|---:|---:|---:|:-:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|:-:|",
    ]
    for r in p["runs"]:
        if r.get("failed"):
            rows.append(f"| {r['server_kind']} | {r['round']} | run failed | | | | | | | | | | | | | |")
            continue
        s, l, d = r.get("server") or {}, r["latency_ms"], r["delivery"]
        rows.append(
            f"| {r['server_kind']} | {r['round']} | {r['throughput']['quotes_per_second']:,.0f} | {d['ratio']:.4f} "
            f"| {'yes' if d['all_latest_delivered'] else 'no'} | {l['p50']:.2f} | {l['p99']:.2f} | {l['p999']:.1f} "
            f"| {l['max']:.1f} | {r['throughput']['quotes_per_frame']:.1f} | {s.get('core_share', 0):.2f} "
            f"| {s.get('rss_peak_bytes', 0) / 1048576:.1f} | {r['loadtest_cpu']['core_share']:.2f} | {bench.pressure(r)} "
            f"| {r['errors'] or ''} {r['closes_by_code'] or ''} | {'met' if r['passed'] else 'missed'} |"
        )
    p99 = {}
    for r in p["runs"]:
        if not r.get("failed"):
            p99.setdefault(r["server_kind"], []).append(r["latency_ms"]["p99"])
    base = statistics.median(p99["tickgate"]) if "tickgate" in p99 else None
    rows += ["", "Median p99 over the rounds, and tickgate's p99 as a share of each server's:", ""]
    for kind, values in p99.items():
        m = statistics.median(values)
        share = f" (tickgate = {base / m:.2f}x this)" if base and kind != "tickgate" else ""
        rows.append(f"- {kind}: {m:.1f} ms over {len(values)} run(s){share}")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
