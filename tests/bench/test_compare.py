"""bench/compare and bench/measure-noise's arithmetic, on recorded runs (tests/bench/data/)."""
import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench"))
from benchlib import compare, results  # noqa: E402

DATA = os.path.join(HERE, "data")


def recorded(name):
    return results.load(os.path.join(DATA, name))


def with_ratio(run, topo, path, metric, factor):
    """A copy of `run` where one path's metric (and so its ratio to direct) is scaled by `factor`."""
    changed = copy.deepcopy(run)
    t = changed["topologies"][topo]
    t["summary"][path][metric] *= factor
    t["ratios"] = results.ratios(t["summary"])
    return changed


def noise_file(value):
    """Noise of `value` for every topology, metric and path of the recorded runs."""
    run = recorded("peers-a.json")
    return {"runs": 3, "noise": {topo: {m: {p: value for p in t["ratios"] if p != "direct"} for m in results.METRICS}
                                 for topo, t in run["topologies"].items()}}


class NoiseTest(unittest.TestCase):
    def test_pairwise_spread_is_largest_relative_change(self):
        self.assertAlmostEqual(compare.pairwise_spread([1.0, 1.1, 0.9]), 1.1 / 0.9 - 1)
        self.assertIsNone(compare.pairwise_spread([1.0]))
        self.assertIsNone(compare.pairwise_spread([1.0, None]))

    def test_noise_of_recorded_runs_covers_every_path_and_metric_they_have(self):
        a, b = recorded("peers-a.json"), recorded("peers-b.json")
        noise = compare.measure_noise([a, b])
        self.assertEqual(set(noise), {"loopback", "netns"})
        for topo in noise:
            for path in ("snisplice sockmap", "nginx ssl_preread"):
                ra = a["topologies"][topo]["ratios"][path]["up_gbit"]
                rb = b["topologies"][topo]["ratios"][path]["up_gbit"]
                self.assertAlmostEqual(noise[topo]["up_gbit"][path], max(ra, rb) / min(ra, rb) - 1, places=3)
            self.assertNotIn("direct", noise[topo]["up_gbit"])
        # The quick-style fixtures have no paced runs: no figure rather than a made-up one.
        self.assertEqual(noise["netns"]["paced_own_cpu_s_per_gb"], {})

    def test_the_runs_noise_was_measured_on_are_within_it(self):
        a, b = recorded("peers-a.json"), recorded("peers-b.json")
        noise = {"runs": 2, "noise": compare.measure_noise([a, b])}
        for old, new in ((a, b), (b, a)):
            rows = compare.compare(old, new, noise)
            self.assertTrue(rows)
            self.assertEqual({r["verdict"] for r in rows}, {"within noise"})

    def test_identical_runs_have_no_noise(self):
        a = recorded("peers-a.json")
        noise = compare.measure_noise([a, copy.deepcopy(a)])
        self.assertEqual(noise["netns"]["conn_per_s"]["snisplice sockmap"], 0)


