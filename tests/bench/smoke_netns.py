"""A bounded run of bench/run-peers in the namespace topology (CI smoke, a few seconds per path):
both snisplice modes and one peer (nginx) next to direct; checks that every path produced numbers
for every workload, that each snisplice instance took the data path it is configured for, that
the traffic really crossed the veth pairs (interface counters against the bytes measured), and
that the namespaces are gone afterwards; that no attributed CPU figure is negative and every
process ended by the SIGTERM at the end.

  smoke_netns.py SNISPLICE_BINARY SNISPLICE_LOAD_BINARY    (as root; exit 77 = skipped)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PATHS = ["direct", "snisplice sockmap", "snisplice userspace", "nginx ssl_preread"]
WORKLOADS = ["up", "down", "pingpong", "reconnect"]
SKIP = 77


def skip_reason(snisplice, load):
    if os.geteuid() != 0:
        return "needs root (network namespaces, splice: sockmap)"
    for what, path in (("snisplice", snisplice), ("snisplice_load", load)):
        if not os.access(path, os.X_OK):
            return f"{what} is not built at {path}"
    if not shutil.which("nginx") or not os.path.exists("/usr/lib/nginx/modules/ngx_stream_module.so"):
        return "nginx with the stream module is not installed (scripts/setup-deps)"
    probe = f"snibench-probe-{os.getpid()}"
    out = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if out.returncode != 0:
        return f"cannot create a network namespace: {out.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


class NamespaceSmoke(unittest.TestCase):
    snisplice = load = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bench-smoke-")
        output = os.path.join(cls.tmp, "run.json")
        argv = [sys.executable, os.path.join(REPO, "bench", "run-peers"), "--topologies", "netns",
                "--paths", ",".join(PATHS[1:]), "--workloads", ",".join(WORKLOADS), "--rounds", "1",
                "--seconds", "0.5", "--snisplice", cls.snisplice, "--load", cls.load, "--json", output]
        cls.proc = subprocess.run(argv, capture_output=True, text=True, timeout=150)
        cls.run_data = None
        if cls.proc.returncode == 0:
            with open(output) as f:
                cls.run_data = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr[-3000:])
        self.topo = self.run_data["topologies"]["netns"]

    def test_every_path_produced_numbers_for_every_workload(self):
        keys = {"up": "up_gbit", "down": "down_gbit", "pingpong": "p50_us", "reconnect": "conn_per_s"}
        for path in PATHS:
            summary = self.topo["summary"][path]
            self.assertEqual(summary["failures"], 0, f"{path}: {self.topo['raw'][path]}")
            for workload, key in keys.items():
                self.assertIsNotNone(summary[key], f"{path} {workload}")
                self.assertGreater(summary[key], 0, f"{path} {workload}")
                if path != "direct":
                    self.assertIsNotNone(self.topo["ratios"][path][key], f"{path} {key}")

    def test_each_snisplice_mode_took_its_data_path(self):
        for path, spliced, relayed in (("snisplice sockmap", True, False), ("snisplice userspace", False, True)):
            for workload in WORKLOADS:
                for sample in self.topo["raw"][path][workload]:
                    self.assertEqual(bool(sample["sockmap_connections"]), spliced, f"{path} {workload}: {sample}")
                    self.assertEqual(bool(sample["userspace_connections"]), relayed, f"{path} {workload}: {sample}")
                    # Held bytes are part of the bytes carried; the relay never holds any.
                    self.assertLessEqual(sample["held_bytes"], sample["carried_bytes"], f"{path} {workload}")
                    if relayed:
                        self.assertEqual(sample["held_bytes"], 0, f"{path} {workload}")
        self.assertIn("held_share", self.topo["summary"]["snisplice sockmap"]["data_path"])

    def test_traffic_crossed_the_veth_pairs(self):
        # Up: the client's bytes arrive at the proxy's client-side veth and at the backend's;
        # down: at the proxy's backend-side veth and at the client's. The receiver counts only its
        # measuring window, so every device must have carried at least that many bytes.
        for path in PATHS:
            for workload, key, devices in (("up", "up_bytes", ("prx-c", "srv0")),
                                           ("down", "down_bytes", ("prx-s", "cli0"))):
                for sample in self.topo["raw"][path][workload]:
                    self.assertGreater(sample[key], 1_000_000, f"{path} {workload}")
                    for device in devices:
                        self.assertGreaterEqual(sample["interfaces"][device]["rx_bytes"], sample[key],
                                                f"{path} {workload}: {device} {sample['interfaces']}")
        self.assertEqual(self.topo["topology"]["rps_cpus"], "0")

    def test_attributed_cpu_is_never_negative(self):
        for path in PATHS:
            for workload in WORKLOADS:
                for sample in self.topo["raw"][path][workload]:
                    self.assertGreaterEqual(sample["cpu_attributed_seconds"], 0, f"{path} {workload}: {sample}")

    def test_every_process_ended_by_the_sigterm_at_the_end(self):
        self.assertEqual(set(self.topo["stopped"].values()), {"SIGTERM"}, self.topo["stopped"])
        self.assertEqual(len(self.topo["stopped"]), len(PATHS))   # the backend and the three proxies

    def test_namespaces_are_removed(self):
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for name in self.topo["topology"]["namespaces"].values():
            self.assertNotIn(name, listed)


if __name__ == "__main__":
    NamespaceSmoke.snisplice, NamespaceSmoke.load = sys.argv[1], sys.argv[2]
    reason = skip_reason(NamespaceSmoke.snisplice, NamespaceSmoke.load)
    if reason:
        print(f"skipped: {reason}")
        sys.exit(SKIP)
    unittest.main(argv=sys.argv[:1], verbosity=2)
