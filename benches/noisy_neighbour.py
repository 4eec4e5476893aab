#!/usr/bin/env python3
"""Scenario *noisy neighbour*: well-behaved clients receive quotes (`tickgate
loadtest`, 1,000 clients x 100 of 1,000 symbols, Zipf-popular ticks) while
hostile clients do the worst things the default limits still allow, one
attack at a time and then all together. Reports, for each run against a
quiet run of the same size: the well-behaved clients' p99 (from the load
test) and the longest gap between two `update` frames seen by observer
clients (Python, `websockets`) subscribed to the ten most active symbols.
Targets (issue 17): p99 <= 1.5x the quiet run, no gap longer than 200 ms.

Run:   python3 benches/noisy_neighbour.py                      (about 4 minutes)
       python3 benches/noisy_neighbour.py --attacks big_subscribe,ping_flood
       python3 benches/noisy_neighbour.py --from-json benches/results/noisy_neighbour.json
Writes benches/results/noisy_neighbour.{json,md} (`--out NAME` for another name).

Attacks (each bounded in time and in count, 127.0.0.1 only, each stops by
itself; see ATTACKS below for the sizes):
  big_subscribe   the largest subscribe of never-published symbols one frame
                  may carry (limits.max_message_bytes, about 32,000 names),
                  then unsubscribe, again, from several connections
  churn           subscribe/unsubscribe of 100 symbols, alternating, at just
                  under the request rate limit, from many connections
  idle            thousands of upgraded connections that never send a frame
  half_open       TCP connections that send part of the upgrade request and stop
  reconnect_storm connections that subscribe, wait for an update, drop the TCP
                  connection without a close and reconnect at once
  stalled         readers that subscribe to every symbol of the universe with a
                  4 KiB receive buffer and never read
  oversized       frames larger than limits.max_message_bytes, reconnecting
                  after each close
  ping_flood      WebSocket pings as fast as the socket takes them, reconnecting
                  after the rate-limit close
  junk            (auth is off by default) upgrades whose first frames are junk:
                  binary noise, text that is not JSON, invalid UTF-8, a reserved
                  opcode, an unmasked frame
  client_cpu      a control, not an attack: the attacker process busy on the
                  load tester's core, sending nothing (how much of a run's p99
                  comes from sharing that core rather than from the server)

A quiet run comes first and again last (how much two runs without an attack
differ). Each server of --servers (tickgate and uWebSockets.js by default)
gets the whole plan in turn, and its runs are compared with its own quiet
run. The uWS peer speaks only the benches' peer contract (subscribe and
unsubscribe, with the id echoed), not tickgate's limits, pings or errors, so
against it the attacks meet uWS's own defaults: a frame over 16 KiB (the
largest subscribe, the oversized frames) closes the connection, a socket
more than 64 KiB behind has messages dropped, and there is no request rate
limit.

The script runs the load tester, the observers and the attackers as three
processes: the load tester (`tickgate loadtest`) and the observers on
LOADTEST_CORE, the attackers on the same core at nice 10 so that the
measuring clients go first; the server on SERVER_CORE. It needs the Python
package `websockets`; when missing it makes the venv `.tools/venv` (as
deploy/test.sh does), installs `websockets==17.4` there and runs itself
again with it. The release binary is taken from $CARGO_TARGET_DIR/release
when that is set, from target/release otherwise (bench.py).
"""

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import bench

VENV = bench.ROOT / ".tools" / "venv"
WEBSOCKETS = "websockets==17.4"

# Sizes of each attack, for one attack alone and inside "all".
ATTACKS = {
    "big_subscribe": {"connections": 8},
    "churn": {"connections": 20, "rate": 45, "symbols": 100},
    "idle": {"connections": 3000},
    "half_open": {"connections": 1000},
    "reconnect_storm": {"connections": 300, "symbols": 100},
    "stalled": {"connections": 100},
    "oversized": {"connections": 10, "bytes": 300 * 1024},
    "ping_flood": {"connections": 20},
    "junk": {"connections": 50},
}
# Control runs, not attacks (not part of "all").
CONTROLS = {"client_cpu": {}}
# Per-connection bound on reconnects (on top of the time bound).
MAX_ROUNDS = 2000
# limits.max_message_bytes (docs/config.md default).
MAX_MESSAGE_BYTES = 262144
OBSERVED_SYMBOLS = [f"LT{i:04}" for i in range(10)]