class CompareTest(unittest.TestCase):
    def setUp(self):
        self.old = recorded("peers-a.json")

    def row(self, rows, topo, path, metric):
        [row] = [r for r in rows if (r["topology"], r["path"], r["metric"]) == (topo, path, metric)]
        return row

    def test_change_beyond_noise_is_flagged_with_its_direction(self):
        worse = with_ratio(self.old, "netns", "snisplice sockmap", "up_gbit", 0.7)     # 30 % slower
        rows = compare.compare(self.old, worse, noise_file(0.10))
        row = self.row(rows, "netns", "snisplice sockmap", "up_gbit")
        self.assertAlmostEqual(row["change"], -0.3)
        self.assertEqual(row["verdict"], "WORSE")
        better = with_ratio(self.old, "netns", "snisplice sockmap", "p50_us", 0.7)     # 30 % lower latency
        self.assertEqual(self.row(compare.compare(self.old, better, noise_file(0.10)),
                                  "netns", "snisplice sockmap", "p50_us")["verdict"], "BETTER")

    def test_change_inside_noise_is_not_flagged(self):
        new = with_ratio(self.old, "netns", "snisplice sockmap", "up_gbit", 0.95)
        rows = compare.compare(self.old, new, noise_file(0.10))
        self.assertEqual(self.row(rows, "netns", "snisplice sockmap", "up_gbit")["verdict"], "within noise")
        self.assertFalse([r for r in rows if r["verdict"] in ("WORSE", "BETTER")])

    def test_missing_noise_is_said_not_guessed(self):
        new = with_ratio(self.old, "loopback", "nginx ssl_preread", "down_gbit", 0.5)
        rows = compare.compare(self.old, new, None)
        self.assertTrue(rows)
        self.assertEqual({r["verdict"] for r in rows}, {"noise unknown"})

    def test_direct_moving_alone_changes_no_ratio(self):
        new = copy.deepcopy(self.old)
        for t in new["topologies"].values():
            for path in t["summary"]:       # the whole machine 20 % slower: every path, direct too
                t["summary"][path]["up_gbit"] *= 0.8
            t["ratios"] = results.ratios(t["summary"])
        rows = compare.compare(self.old, new, noise_file(0.01))
        self.assertFalse([r for r in rows if r["metric"] == "up_gbit" and r["verdict"] != "within noise"])
        self.assertAlmostEqual(compare.direct_drift(self.old, new)["netns"]["up_gbit"], -0.2)

    def test_first_format_is_read_as_loopback(self):
        old = results.load(os.path.join(REPO, "bench", "results", "2026-11-22T0411Z.json"))
        self.assertEqual(list(old["topologies"]), ["loopback"])
        self.assertAlmostEqual(old["topologies"]["loopback"]["ratios"]["direct"]["up_gbit"], 1.0)


class InvalidFiguresTest(unittest.TestCase):
    """Runs made before the attributed CPU accounting was per process hold negative CPU figures;
    they are dropped on load, never compared."""
    BROKEN = os.path.join(REPO, "bench", "results", "2026-12-06T2325Z.json")

    def test_negative_figures_of_a_recorded_run_are_dropped_and_named(self):
        run = results.load(self.BROKEN)
        loopback = run["topologies"]["loopback"]
        self.assertEqual(set(loopback["invalid"]), {"snisplice auto", "haproxy splice-auto"})
        self.assertAlmostEqual(loopback["invalid"]["snisplice auto"]["paced_own_cpu_s_per_gb"], -14.855, places=3)
        self.assertIsNone(loopback["summary"]["snisplice auto"]["paced_own_cpu_s_per_gb"])
        self.assertIsNone(loopback["ratios"]["snisplice auto"]["paced_own_cpu_s_per_gb"])
        self.assertIsNotNone(loopback["ratios"]["snisplice sockmap"]["paced_own_cpu_s_per_gb"])
        self.assertNotIn("invalid", run["topologies"]["netns"])
        self.assertEqual(len(compare.invalid_lines(run)), 3)

    def test_compare_leaves_them_out(self):
        old, new = recorded("peers-a.json"), results.load(self.BROKEN)
        rows = compare.compare(new, new, None)
        self.assertFalse([r for r in rows if r["path"] == "snisplice auto" and r["topology"] == "loopback"
                          and r["metric"] == "paced_own_cpu_s_per_gb"])
        self.assertTrue([r for r in rows if r["metric"] == "paced_own_cpu_s_per_gb"])
        self.assertFalse([r for r in rows if r["old"] is not None and r["old"] < 0])
        self.assertEqual(compare.invalid_lines(old), [])

    def test_noise_ignores_them(self):
        run = results.load(self.BROKEN)
        noise = compare.measure_noise([run, copy.deepcopy(run)])
        self.assertNotIn("snisplice auto", noise["loopback"]["paced_own_cpu_s_per_gb"])


