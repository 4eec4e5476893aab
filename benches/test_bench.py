"""Tests of bench.py's server table and paths (no server is started).

Run:   python3 -m unittest discover -s benches -p 'test_*.py'
"""

import os
import subprocess
import sys
import unittest
from pathlib import Path
from unittest import mock

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES))

import bench  # noqa: E402


def paths_with(env):
    """bench's binary and results paths as a fresh interpreter sees them
    under `env` (they are read once, at import)."""
    code = "import bench; print(bench.TICKGATE); print(bench.PEER_BIN); print(bench.RESULTS)"
    clean = {k: v for k, v in os.environ.items() if k not in ("CARGO_TARGET_DIR", "BENCH_RESULTS")}
    out = subprocess.run([sys.executable, "-c", code], cwd=BENCHES, env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout
    return [Path(p) for p in out.split()]


class Paths(unittest.TestCase):
    def test_release_binaries_are_taken_from_cargo_target_dir_when_set(self):
        tickgate, peers, _ = paths_with({"CARGO_TARGET_DIR": "/tmp/some-target"})
        self.assertEqual(tickgate, Path("/tmp/some-target/release/tickgate"))
        # cargo puts the Rust peers there too, whatever their manifest.
        self.assertEqual(peers, Path("/tmp/some-target/release"))

    def test_release_binaries_default_to_the_repository_target(self):
        tickgate, peers, results = paths_with({})
        self.assertEqual(tickgate, bench.ROOT / "target" / "release" / "tickgate")
        self.assertEqual(peers, bench.PEERS / "rust" / "target" / "release")
        self.assertEqual(results, bench.ROOT / "benches" / "results")

    def test_bench_results_sends_results_elsewhere(self):
        _, _, results = paths_with({"BENCH_RESULTS": "/tmp/smoke-results"})
        self.assertEqual(results, Path("/tmp/smoke-results"))


class UwsPeer(unittest.TestCase):
    def test_uws_is_a_peer_of_every_side_by_side_scenario(self):
        self.assertIn("uws", bench.ALL_SERVERS)
        self.assertEqual(bench.NODE_PEERS["uws"], "@trufflesuite/uws-js-unofficial")
        self.assertEqual(bench.NODE_PEERS["uws-wss"], "@trufflesuite/uws-js-unofficial")

    def test_uws_runs_the_node_peer_on_ws_with_the_tickgate_protocol(self):
        server = bench.Server("uws")
        command = [str(c) for c in server.command()]
        self.assertEqual(command[:2], ["node", str(bench.PEERS / "uws-server.js")])
        self.assertEqual(command[2:], [f"127.0.0.1:{server.client_port}", f"127.0.0.1:{server.feed_port}"])
        self.assertEqual(server.url, f"ws://127.0.0.1:{server.client_port}/ws")
        self.assertEqual([str(a) for a in server.loadtest_args()],
                         ["--mode", "tickgate", "--feed-listen", f"127.0.0.1:{server.feed_port}"])

    def test_uws_wss_serves_the_dev_certificate_and_the_load_tester_trusts_its_ca(self):
        server = bench.Server("uws-wss")
        with mock.patch.object(bench.subprocess, "run") as run:
            command = [str(c) for c in server.command()]
        try:
            run.assert_called_once()
            self.assertEqual(run.call_args.args[0][1:], ["dev-cert", "--out", server.tmp])
            tmp = Path(server.tmp)
            self.assertEqual(command[:4], ["node", str(bench.PEERS / "uws-server.js"),
                                           f"127.0.0.1:{server.client_port}", f"127.0.0.1:{server.feed_port}"])
            self.assertEqual(command[4:], ["--tls-cert", str(tmp / "server.pem"), "--tls-key", str(tmp / "server-key.pem")])
            # localhost: the name in the dev certificate.
            self.assertEqual(server.url, f"wss://localhost:{server.client_port}/ws")
            self.assertEqual([str(a) for a in server.loadtest_args()][:2], ["--ca-file", str(tmp / "ca.pem")])
        finally:
            server.__exit__(None, None, None)
        self.assertFalse(Path(server.tmp).exists())


@unittest.skipUnless(bench.TICKGATE.exists() and (bench.PEERS / "node_modules" / bench.NODE_PEERS["uws"]).exists(),
                     "needs the release tickgate (its load tester) and `npm ci` in benches/peers")
class UwsUnderTheLoadTester(unittest.TestCase):
    """The real peer process, started as the scenario scripts start it, under
    the real load tester: 20 clients x 10 of 30 symbols, 500 ticks/s, 1.5 s."""

    def check_every_quote_arrives(self, kind):
        with bench.Server(kind) as server:
            r = bench.loadtest(server, "--clients", 20, "--symbols-per-client", 10, "--universe", 30,
                               "--feed-rate", 500, "--duration", "1500ms", "--drain", "3s", timeout=120)
        self.assertIsNotNone(r, "the load test ran")
        d = r["delivery"]
        self.assertEqual(r["connections"]["subscribed"], 20, r["connections"])
        self.assertGreater(r["feed"]["ticks_published"], 100)
        self.assertEqual(d["received"], d["expected"], d)
        self.assertEqual((d["seq_gaps"], d["seq_regressions"], d["unexpected_quotes"]), (0, 0, 0), d)
        self.assertTrue(d["all_latest_delivered"], d)
        self.assertEqual((r["errors"], r["closes_by_code"]), ({}, {}))
        self.assertEqual(r["server_kind"], kind)
        self.assertGreater(r["server"]["rss_connected_bytes"], 0, "the load tester measured the peer process")

    def test_uws_delivers_every_quote_in_order(self):
        self.check_every_quote_arrives("uws")

    def test_uws_wss_delivers_every_quote_in_order(self):
        self.check_every_quote_arrives("uws-wss")


if __name__ == "__main__":
    unittest.main()