def ensure_websockets():
    """Runs this script again under .tools/venv when `websockets` is missing."""
    try:
        import websockets  # noqa: F401
        return
    except ImportError:
        pass
    if Path(sys.prefix).resolve() == VENV.resolve():
        raise SystemExit(f"{WEBSOCKETS} is not installed in {VENV}")
    python = VENV / "bin" / "python"
    if not python.exists() or subprocess.run([python, "-c", "import websockets"]).returncode != 0:
        bench.log(f"# installing {WEBSOCKETS} into .tools/venv")
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", WEBSOCKETS],
                       check=True)
    os.execv(python, [str(python), __file__] + sys.argv[1:])


# ---------------------------------------------------------------- raw clients

def ws_frame(opcode, payload=b"", fin=True, masked=True):
    """One client frame (masked, as RFC 6455 requires of clients, unless a
    junk frame asks otherwise)."""
    n = len(payload)
    head = bytearray([(0x80 if fin else 0) | opcode])
    bit = 0x80 if masked else 0
    if n < 126:
        head.append(bit | n)
    elif n < 65536:
        head.append(bit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(bit | 127)
        head += n.to_bytes(8, "big")
    if not masked:
        return bytes(head) + payload
    mask = os.urandom(4)
    head += mask
    if n:
        key = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return bytes(head) + payload


def text(obj):
    return ws_frame(1, json.dumps(obj, separators=(",", ":")).encode())


class Stats:
    """What one attack did: counts by name, close codes seen."""

    def __init__(self):
        self.counts = {}
        self.closes = {}

    def add(self, key, n=1):
        self.counts[key] = self.counts.get(key, 0) + n

    def close(self, code):
        self.closes[str(code)] = self.closes.get(str(code), 0) + 1

    def report(self):
        return {"counts": self.counts, "closes_by_code": self.closes}


class Raw:
    """A minimal WebSocket client over asyncio streams, for hostile clients
    that must do what a library would not (stall, send junk, stop halfway)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port, src, rcvbuf=None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((src, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        except BaseException:
            sock.close()
            raise
        return cls(reader, writer)

    @staticmethod
    def request_head(port, key=None):
        key = key or base64.b64encode(os.urandom(16)).decode()
        return (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()

    @classmethod
    async def upgrade(cls, port, src, stats, rcvbuf=None):
        """Connects and completes the upgrade; None (counted) when refused."""
        try:
            c = await cls.connect(port, src, rcvbuf)
        except OSError:
            stats.add("connect_failed")
            return None
        try:
            c.writer.write(cls.request_head(port))
            head = await asyncio.wait_for(c.reader.readuntil(b"\r\n\r\n"), 15)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
            stats.add("upgrade_failed")
            c.abort()
            return None
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            stats.add("refused " + status.decode(errors="replace").split(" ", 1)[-1][:40])
            c.abort()
            return None
        stats.add("upgraded")
        return c

    def send(self, data):
        self.writer.write(data)

    async def read_frame(self):
        """(opcode, payload); raises IncompleteReadError at end of stream."""
        h = await self.reader.readexactly(2)
        n = h[1] & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        if h[1] & 0x80:
            await self.reader.readexactly(4)
        return h[0] & 0x0F, await self.reader.readexactly(n)

    async def drain_until_closed(self, stats, until):
        """Reads and discards frames until the server closes or `until`;
        counts the close code."""
        try:
            while time.monotonic() < until:
                op, data = await asyncio.wait_for(self.read_frame(), max(until - time.monotonic(), 0.01))
                if op == 8:
                    stats.close(int.from_bytes(data[:2], "big") if len(data) >= 2 else "none")
                    return
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError):
            return

    async def wait_reply(self, request_id, until):
        """Reads frames until one carries `"id":request_id`; False on close or timeout."""
        needle = f'"id":{request_id}'.encode()
        try:
            while True:
                op, data = await asyncio.wait_for(self.read_frame(), max(until - time.monotonic(), 0.01))
                if op == 8:
                    return False
                if needle in data:
                    return True
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError):
            return False

    def abort(self):
        """Drops the TCP connection without a close handshake (RST)."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
        self.writer.transport.abort()


def source(attack_index, i):
    """A loopback source address per attack and connection: 127.0.<10+k>.<2..251>,
    apart from the load tester's 127.0.0.x and the observers' 127.0.1.x."""
    return f"127.0.{10 + attack_index}.{2 + i % 250}"


# ------------------------------------------------------------------- attacks

def short_names(start, count):
    """`count` distinct 5-character symbols no feed publishes (`Q` + base 36)."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for n in range(start, start + count):
        s = ""
        for _ in range(4):
            n, r = divmod(n, 36)
            s = digits[r] + s
        out.append("Q" + s)
    return out


def largest_subscribe(offset):
    """The largest `subscribe` of new symbols that fits limits.max_message_bytes."""
    request = {"op": "subscribe", "symbols": [], "id": 1}
    overhead = len(json.dumps(request, separators=(",", ":")))
    count = (MAX_MESSAGE_BYTES - overhead) // 8  # `"Q0000",` is 8 bytes
    request["symbols"] = short_names(offset, count)
    frame = json.dumps(request, separators=(",", ":")).encode()
    assert len(frame) <= MAX_MESSAGE_BYTES
    return frame, request["symbols"]


async def big_subscribe(port, k, end, size, stats):
    async def one(i):
        # Distinct names per connection; the same frame again after the
        # unsubscribe names symbols that are new again.
        frame, symbols = largest_subscribe(i * 40_000)
        if i == 0:
            stats.add("symbols_per_request", len(symbols))
        unsubscribe = text({"op": "unsubscribe", "symbols": symbols[:1000], "id": 2})
        rounds = 0
        while time.monotonic() < end and rounds < MAX_ROUNDS:
            c = await Raw.upgrade(port, source(k, i), stats)
            if c is None:
                await asyncio.sleep(0.1)
                continue
            while time.monotonic() < end and rounds < MAX_ROUNDS:
                rounds += 1
                c.send(ws_frame(1, frame))
                stats.add("subscribe_requests")
                stats.add("bytes_sent", len(frame))
                if not await c.wait_reply(1, end):
                    break
                c.send(unsubscribe)
                if not await c.wait_reply(2, end):
                    break
                await asyncio.sleep(0.05)  # under the request rate limit
            c.abort()

    await asyncio.gather(*(one(i) for i in range(size["connections"])))


async def churn(port, k, end, size, stats, universe):
    async def one(i):
        rng = random.Random(i)
        c = await Raw.upgrade(port, source(k, i), stats)
        if c is None:
            return
        reader = asyncio.ensure_future(c.drain_until_closed(stats, end))
        interval = 1.0 / size["rate"]
        n = 0
        while time.monotonic() < end and not reader.done() and n < 100_000:
            # Half real symbols, half never published.
            symbols = [f"LT{rng.randrange(universe):04}" for _ in range(size["symbols"] // 2)]
            symbols += short_names(1_000_000 + rng.randrange(500_000), size["symbols"] // 2)
            c.send(text({"op": "subscribe", "symbols": symbols, "id": n}))
            c.send(text({"op": "unsubscribe", "symbols": symbols, "id": n + 1}))
            n += 2
            stats.add("requests", 2)
            await asyncio.sleep(2 * interval)
        reader.cancel()
        c.abort()

    await asyncio.gather(*(one(i) for i in range(size["connections"])))


async def hold(conns, end):
    await asyncio.sleep(max(end - time.monotonic(), 0))
    for c in conns:
        if c is not None:
            c.abort()


async def idle(port, k, end, size, stats):
    sem = asyncio.Semaphore(200)

    async def one(i):
        async with sem:
            if time.monotonic() < end:
                return await Raw.upgrade(port, source(k, i), stats)

    conns = await asyncio.gather(*(one(i) for i in range(size["connections"])))
    await hold(conns, end)


async def half_open(port, k, end, size, stats):
    sem = asyncio.Semaphore(200)
    partial = Raw.request_head(port)[:40]

    async def one(i):
        rounds = 0
        while time.monotonic() < end and rounds < 20:
            rounds += 1
            async with sem:
                try:
                    c = await Raw.connect(port, source(k, i))
                except OSError:
                    stats.add("connect_failed")
                    await asyncio.sleep(0.1)
                    continue
            c.send(partial)
            stats.add("half_open")
            try:
                # The server ends it after limits.handshake_timeout_ms.
                await asyncio.wait_for(c.reader.read(), max(end - time.monotonic(), 0.01))
                stats.add("closed_by_server")
            except (asyncio.TimeoutError, OSError):
                pass
            c.abort()

    await asyncio.gather(*(one(i) for i in range(size["connections"])))


async def reconnect_storm(port, k, end, size, stats, universe):
    async def one(i):
        rng = random.Random(i)
        rounds = 0
        while time.monotonic() < end and rounds < MAX_ROUNDS:
            rounds += 1
            c = await Raw.upgrade(port, source(k, i), stats)
            if c is None:
                await asyncio.sleep(0.05)
                continue
            symbols = [f"LT{s:04}" for s in rng.sample(range(universe), min(size["symbols"], universe))]
            c.send(text({"op": "subscribe", "symbols": symbols, "id": 1}))
            try:
                # Until the first update (the snapshot counts), then drop.
                while time.monotonic() < end:
                    op, data = await asyncio.wait_for(c.read_frame(), 2)
                    if op == 1 and data.startswith(b'{"type":"update"'):
                        stats.add("updates_before_drop")
                        break
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError):
                stats.add("no_update_before_drop")
            c.abort()

    await asyncio.gather(*(one(i) for i in range(size["connections"])))


async def stalled(port, k, end, size, stats, universe):
    everything = [f"LT{s:04}" for s in range(min(universe, 1000))]

    async def one(i):
        c = await Raw.upgrade(port, source(k, i), stats, rcvbuf=4096)
        if c is not None:
            c.send(text({"op": "subscribe", "symbols": everything, "id": 1}))
            stats.add("subscribed_symbols", len(everything))
        return c

    conns = await asyncio.gather(*(one(i) for i in range(size["connections"])))
    await hold(conns, end)


async def oversized(port, k, end, size, stats):
    big = ws_frame(1, b"[" + b"0," * (size["bytes"] // 2) + b"0]")

    async def one(i):
        rounds = 0
        while time.monotonic() < end and rounds < MAX_ROUNDS:
            rounds += 1
            c = await Raw.upgrade(port, source(k, i), stats)
            if c is None:
                await asyncio.sleep(0.1)
                continue
            try:
                c.send(big)
                stats.add("oversized_frames")
                await c.drain_until_closed(stats, min(end, time.monotonic() + 5))
            finally:
                c.abort()

    await asyncio.gather(*(one(i) for i in range(size["connections"])))


async def ping_flood(port, k, end, size, stats):
    pings = b"".join(ws_frame(9, b"flood") for _ in range(200))

    async def one(i):
        rounds = 0
        while time.monotonic() < end and rounds < MAX_ROUNDS:
            rounds += 1
            c = await Raw.upgrade(port, source(k, i), stats)
            if c is None:
                await asyncio.sleep(0.1)
                continue
            reader = asyncio.ensure_future(c.drain_until_closed(stats, end))
            try:
                while time.monotonic() < end and not reader.done():
                    c.send(pings)
                    stats.add("pings", 200)
                    await asyncio.wait_for(c.writer.drain(), 5)
                    await asyncio.sleep(0)
            except (OSError, asyncio.TimeoutError):
                pass
            reader.cancel()
            c.abort()

    await asyncio.gather(*(one(i) for i in range(size["connections"])))


JUNK = [
    ws_frame(2, os.urandom(512)),                   # binary noise
    ws_frame(1, b"GET / HTTP/1.1 not json"),         # text that is not JSON
    ws_frame(1, b"\xff\xfe\xfd invalid utf-8"),      # invalid UTF-8
    ws_frame(1, b'{"op":"auth","token":""}'),        # an empty token
    ws_frame(3, b"reserved opcode"),                 # reserved opcode
    ws_frame(1, b'{"op":"subscribe"}', masked=False),  # unmasked
]


async def junk(port, k, end, size, stats):
    async def one(i):
        rounds = 0
        while time.monotonic() < end and rounds < MAX_ROUNDS:
            rounds += 1
            c = await Raw.upgrade(port, source(k, i), stats)
            if c is None:
                await asyncio.sleep(0.1)
                continue
            try:
                for j in range(len(JUNK)):
                    c.send(JUNK[(rounds + j) % len(JUNK)])
                    stats.add("junk_frames")
                await c.drain_until_closed(stats, min(end, time.monotonic() + 0.5))
            finally:
                c.abort()

    await asyncio.gather(*(one(i) for i in range(size["connections"])))


async def client_cpu(port, k, end, size, stats):
    """Not an attack: the attacker process busy on the load tester's core,
    sending nothing, to tell the cost of sharing that core from the cost to
    the server."""
    while time.monotonic() < end:
        spin = time.monotonic() + 0.01
        while time.monotonic() < spin:
            pass
        stats.add("busy_slices")
        await asyncio.sleep(0)


ATTACK_FNS = {
    "big_subscribe": big_subscribe,
    "churn": churn,
    "idle": idle,
    "half_open": half_open,
    "reconnect_storm": reconnect_storm,
    "stalled": stalled,
    "oversized": oversized,
    "ping_flood": ping_flood,
    "junk": junk,
    "client_cpu": client_cpu,
}
NEEDS_UNIVERSE = {"churn", "reconnect_storm", "stalled"}


async def run_attacks(names, port, seconds, universe):
    end = time.monotonic() + seconds
    stats = {name: Stats() for name in names}
    tasks = []
    for name in names:
        k = list(ATTACK_FNS).index(name)
        args = (port, k, end, {**ATTACKS, **CONTROLS}[name], stats[name])
        if name in NEEDS_UNIVERSE:
            args += (universe,)
        tasks.append(ATTACK_FNS[name](*args))
    try:
        # The time bound, whatever an attack is waiting for.
        await asyncio.wait_for(asyncio.gather(*tasks), seconds + 10)
    except asyncio.TimeoutError:
        pass
    return {name: s.report() for name, s in stats.items()}


# ------------------------------------------------------------------ observers

async def observe(url, count, window):
    """`count` clients on the most active symbols; prints `ready`, then `feed`
    at the first update, then one JSON line: each client's longest gap
    between two `update` frames from 0.5 s after the first update to
    `window` s after it (the time since the last update at the end counts
    as a gap too)."""
    from websockets.asyncio.client import connect

    first = asyncio.get_running_loop().create_future()
    times = [[] for _ in range(count)]
    errors = []

    async def one(i, ready):
        try:
            async with connect(url, max_size=1 << 24, compression=None, ping_interval=None,
                               open_timeout=30, local_addr=(f"127.0.1.{2 + i}", 0)) as ws:
                await ws.send(json.dumps({"op": "subscribe", "symbols": OBSERVED_SYMBOLS, "id": 1}))
                ready.set_result(None)
                async for msg in ws:
                    if isinstance(msg, str) and msg.startswith('{"type":"update"'):
                        now = time.monotonic()
                        times[i].append(now)
                        if not first.done():
                            first.set_result(now)
            errors.append(f"observer {i}: closed by the server")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 (reported, not hidden)
            errors.append(f"observer {i}: {type(e).__name__}: {e}")
            if not ready.done():
                ready.set_result(None)

    readies = [asyncio.get_running_loop().create_future() for _ in range(count)]
    tasks = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(readies)]
    await asyncio.wait_for(asyncio.gather(*readies), 60)
    print("ready", flush=True)
    start = await asyncio.wait_for(first, 120)
    print("feed", flush=True)
    await asyncio.sleep(window)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lo, hi = start + 0.5, start + window
    gaps = []
    for ts in times:
        inside = [lo] + [t for t in ts if lo <= t <= hi] + [hi]
        widest = max(zip(inside, inside[1:]), key=lambda p: p[1] - p[0])
        gaps.append({"gap_ms": round((widest[1] - widest[0]) * 1000, 1),
                     "at_s": round(widest[0] - start, 2),
                     "updates": len(inside) - 2})
    print(json.dumps({"observers": gaps, "errors": errors[:20]}), flush=True)


# --------------------------------------------------------------- the runs

def proc_cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def socket_states(port):
    """Server-side TCP connections on the client port by state (`ss`)."""
    out = subprocess.run(["ss", "-Htan", f"( sport = :{port} )"], capture_output=True, text=True).stdout
    states = {}
    for line in out.splitlines():
        state = line.split()[0]
        states[state] = states.get(state, 0) + 1
    return states


def read_line(proc, timeout):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else None


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def one_run(kind, name, attacks, a):
    """One load test of server `kind` with `attacks` (empty: the quiet run)."""
    me = [sys.executable, __file__]
    core = ["taskset", "-c", bench.LOADTEST_CORE]
    lead, window = 1.0, a.duration - 1.5
    with bench.Server(kind) as server:
        observers = subprocess.Popen(
            core + me + ["--role", "observers", "--port", str(server.client_port), "--observers", str(a.observers),
                         "--window", str(window)], stdout=subprocess.PIPE, text=True)
        try:
            if read_line(observers, 90) != "ready":
                raise RuntimeError("observers did not connect")
            result = {}
            loadtest = threading.Thread(target=lambda: result.update(report=bench.loadtest(
                server, "--clients", a.clients, "--symbols-per-client", 100, "--universe", a.universe,
                "--feed-rate", a.rate, "--feed-popularity", "zipf", "--duration", f"{a.duration:g}s",
                "--drain", "3s", "--connect-rate", 5000, "--label", f"noisy neighbour {kind} {name}")))
            loadtest.start()
            if read_line(observers, 120) != "feed":
                raise RuntimeError("no update reached the observers")
            time.sleep(lead)
            cpu0, t0 = proc_cpu_seconds(server.proc.pid), time.monotonic()
            attack_report, attacker_cpu, sockets = None, None, None
            if attacks:
                usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                attacker = subprocess.Popen(
                    core + ["nice", "-n", "10"] + me + ["--role", "attack", "--attack", ",".join(attacks),
                                                        "--port", str(server.client_port),
                                                        "--for", str(a.attack_for), "--universe", str(a.universe)],
                    stdout=subprocess.PIPE, text=True)
                time.sleep(a.attack_for / 2)
                sockets = socket_states(server.client_port)
                try:
                    out, _ = attacker.communicate(timeout=a.attack_for + 30)
                    attack_report = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
                except subprocess.TimeoutExpired:
                    stop(attacker)
                usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                attacker_cpu = round(usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime, 2)
            else:
                time.sleep(a.attack_for / 2)
                sockets = socket_states(server.client_port)
                time.sleep(a.attack_for / 2)
            cpu1, t1 = proc_cpu_seconds(server.proc.pid), time.monotonic()
            loadtest.join()
            line = read_line(observers, 60)
            observed = json.loads(line) if line else {"observers": [], "errors": ["no observer report"]}
        finally:
            stop(observers)
    r = result.get("report") or {"failed": True}
    r.update({
        "server_kind": kind,
        "run": name,
        "attacks": attacks,
        "attack_seconds": a.attack_for,
        "observed": observed,
        "attack_report": attack_report,
        "attacker_cpu_seconds": attacker_cpu,
        "server_cpu_during_attack": round((cpu1 - cpu0) / (t1 - t0), 2) if cpu0 is not None and cpu1 else None,
        "server_sockets_mid_attack": sockets,
    })
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=1000, help="well-behaved clients (load tester)")
    ap.add_argument("--universe", type=int, default=1000, help="symbols; each client takes 100 of them")
    ap.add_argument("--rate", type=float, default=1000,
                    help="feed ticks/s (Zipf over the universe); delivered quotes/s = rate x clients x 100 / universe")
    ap.add_argument("--duration", type=float, default=12, help="measured seconds of each load test")
    ap.add_argument("--attack-for", type=float, default=9, help="seconds each attack lasts (inside the measured phase)")
    ap.add_argument("--observers", type=int, default=20)
    ap.add_argument("--servers", default="tickgate,uws", help="servers, each through the whole plan in turn")
    ap.add_argument("--attacks", default=",".join(list(ATTACKS) + list(CONTROLS)),
                    help="attacks run one at a time, then all together (comma-separated); "
                         "client_cpu is a control: the attacker process only burns CPU on the load tester's core")
    ap.add_argument("--no-all", action="store_true", help="skip the run with every attack at once")
    ap.add_argument("--out", default="noisy_neighbour")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--from-json")
    # Internal: the observer and attacker processes.
    ap.add_argument("--role", choices=["main", "observers", "attack"], default="main", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--window", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--attack", help=argparse.SUPPRESS)
    ap.add_argument("--for", dest="seconds", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role == "observers":
        asyncio.run(observe(f"ws://127.0.0.1:{a.port}/ws", a.observers, a.window))
        return
    if a.role == "attack":
        print(json.dumps(asyncio.run(run_attacks(a.attack.split(","), a.port, a.seconds, a.universe))), flush=True)
        return
    if a.from_json:
        write_outputs(json.loads(Path(a.from_json).read_text()), Path(a.from_json).stem)
        return
    if a.attack_for > a.duration - 2:
        raise SystemExit("--attack-for must leave at least 2 s of the measured phase")
    attacks = [x for x in a.attacks.split(",") if x]
    unknown = set(attacks) - set(ATTACKS) - set(CONTROLS)
    if unknown:
        raise SystemExit(f"unknown attacks: {', '.join(sorted(unknown))}")
    ensure_websockets()
    servers = a.servers.split(",")
    bench.prepare(servers, build=not a.no_build)
    plan = [("quiet", [])] + [(x, [x]) for x in attacks]
    hostile = [x for x in attacks if x in ATTACKS]
    if len(hostile) > 1 and not a.no_all:
        plan.append(("all", hostile))
    # The quiet run again last: how much two runs without an attack differ.
    plan.append(("quiet again", []))
    started = time.time()
    runs = []
    for kind in servers:
        quiet = None
        for name, names in plan:
            try:
                r = one_run(kind, name, names, a)
            except RuntimeError as e:
                bench.log(f"  {kind} {name}: {e}")
                r = {"server_kind": kind, "run": name, "attacks": names, "failed": True, "error": str(e)}
            runs.append(r)
            quiet = quiet or r
            bench.log(row(r, quiet))
    payload = {"scenario": "noisy_neighbour", "machine": bench.machine(), "servers": servers, "clients": a.clients,
               "universe": a.universe, "rate": a.rate, "duration": a.duration, "attack_seconds": a.attack_for,
               "observers": a.observers, "observed_symbols": OBSERVED_SYMBOLS, "sizes": ATTACKS,
               "command": " ".join(["python3", "benches/noisy_neighbour.py"] + sys.argv[1:]),
               "seconds": round(time.time() - started), "runs": runs}
    bench.write_json(a.out, payload)
    write_outputs(payload, a.out)


# ------------------------------------------------------------------ tables

P99_TARGET, GAP_TARGET_MS = 1.5, 200.0


def longest_gap(r):
    gaps = [o["gap_ms"] for o in (r.get("observed") or {}).get("observers", [])]
    return max(gaps) if gaps else None


def row(r, quiet):
    kind = r.get("server_kind", "tickgate")
    if r.get("failed"):
        return f"| {kind} | {r['run']} | run failed: {r.get('error', '')} |" + " |" * 13
    p99 = r["latency_ms"]["p99"]
    ratio = bench.ratio(p99, quiet["latency_ms"]["p99"]) if not quiet.get("failed") else float("nan")
    gap = longest_gap(r)
    errors = (r.get("observed") or {}).get("errors") or []
    meets = ratio <= P99_TARGET and gap is not None and gap <= GAP_TARGET_MS and not errors
    att = r.get("attack_report") or {}
    did = "; ".join(
        f"{k}: " + ", ".join(f"{c} {n}" for c, n in sorted(v["counts"].items()))
        + (" (closes " + ", ".join(f"{c}: {n}" for c, n in sorted(v["closes_by_code"].items())) + ")"
           if v["closes_by_code"] else "")
        for k, v in att.items()) if len(att) == 1 else f"{len(att)} attacks" if att else ""
    return (f"| {kind} | {r['run']} | {p99:.1f} | {ratio:.2f}x | {r['latency_ms']['max']:.0f} "
            f"| {r['throughput']['quotes_per_second']:,.0f} | {r['delivery']['ratio']:.4f} "
            f"| {gap if gap is not None else '-'} | {'yes' if meets else 'no'} "
            f"| {r['server_cpu_during_attack']} | {r.get('attacker_cpu_seconds') or '-'} "
            f"| {r['loadtest_cpu']['core_share']:.2f} | {bench.pressure(r)} "
            f"| {' '.join(f'{k} {v}' for k, v in sorted((r.get('server_sockets_mid_attack') or {}).items()))} "
            f"| {'; '.join(errors[:3])} | {did} |")


def table(p):
    runs = p["runs"]
    per_client = 100 * p["clients"] / p["universe"]
    rows = [
        f"### noisy neighbour: {p['clients']} clients x 100 of {p['universe']} symbols, {p['rate']:g} Zipf ticks/s "
        f"(about {p['rate'] * per_client:,.0f} quotes/s offered), each attack {p['attack_seconds']:g} s "
        f"of a {p['duration']:g} s measured phase",
        "",
        f"Targets: well-behaved p99 <= {P99_TARGET}x the quiet run, longest gap <= {GAP_TARGET_MS:.0f} ms "
        f"({p['observers']} observers on {', '.join(p['observed_symbols'][:2])} … {p['observed_symbols'][-1]}). "
        "Server CPU: share of its core during the attack window; attacker CPU: seconds of the attack process.",
        "",
        "| server | run | p99 ms | p99 vs quiet | max ms | delivered quotes/s | delivery ratio | longest gap ms | meets targets "
        "| server CPU | attacker CPU s | load tester CPU | CPU pressure | server sockets mid-attack | observer errors "
        "| what the attack did |",
        "|---|---|---:|---:|---:|---:|---:|---:|:-:|---:|---:|---:|---:|---|---|---|",
    ]
    # Each server's runs against its own quiet run (its first).
    quiet = {}
    for r in runs:
        kind = r.get("server_kind", "tickgate")
        quiet.setdefault(kind, r)
        rows.append(row(r, quiet[kind]))
    rows += ["", f"Command: `{p['command']}` ({p['seconds']} s in all).", ""]
    return "\n".join(rows) + "\n"


def write_outputs(payload, out):
    bench.write_text(f"{out}.md", table(payload))
    print(table(payload))


if __name__ == "__main__":
    main()