class IdleCompareTest(unittest.TestCase):
    def test_idle_memory_change_beyond_noise_is_flagged(self):
        old = recorded("idle.json")
        noise = {"idle": compare.measure_idle_noise([old, copy.deepcopy(old)])}
        self.assertEqual(noise["idle"]["snisplice sockmap"]["waiting-warm"]["kib_per_idle"], 0)
        for path in noise["idle"]:
            for scenario in noise["idle"][path]:
                for metric in noise["idle"][path][scenario]:
                    noise["idle"][path][scenario][metric] = 0.10
        new = copy.deepcopy(old)
        new["summary"]["snisplice sockmap"]["waiting-cold"]["kib_per_idle"] *= 1.5    # 50 % more memory
        new["summary"]["nginx ssl_preread"]["waiting-cold"]["kib_per_idle"] *= 1.05   # 5 %: inside
        rows = {(r["path"], r["topology"], r["metric"]): r for r in compare.compare_idle(old, new, noise)}
        self.assertEqual(rows[("snisplice sockmap", "waiting-cold", "kib_per_idle")]["verdict"], "WORSE")
        self.assertEqual(rows[("nginx ssl_preread", "waiting-cold", "kib_per_idle")]["verdict"], "within noise")
        self.assertFalse([r for r in rows.values() if r["verdict"] in ("WORSE", "BETTER")
                          and r["path"] != "snisplice sockmap"])


class CommandTest(unittest.TestCase):
    """bench/compare as a maintainer runs it."""

    def run_compare(self, old, new, *extra):
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for name, data in (("old.json", old), ("new.json", new)):
                paths.append(os.path.join(tmp, name))
                with open(paths[-1], "w") as f:
                    json.dump(data, f)
            return subprocess.run([sys.executable, os.path.join(REPO, "bench", "compare")] + paths + list(extra),
                                  capture_output=True, text=True, timeout=60)

    def test_worse_beyond_noise_fails_when_asked(self):
        old = recorded("peers-a.json")
        new = with_ratio(old, "netns", "snisplice sockmap", "conn_per_s", 0.5)
        with tempfile.NamedTemporaryFile("w", suffix=".json") as noise:
            json.dump(noise_file(0.2), noise)
            noise.flush()
            out = self.run_compare(old, new, "--noise", noise.name, "--fail-on-worse")
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertIn("| netns | snisplice sockmap | conn_per_s |", out.stdout)
            self.assertIn("WORSE", out.stdout)
            self.assertIn("1 of ", out.stdout)
            same = self.run_compare(old, old, "--noise", noise.name, "--fail-on-worse")
            self.assertEqual(same.returncode, 0, same.stdout + same.stderr)
            self.assertIn("0 of ", same.stdout)

    def test_invalid_figures_are_said(self):
        with open(InvalidFiguresTest.BROKEN) as f:
            broken = json.load(f)
        out = self.run_compare(broken, broken, "--noise", "/nonexistent/noise.json")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("new run: INVALID, left out: loopback | snisplice auto | paced_own_cpu_s_per_gb = -14.855",
                      out.stdout)

    def test_noise_from_fewer_than_three_runs_is_said(self):
        old = recorded("peers-a.json")
        with tempfile.NamedTemporaryFile("w", suffix=".json") as noise:
            json.dump(dict(noise_file(0.2), runs=2), noise)
            noise.flush()
            out = self.run_compare(old, old, "--noise", noise.name)
        self.assertIn("from 2 runs only", out.stdout)

    def test_measure_noise_needs_three_runs(self):
        out = subprocess.run([sys.executable, os.path.join(REPO, "bench", "measure-noise"), "--runs", "2",
                              "--output", "/nonexistent/noise.json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 2)
        self.assertIn("--runs must be 3..10", out.stderr)

    def test_missing_noise_file_is_reported(self):
        old = recorded("peers-a.json")
        out = self.run_compare(old, old, "--noise", "/nonexistent/noise.json")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("NOISE UNKNOWN", out.stdout)
        self.assertIn("bench/measure-noise", out.stdout)


if __name__ == "__main__":
    unittest.main()
