#!/usr/bin/env python3
"""Scenario *wss vs ws*: the same gateway measured on its plain listener
(`tickgate`) and on its TLS listener (`tickgate-wss`, `tickgate dev-cert`),
and uWebSockets.js the same way (`uws`: App, `uws-wss`: SSLApp with the same
certificate files), taking turns at every step so background load hits them
alike:

1. the broadcast ramp: 1,000 clients x the same 100 symbols, feed rates
   ramped (as broadcast.py);
2. 5,000 clients x the same 100 symbols at 100 ticks/s, --rounds times.

Target: wss p99 within 1.5x of ws (and the same delivered throughput), for
tickgate; uWS's ratio is the reference for what TLS costs a fast server.

Run:   python3 benches/wss_vs_ws.py                      (about 8 minutes)
       python3 benches/wss_vs_ws.py --servers tickgate   (tickgate only, as before)
Writes benches/results/wss_vs_ws.{json,md} and wss_vs_ws-p99.svg.
"""

import argparse
import statistics
import time

import bench

TARGET = 1.5
# Servers that have a TLS twin named NAME-wss.
BASES = ["tickgate", "uws"]


def kinds(bases):
    """Each server on ws, then on wss: tickgate, tickgate-wss, uws, uws-wss."""
    return [k for base in bases for k in (base, f"{base}-wss")]


def run(kind, clients, rate, duration, label):
    with bench.Server(kind) as server:
        return bench.loadtest(server, "--clients", clients, "--symbols-per-client", 100, "--universe", 100,
                              "--feed-rate", rate, "--duration", duration, "--drain", "3s",
                              "--connect-rate", 5000, "--connect-concurrency", 512, "--connect-timeout", "20s",
                              "--label", label)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="20,50,100,200,500,1000", help="broadcast feed ticks/s (1,000 clients)")
    ap.add_argument("--big-clients", type=int, default=5000)
    ap.add_argument("--big-rate", type=float, default=100)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the 5,000-client step")
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--servers", default=",".join(BASES),
                    help=f"servers measured on ws and on wss, of {', '.join(BASES)}")
    ap.add_argument("--out", default="wss_vs_ws")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    bases = a.servers.split(",")
    if set(bases) - set(BASES):
        raise SystemExit(f"--servers: only {', '.join(BASES)} have a wss twin here")
    every = kinds(bases)
    bench.prepare(every, build=not a.no_build)
    started = time.time()
    runs = []
    for rate in [float(r) for r in a.rates.split(",")]:
        for kind in every:
            r = run(kind, 1000, rate, a.duration, f"wss_vs_ws broadcast {kind} {rate:g}/s")
            if r is None:
                runs.append({"server_kind": kind, "step": "broadcast", "feed_rate": rate, "failed": True})
                continue
            r["step"] = "broadcast"
            runs.append(r)
            bench.log(bench.summary(r))
    for round_ in range(a.rounds):
        for kind in every:
            r = run(kind, a.big_clients, a.big_rate, a.duration,
                    f"wss_vs_ws {a.big_clients} clients {kind} round {round_ + 1}")
            if r is None:
                runs.append({"server_kind": kind, "step": "big", "round": round_ + 1, "failed": True})
                continue
            r["step"] = "big"
            r["round"] = round_ + 1
            runs.append(r)
            bench.log(bench.summary(r))
    payload = {"scenario": "wss_vs_ws", "machine": bench.machine(), "target_p99_ratio": TARGET, "servers": bases,
               "big_clients": a.big_clients, "big_rate": a.big_rate,
               "seconds": round(time.time() - started), "runs": runs}
    bench.write_json(a.out, payload)
    bench.write_text(f"{a.out}.md", table(payload))
    series = {}
    for r in runs:
        if not r.get("failed") and r["step"] == "broadcast":
            series.setdefault(r["server_kind"], []).append(
                (r["feed"]["rate_per_second"] * 1000, max(r["latency_ms"]["p99"], 0.01)))
    bench.write_text(f"{a.out}-p99.svg", bench.svg_lines(
        "ws vs wss, 1,000 clients x 100 symbols: tick-to-client p99",
        "offered quotes/s (feed rate x clients)", "p99 latency (ms)", series))
    print(table(payload))


