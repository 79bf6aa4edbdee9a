"""bench/chart on recorded runs: what each chart shows (pure), and that the PNGs are drawn."""
import importlib.util
import os
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench"))
from benchlib import charts, results  # noqa: E402

DATA = os.path.join(HERE, "data")

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


class SpecTest(unittest.TestCase):
    def setUp(self):
        self.run = results.load(os.path.join(DATA, "peers-a.json"))
        self.specs = {s["name"]: s for s in charts.specs(self.run)}

    def test_one_chart_per_measured_workload(self):
        # The recorded run has no paced workloads: no empty chart for them.
        self.assertEqual(set(self.specs), {"bulk-up", "bulk-down", "rtt-p50", "rtt-p99",
                                           "connections-per-second", "cpu-per-gb"})

    def test_every_path_but_direct_side_by_side_one_series_per_topology(self):
        spec = self.specs["bulk-up"]
        self.assertEqual(spec["categories"], ["snisplice sockmap", "nginx ssl_preread"])
        self.assertEqual(list(spec["series"]), ["loopback", "netns"])
        ratios = self.run["topologies"]["netns"]["ratios"]
        self.assertEqual(spec["series"]["netns"], [ratios["snisplice sockmap"]["up_gbit"],
                                                   ratios["nginx ssl_preread"]["up_gbit"]])
        self.assertEqual(spec["reference"], 1.0)
        self.assertIn("ratio to direct", spec["ylabel"])

    def test_caption_names_date_commit_kernel_and_load(self):
        caption = self.specs["rtt-p50"]["caption"][0]
        machine = self.run["meta"]["machine"]
        for text in (self.run["meta"]["started"], machine["commit"], machine["kernel"], "load average",
                     f"{self.run['meta']['loadavg']['before'][0]:.2f}"):
            self.assertIn(text, caption)
        self.assertIn("direct = 1.0: loopback", self.specs["rtt-p50"]["caption"][1])

    def test_invalid_figures_are_flagged_not_drawn(self):
        broken = results.load(os.path.join(REPO, "bench", "results", "2026-12-06T2325Z.json"))
        spec = {s["name"]: s for s in charts.specs(broken)}["cpu-per-gb-paced"]
        auto = spec["categories"].index("snisplice auto")
        self.assertIsNone(spec["series"]["loopback"][auto])
        self.assertTrue(spec["invalid"]["loopback"][auto])
        self.assertFalse(spec["invalid"]["netns"][auto])
        self.assertGreater(spec["series"]["netns"][auto], 0)
        self.assertFalse(any(flag for flags in self.specs["bulk-up"]["invalid"].values() for flag in flags))

    def test_idle_memory_chart(self):
        spec = charts.idle_spec(results.load(os.path.join(DATA, "idle.json")))
        self.assertIn("snisplice sockmap", spec["categories"])
        self.assertIsNone(spec["reference"])
        self.assertTrue(any("kernel slab" in label for label in spec["series"]))
        self.assertTrue(any("process" in label for label in spec["series"]))


@unittest.skipUnless(HAVE_MATPLOTLIB, "matplotlib is not installed (python3-matplotlib, scripts/setup-deps)")
class DrawTest(unittest.TestCase):
    def test_bench_chart_writes_one_png_per_chart(self):
        with tempfile.TemporaryDirectory() as out:
            proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "chart"), "--out", out,
                                   os.path.join(DATA, "peers-a.json"), os.path.join(DATA, "idle.json")],
                                  capture_output=True, text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            names = sorted(os.listdir(out))
            self.assertEqual(len(names), 7, names)
            for name in names:
                with open(os.path.join(out, name), "rb") as f:
                    header = f.read(24)
                self.assertEqual(header[:8], b"\x89PNG\r\n\x1a\n")
                width, height = struct.unpack(">II", header[16:24])
                self.assertGreater(width, 500)
                self.assertGreater(height, 300)

    def test_a_run_with_invalid_figures_is_drawn(self):
        with tempfile.TemporaryDirectory() as out:
            proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "chart"), "--out", out,
                                   os.path.join(REPO, "bench", "results", "2026-12-06T2325Z.json")],
                                  capture_output=True, text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertIn("cpu-per-gb-paced.png", os.listdir(out))


if __name__ == "__main__":
    unittest.main()
