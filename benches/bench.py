"""Shared helpers of the scenario scripts: build and start the servers under
test (tickgate and its peers) pinned to one core, run `tickgate loadtest`
pinned to the other, collect the JSON reports, write tables and plots.

Every process started here is stopped here, by PID. Everything talks to
127.0.0.1 only. Not a scenario itself: see broadcast.py, connection_cost.py,
slow_consumers.py, capacity.py, reconnect_storm.py.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
# BENCH_RESULTS=/some/dir sends the JSON, tables and plots elsewhere (a smoke
# run that must not overwrite the recorded results).
RESULTS = Path(os.environ.get("BENCH_RESULTS") or BENCHES / "results")
PEERS = BENCHES / "peers"


def release_dir(default):
    """Where cargo puts release binaries: $CARGO_TARGET_DIR/release when that
    is set (cargo builds there, whatever the manifest), else default/release."""
    target = os.environ.get("CARGO_TARGET_DIR")
    return (Path(target) if target else default) / "release"


TICKGATE = release_dir(ROOT / "target") / "tickgate"
BENCH_GATEWAY = release_dir(ROOT / "target") / "examples" / "bench-gateway"
PEER_BIN = release_dir(PEERS / "rust" / "target")
# Server kind "tickgate-baseline": another tickgate build (a release binary of
# an earlier commit) measured in the same run, for before/after comparisons.
TICKGATE_BASELINE = os.environ.get("TICKGATE_BASELINE")

SERVER_CORE = os.environ.get("SERVER_CORE", "0")
LOADTEST_CORE = os.environ.get("LOADTEST_CORE", "1")

ALL_SERVERS = ["tickgate", "uws", "nats", "node-ws", "socketio", "naive-tungstenite", "floor"]
# Servers measured on a TLS listener: the load tester trusts the ca.pem of
# `tickgate dev-cert`, which also wrote their certificate and key.
TLS_SERVERS = {"tickgate-wss", "uws-wss"}
# Node.js peers and the npm package each needs in benches/peers/node_modules.
NODE_PEERS = {"node-ws": "ws", "socketio": "socket.io",
              "uws": "@trufflesuite/uws-js-unofficial", "uws-wss": "@trufflesuite/uws-js-unofficial"}


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    log("+", " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def prepare(servers, build=True):
    """Builds tickgate (release) and installs/builds the peers asked for."""
    if build:
        sh(["cargo", "build", "--release", "--bin", "tickgate", "--example", "bench-gateway"], cwd=ROOT)
    if {"naive-tungstenite", "floor"} & set(servers) and build:
        sh(["cargo", "build", "--release", "--manifest-path", PEERS / "rust" / "Cargo.toml"])
    if any(kind in servers and not (PEERS / "node_modules" / package).exists()
           for kind, package in NODE_PEERS.items()):
        sh(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEERS)
    if "nats" in servers and shutil.which("nats-server") is None:
        sh(["apt-get", "install", "-y", "nats-server"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tickgate_has_feed_flag():
    out = subprocess.run([str(TICKGATE), "--help"], capture_output=True, text=True).stdout
    return "--feed" in out


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as lines:
            for line in lines:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": os.uname().release,
        "loadavg_at_start": os.getloadavg(),
        "server_core": SERVER_CORE,
        "loadtest_core": LOADTEST_CORE,
    }


class Server:
    """One server under test, started pinned to SERVER_CORE."""

    def __init__(self, kind):
        self.kind = kind
        self.client_port = free_port()
        self.feed_port = free_port()
        self.nats_port = None
        self.tls_port = free_port()
        self.proc = None
        self.tmp = None

    @property
    def url(self):
        if self.kind == "tickgate-wss":
            return f"wss://localhost:{self.tls_port}/ws"
        if self.kind == "uws-wss":
            return f"wss://localhost:{self.client_port}/ws"
        if self.kind == "socketio":
            return f"ws://127.0.0.1:{self.client_port}/socket.io/?EIO=4&transport=websocket"
        return f"ws://127.0.0.1:{self.client_port}/ws"

    def loadtest_args(self):
        """Load tester flags for this server: protocol and feed."""
        if self.kind in TLS_SERVERS:
            return ["--ca-file", Path(self.tmp) / "ca.pem", "--feed-listen", f"127.0.0.1:{self.feed_port}"]
        if self.kind == "nats":
            return ["--mode", "nats", "--feed-nats", f"127.0.0.1:{self.nats_port}"]
        if self.kind == "socketio":
            return ["--mode", "socketio", "--feed-listen", f"127.0.0.1:{self.feed_port}"]
        return ["--mode", "tickgate", "--feed-listen", f"127.0.0.1:{self.feed_port}"]

    def command(self):
        listen = f"127.0.0.1:{self.client_port}"
        feed = f"127.0.0.1:{self.feed_port}"
        if self.kind == "tickgate":
            if tickgate_has_feed_flag():
                return [TICKGATE, "--listen", listen, "--admin-listen", "127.0.0.1:0", "--feed", f"tcp://{feed}"]
            return [BENCH_GATEWAY, listen, feed, "60000"]
        if self.kind == "tickgate-baseline":
            if not TICKGATE_BASELINE:
                raise SystemExit("tickgate-baseline needs TICKGATE_BASELINE=/path/to/an/earlier/tickgate")
            return [TICKGATE_BASELINE, "--listen", listen, "--admin-listen", "127.0.0.1:0",
                    "--feed", f"tcp://{feed}"]
        if self.kind == "tickgate-wss":
            # The same gateway, measured on its wss listener (dev certificate).
            self._dev_cert()
            return [TICKGATE, "--listen", listen, "--admin-listen", "127.0.0.1:0", "--feed", f"tcp://{feed}",
                    "--tls-listen", f"127.0.0.1:{self.tls_port}", "--tls-cert", Path(self.tmp) / "server.pem",
                    "--tls-key", Path(self.tmp) / "server-key.pem"]
        if self.kind == "uws":
            return ["node", PEERS / "uws-server.js", listen, feed]
        if self.kind == "uws-wss":
            # uWS's SSLApp with the certificate files tickgate-wss uses.
            self._dev_cert()
            return ["node", PEERS / "uws-server.js", listen, feed, "--tls-cert", Path(self.tmp) / "server.pem",
                    "--tls-key", Path(self.tmp) / "server-key.pem"]
        if self.kind == "naive-tungstenite":
            return [PEER_BIN / "naive", listen, feed]
        if self.kind == "floor":
            return [PEER_BIN / "floor", listen, feed]
        if self.kind == "node-ws":
            return ["node", PEERS / "ws-server.js", listen, feed]
        if self.kind == "socketio":
            return ["node", PEERS / "socketio-server.js", listen, feed]
        if self.kind == "nats":
            self.nats_port = free_port()
            self.tmp = tempfile.mkdtemp(prefix="tickgate-bench-nats-")
            conf = Path(self.tmp) / "nats.conf"
            conf.write_text(
                f'listen: 127.0.0.1:{self.nats_port}\n'
                f'websocket {{\n  listen: "127.0.0.1:{self.client_port}"\n  no_tls: true\n  compression: false\n}}\n'
            )
            return ["nats-server", "-c", conf]
        raise ValueError(self.kind)

    def _dev_cert(self):
        """A CA and a server certificate for localhost in a fresh temporary
        directory (`tickgate dev-cert`): server.pem, server-key.pem, ca.pem."""
        self.tmp = tempfile.mkdtemp(prefix="tickgate-bench-tls-")
        subprocess.run([str(TICKGATE), "dev-cert", "--out", self.tmp], check=True, capture_output=True)

    def __enter__(self):
        cmd = ["taskset", "-c", SERVER_CORE] + [str(c) for c in self.command()]
        log("+", " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self.tls_port if self.kind == "tickgate-wss" else self.client_port
        deadline = time.time() + 15
        while not self._listening(port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}")
            if time.time() > deadline:
                raise RuntimeError(f"{self.kind} did not listen within 15 s")
        return self

    @staticmethod
    def _listening(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
            return False

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def cpu_pressure():
    """(some avg10 %, some total µs, monotonic time) from /proc/pressure/cpu."""
    try:
        with open("/proc/pressure/cpu") as lines:
            for line in lines:
                if line.startswith("some"):
                    f = dict(kv.split("=") for kv in line.split()[1:])
                    return float(f["avg10"]), int(f["total"]), time.monotonic()
    except (OSError, KeyError, ValueError):
        pass
    return None


def pressure_report(before, after):
    """CPU pressure around one run: `some` avg10 before and after, and the
    share of the run's wall time some task waited for a CPU."""
    if not before or not after:
        return None
    elapsed = after[2] - before[2]
    return {
        "some_avg10_before": before[0],
        "some_avg10_after": after[0],
        "some_share_during": round((after[1] - before[1]) / 1e6 / elapsed, 4) if elapsed > 0 else None,
    }


