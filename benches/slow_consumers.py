#!/usr/bin/env python3
"""Scenario *slow consumers*: broadcast load (every client on the same 100
symbols) with and without 10 % of the clients stalling (they stop reading
for --stall seconds, with a 4 KiB receive buffer so the kernel does not
absorb the stall). Compares the server's peak RSS, the fast clients' p99,
and the stalled clients' time to converge to the latest seq of every symbol
after they read again.

Run:   python3 benches/slow_consumers.py                (about 2 minutes)
       python3 benches/slow_consumers.py --from-json benches/results/X.json
                                      (tables and plot again from a saved run)
Writes benches/results/slow_consumers.{json,md} and slow_consumers-cdf.svg
(latency percentiles of the fast clients with and without the stall, and of
the stalled clients).
"""

import argparse
import json
import time
from pathlib import Path

import bench


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200, help="feed ticks/s over 100 symbols")
    ap.add_argument("--stall", type=float, default=10.0, help="seconds the stalled clients stop reading")
    ap.add_argument("--servers", default="tickgate,uws,nats,node-ws")
    ap.add_argument("--out", default="slow_consumers", help="results file name (without .json/.md)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--from-json", help="write the table and plot of a saved run instead of running")
    a = ap.parse_args()
    if a.from_json:
        write_outputs(json.loads(Path(a.from_json).read_text()), Path(a.from_json).stem)
        return
    servers = a.servers.split(",")
    bench.prepare(servers, build=not a.no_build)
    duration = f"{a.stall + 5:g}s"
    runs = []
    started = time.time()
    for kind in servers:
        for share in [0.0, 0.1]:
            with bench.Server(kind) as server:
                r = bench.loadtest(server, "--clients", a.clients, "--symbols-per-client", 100, "--universe", 100,
                                   "--feed-rate", a.rate, "--duration", duration, "--drain", "5s",
                                   "--connect-rate", 5000, "--stall-share", share, "--stall-after", "2s",
                                   "--stall-for", f"{a.stall:g}s", "--label", f"slow consumers {kind} {share}")
            if r is None:
                runs.append({"server_kind": kind, "stall_share": share, "failed": True})
                continue
            r["stall_share"] = share
            runs.append(r)
            bench.log(bench.summary(r))
    payload = {"scenario": "slow_consumers", "machine": bench.machine(), "clients": a.clients, "rate": a.rate,
               "stall_seconds": a.stall, "seconds": round(time.time() - started), "runs": runs}
    bench.write_json(a.out, payload)
    write_outputs(payload, a.out)


def write_outputs(payload, out):
    bench.write_text(f"{out}.md", table(payload))
    bench.write_text(f"{out}-cdf.svg", plot(payload))
    print(table(payload))


def plot(p):
    """Latency percentiles: fast clients without and with the stall, and
    the stalled clients themselves."""
    series = {}
    for r in p["runs"]:
        if r.get("failed"):
            continue
        if r["stall_share"] == 0.0:
            series[f"{r['server_kind']} no stall"] = bench.cdf_points(r)
            continue
        series[f"{r['server_kind']} stall: fast"] = bench.cdf_points(r)
        stalled = (r.get("slow_consumers") or {}).get("latency_ms")
        if stalled:
            series[f"{r['server_kind']} stalled"] = bench.cdf_points({"latency_ms": stalled})
    return bench.svg_lines(
        f"slow consumers: {p['clients']} clients, 10 % stalled {p['stall_seconds']:g} s",
        "1 / (1 - quantile)  (2 = p50, 100 = p99)", "tick-to-client latency ms", series)


def table(p):
    rows = [
        f"### slow consumers: {p['clients']} clients x 100 symbols at {p['rate']:g} ticks/s, 10 % stalled for {p['stall_seconds']:g} s",
        "",
        "| server | stalled | fast p99 ms | fast max ms | delivery ratio | latest delivered | server RSS peak MiB | RSS before feed MiB | converged | convergence p50 / max ms | closes | load tester CPU | CPU pressure |",
        "|---|---:|---:|---:|---:|:-:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in p["runs"]:
        if r.get("failed"):
            rows.append(f"| {r['server_kind']} | {r['stall_share']} | run failed | | | | | | | | | | |")
            continue
        s = r["server"]
        slow = r.get("slow_consumers") or {}
        conv = slow.get("convergence_ms") or {}
        rows.append(
            f"| {r['server_kind']} | {slow.get('stalled_clients', 0)} | {r['latency_ms']['p99']:.2f} | {r['latency_ms']['max']:.1f} "
            f"| {r['delivery']['ratio']:.4f} | {'yes' if r['delivery']['all_latest_delivered'] else 'no'} "
            f"| {s['rss_peak_bytes'] / 1048576:.1f} | {s['rss_connected_bytes'] / 1048576:.1f} "
            f"| {slow.get('converged', '-')} | {conv.get('p50', '-')} / {conv.get('max', '-')} "
            f"| {r['closes_by_code'] or ''} {r['errors'] or ''} | {r['loadtest_cpu']['core_share']:.2f} | {bench.pressure(r)} |"
        )
    rows += ["", "Stall vs no stall, same server (targets: fast p99 within 1.2x, RSS within 5 %, "
             "stalled clients converge within 100 ms of reading again):", ""]
    for kind in dict.fromkeys(r["server_kind"] for r in p["runs"]):
        pair = {r["stall_share"]: r for r in p["runs"] if r["server_kind"] == kind and not r.get("failed")}
        if 0.0 not in pair or 0.1 not in pair:
            continue
        calm, stall = pair[0.0], pair[0.1]
        conv = (stall.get("slow_consumers") or {}).get("convergence_ms") or {}
        rss0, rss1 = calm["server"]["rss_peak_bytes"], stall["server"]["rss_peak_bytes"]
        rows.append(
            f"- {kind}: fast p99 {calm['latency_ms']['p99']:.1f} -> {stall['latency_ms']['p99']:.1f} ms "
            f"({bench.ratio(stall['latency_ms']['p99'], calm['latency_ms']['p99']):.2f}x); "
            f"peak RSS {rss0 / 1048576:.1f} -> {rss1 / 1048576:.1f} MiB ({(rss1 / rss0 - 1) * 100:+.1f} %); "
            f"converged {(stall.get('slow_consumers') or {}).get('converged', '-')} of "
            f"{(stall.get('slow_consumers') or {}).get('stalled_clients', '-')}, p50 {conv.get('p50', '-')} / max {conv.get('max', '-')} ms"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
