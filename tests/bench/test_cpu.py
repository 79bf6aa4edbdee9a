"""The attributed CPU accounting (bench/benchlib/cpu.py) on recorded /proc samples
(tests/bench/data/cpu-samples.json says how they were made)."""
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench"))
from benchlib import cpu, procfs  # noqa: E402

with open(os.path.join(HERE, "data", "cpu-samples.json")) as f:
    RECORDED = json.load(f)
ENDED_PID = 20573


def sample(which, sessions=None):
    moment = RECORDED[which]
    texts = {int(pid): text for pid, text in moment["stat"].items()}
    return cpu.sample_of(texts, set(RECORDED["sessions"] if sessions is None else sessions),
                         moment["children_seconds"], RECORDED["ticks_per_second"])


class AttributedCpuTest(unittest.TestCase):
    def test_a_kernel_thread_ending_between_the_samples_takes_nothing_away(self):
        children = RECORDED["after"]["children_seconds"] - RECORDED["before"]["children_seconds"]
        # What each process did in between, read off the recorded lines: kdamond.0 +1,
        # kworker/0:0 +1, the load backend +4, snisplice +3 ticks; the kworker that reused the
        # ended one's pid ran 2 ticks, all of them in between.
        expected = (1 + 1 + 4 + 3 + 2) / 100 + children
        self.assertAlmostEqual(cpu.attributed_between(sample("before"), sample("after")), expected, places=6)

    def test_the_recorded_samples_reproduce_the_old_negative_figure(self):
        # Subtracting totals, as before: the ended kworker's 1816 ticks leave the sum.
        def total(which):
            return sum(procfs.parse_stat(int(p), t).cpu_ticks for p, t in RECORDED[which]["stat"].items()
                       if int(p) in RECORDED["sessions"] or procfs.is_kernel_thread(procfs.parse_stat(int(p), t)))
        self.assertLess(total("after") - total("before"), -1800)

    def test_a_reused_pid_is_another_process(self):
        before, after = sample("before"), sample("after")
        mine = [key for key in after["ticks"] if key[0] == ENDED_PID]
        self.assertEqual(len(mine), 1)
        self.assertNotIn(mine[0], before["ticks"])
        self.assertEqual(after["ticks"][mine[0]], 2)

    def test_only_this_runs_sessions_and_kernel_threads_count(self):
        kernel_only = cpu.attributed_between(sample("before", ()), sample("after", ()))
        children = RECORDED["after"]["children_seconds"] - RECORDED["before"]["children_seconds"]
        self.assertAlmostEqual(kernel_only, (1 + 1 + 2) / 100 + children, places=6)
        self.assertFalse([key for key in sample("after", ())["ticks"] if key[0] in RECORDED["sessions"]])

    def test_stat_fields_are_counted_from_the_last_parenthesis(self):
        text = "4242 (a) b (c d) S 7 4242 99 0 -1 0 0 0 0 0 12 30 0 0 20 0 3 0 555 0 0"
        self.assertEqual(procfs.parse_stat(4242, text), procfs.Process(4242, 7, 99, 555, 42))

    def test_live_sample_of_this_process_session_grows(self):
        sessions = {os.getsid(0)}
        before = cpu.attributed_sample(sessions)
        sum(i * i for i in range(2_000_000))   # some CPU time in this session
        self.assertGreater(cpu.attributed_between(before, cpu.attributed_sample(sessions)), 0)


if __name__ == "__main__":
    unittest.main()