def loadtest(server, *args, timeout=300):
    """Runs one bounded load test against `server`; returns its JSON report
    (None when it failed), with the exact command line and the machine's CPU
    pressure during the run attached."""
    cmd = [
        "taskset", "-c", LOADTEST_CORE, str(TICKGATE), "loadtest", "--json", "--quiet",
        "--url", server.url, "--server-pid", str(server.proc.pid),
    ] + [str(a) for a in server.loadtest_args()] + [str(a) for a in args]
    log("+", " ".join(cmd))
    before = cpu_pressure()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log("  load test timed out")
        return None
    if out.returncode != 0:
        log("  load test failed:", out.stderr.strip()[-500:])
        return None
    report = json.loads(out.stdout)
    report["cpu_pressure"] = pressure_report(before, cpu_pressure())
    report["server_kind"] = server.kind
    report["command"] = " ".join(cmd[3:]).replace(str(ROOT) + "/", "")
    return report


def summary(r):
    d, l = r["delivery"], r["latency_ms"]
    s = r.get("server") or {}
    return (
        f'{r["server_kind"]:>18} rate {r["feed"]["rate_per_second"] if r.get("feed") else "-":>7} '
        f'q/s {r["throughput"]["quotes_per_second"]:>10.0f} ratio {d["ratio"] or 0:.4f} '
        f'p99 {l["p99"]:.1f} ms max {l["max"]:.1f} | server cpu {s.get("core_share", 0):.2f} '
        f'| loadtest cpu {r["loadtest_cpu"]["core_share"]:.2f} | cpu pressure {pressure(r)}'
    )