def row(r):
    s, l, d = r.get("server") or {}, r["latency_ms"], r["delivery"]
    return (f"| {r['server_kind']} | {r['throughput']['quotes_per_second']:,.0f} | {d['ratio']:.4f} "
            f"| {l['p50']:.2f} | {l['p99']:.2f} | {l['max']:.1f} | {r['throughput']['quotes_per_frame']:.1f} "
            f"| {s.get('core_share', 0):.2f} | {s.get('rss_peak_bytes', 0) / 1048576:.1f} "
            f"| {r['loadtest_cpu']['core_share']:.2f} | {bench.pressure(r)} |")


HEAD = ("| server | delivered quotes/s | ratio | p50 ms | p99 ms | max ms | quotes/frame | server CPU "
        "| server RSS MiB | load tester CPU | CPU pressure |")
RULE = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"


def table(p):
    bases = p.get("servers", ["tickgate"])
    ok = [r for r in p["runs"] if not r.get("failed")]
    failed = [r for r in p["runs"] if r.get("failed")]
    rows = ["### wss vs ws: each server on its TLS and its plain listener", "",
            "Broadcast ramp, 1,000 clients x the same 100 symbols:", ""]
    rows += ["| server | feed ticks/s | offered quotes/s | wss p99 / ws p99 | wss delivered / ws delivered |",
             "|---|---:|---:|---:|---:|"]
    by_rate = {}
    for r in ok:
        if r["step"] == "broadcast":
            by_rate.setdefault(r["feed"]["rate_per_second"], {})[r["server_kind"]] = r
    for base in bases:
        for rate, step in sorted(by_rate.items()):
            if base in step and f"{base}-wss" in step:
                ws, wss = step[base], step[f"{base}-wss"]
                rows.append(f"| {base} | {rate:g} | {rate * 1000:,.0f} "
                            f"| {bench.ratio(wss['latency_ms']['p99'], ws['latency_ms']['p99']):.2f} "
                            f"| {bench.ratio(wss['throughput']['quotes_per_second'], ws['throughput']['quotes_per_second']):.3f} |")
    rows += ["", "| feed ticks/s " + HEAD, "|---:" + RULE]
    for rate, step in sorted(by_rate.items()):
        for kind in kinds(bases):
            if kind in step:
                rows.append(f"| {rate:g} " + row(step[kind]))
    big = [r for r in ok if r["step"] == "big"]
    rows += ["", f"{p['big_clients']:,} clients x the same 100 symbols at {p['big_rate']:g} ticks/s:", "",
             "| round " + HEAD, "|---:" + RULE]
    for r in sorted(big, key=lambda r: (r["round"], kinds(bases).index(r["server_kind"]))):
        rows.append(f"| {r['round']} " + row(r))
    for base in bases:
        ratios = []
        for round_ in sorted({r["round"] for r in big}):
            pair = {r["server_kind"]: r for r in big if r["round"] == round_}
            if base in pair and f"{base}-wss" in pair:
                ratios.append(bench.ratio(pair[f"{base}-wss"]["latency_ms"]["p99"], pair[base]["latency_ms"]["p99"]))
        if ratios:
            m = statistics.median(ratios)
            verdict = (f"target <= {p['target_p99_ratio']:g}: {'met' if m <= p['target_p99_ratio'] else 'missed'}"
                       if base == "tickgate" else "reference")
            rows += ["", f"{base}: wss p99 / ws p99 per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
                     f"median {m:.2f} ({verdict})"]
    if failed:
        rows += ["", "Failed runs: " + ", ".join(f"{r['server_kind']} {r.get('feed_rate', r.get('round'))}" for r in failed)]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