def pressure(r):
    """The run's CPU pressure as a table cell: share of its wall time some
    task waited for a CPU (from /proc/pressure/cpu `some` total)."""
    p = r.get("cpu_pressure") or {}
    share = p.get("some_share_during")
    return "-" if share is None else f"{share * 100:.0f} %"


def write_json(name, payload):
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1) + "\n")
    log("wrote", path)


def write_text(name, text):
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text)
    log("wrote", path)


def svg_lines(title, xlabel, ylabel, series, logx=True, logy=True, width=640, height=400):
    """A small dependency-free SVG line plot. `series`: {name: [(x, y), ...]}."""
    import math

    pts = [p for s in series.values() for p in s if p[0] > 0 and p[1] > 0]
    if not pts:
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"
    fx = (lambda v: math.log10(v)) if logx else (lambda v: v)
    fy = (lambda v: math.log10(v)) if logy else (lambda v: v)
    x0, x1 = min(fx(p[0]) for p in pts), max(fx(p[0]) for p in pts)
    y0, y1 = min(fy(p[1]) for p in pts), max(fy(p[1]) for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    L, R, T, B = 70, 150, 40, 50
    px = lambda v: L + (fx(v) - x0) / (x1 - x0) * (width - L - R)
    py = lambda v: height - B - (fy(v) - y0) / (y1 - y0) * (height - T - B)
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#e377c2"]
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' font-size='11'>",
        f"<rect width='100%' height='100%' fill='white'/>",
        f"<text x='{width / 2}' y='20' text-anchor='middle' font-size='14'>{title}</text>",
        f"<line x1='{L}' y1='{height - B}' x2='{width - R}' y2='{height - B}' stroke='black'/>",
        f"<line x1='{L}' y1='{T}' x2='{L}' y2='{height - B}' stroke='black'/>",
        f"<text x='{(L + width - R) / 2}' y='{height - 12}' text-anchor='middle'>{xlabel}</text>",
        f"<text x='15' y='{height / 2}' transform='rotate(-90 15 {height / 2})' text-anchor='middle'>{ylabel}</text>",
    ]
    for frac in [0, 0.25, 0.5, 0.75, 1]:
        vx = x0 + frac * (x1 - x0)
        vy = y0 + frac * (y1 - y0)
        lx = 10 ** vx if logx else vx
        ly = 10 ** vy if logy else vy
        out.append(f"<text x='{L + frac * (width - L - R)}' y='{height - B + 15}' text-anchor='middle'>{lx:.3g}</text>")
        out.append(f"<text x='{L - 5}' y='{height - B - frac * (height - T - B) + 4}' text-anchor='end'>{ly:.3g}</text>")
    for i, (name, s) in enumerate(series.items()):
        s = sorted(p for p in s if p[0] > 0 and p[1] > 0)
        if not s:
            continue
        c = colors[i % len(colors)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s)
        out.append(f"<polyline fill='none' stroke='{c}' stroke-width='2' points='{path}'/>")
        for x, y in s:
            out.append(f"<circle cx='{px(x):.1f}' cy='{py(y):.1f}' r='3' fill='{c}'/>")
        out.append(f"<text x='{width - R + 10}' y='{T + 15 * i + 10}' fill='{c}'>{name}</text>")
    out.append("</svg>")
    return "\n".join(out)


def cdf_points(r):
    """(1 / (1 - q), ms) pairs of a report's latency distribution, for a
    percentile plot (2 = p50, 100 = p99, 1,000 = p99.9); the max is left out."""
    return [(1 / (1 - q), max(ms, 0.01)) for q, ms in r["latency_ms"].get("cdf", []) if q < 1]


def ratio(a, b):
    return a / b if b else float("nan")
