"""The attributed CPU accounting (bench/benchlib/cpu.py) on recorded /proc samples
(tests/bench/data/cpu-samples.json says how they were recorded)."""
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench"))
from benchlib import cpu, procfs  # noqa: E402

with open(os.path.join(HERE, "data", "cpu-samples.json")) as f:
    RECORDED = json.load(f)
HZ = RECORDED["ticks_per_second"]
RUN = RECORDED["paced_run"]
ENDED = RECORDED["kworker_ended"]


def texts(moment):
    return {int(pid): text for pid, text in moment["stat"].items()}


def run_sample(which, sessions=None, extra=None):
    moment = RUN[which]
    return cpu.sample_of({**texts(moment), **(extra or {})}, set(RUN["sessions"] if sessions is None else sessions),
                         moment["children_seconds"], HZ)


def kernel_sample(which):
    return cpu.sample_of({int(pid): text for pid, text in ENDED[which].items()}, set(), 0.0, HZ)


def total_ticks(stat_texts):
    return sum(procfs.parse_stat(int(pid), text).cpu_ticks for pid, text in stat_texts.items())


class AttributedCpuTest(unittest.TestCase):
    def test_a_kernel_thread_ending_between_the_samples_takes_nothing_away(self):
        # The two kworkers that ran in between: kworker/0:1 83 -> 85, kworker/1:1 366 -> 369 ticks.
        self.assertAlmostEqual(cpu.attributed_between(kernel_sample("before"), kernel_sample("after")),
                               (2 + 3) / HZ, places=6)

    def test_subtracting_totals_went_negative_on_the_same_samples(self):
        # As before the fix: kworker/1:0's 205 ticks leave the sum with it.
        self.assertEqual(total_ticks(ENDED["after"]) - total_ticks(ENDED["before"]), 5 - 205)

    def test_a_paced_run(self):
        children = RUN["after"]["children_seconds"] - RUN["before"]["children_seconds"]
        # kdamond.0 +1, kworker/0:0 +1, the load backend +4, snisplice +3 ticks, and the load client.
        self.assertAlmostEqual(cpu.attributed_between(run_sample("before"), run_sample("after")),
                               (1 + 1 + 4 + 3) / HZ + children, places=6)

    def test_only_this_runs_sessions_and_kernel_threads_count(self):
        children = RUN["after"]["children_seconds"] - RUN["before"]["children_seconds"]
        kernel_only = cpu.attributed_between(run_sample("before", ()), run_sample("after", ()))
        self.assertAlmostEqual(kernel_only, (1 + 1) / HZ + children, places=6)

    def test_a_reused_pid_is_another_process(self):
        # Made from a recorded line: a kworker with 1816 ticks ends and a new one gets its pid.
        template = RUN["before"]["stat"]["3426"]
        start = procfs.parse_stat(3426, template).start_ticks

        def kworker(name, ticks, started):
            fields = template.split(") ", 1)[1].split()
            fields[11], fields[12], fields[19] = "0", str(ticks), str(started)
            return {20573: f"20573 ({name}) " + " ".join(fields)}

        before = run_sample("before", extra=kworker("kworker/0:2-events", 1816, start - 5000))
        after = run_sample("after", extra=kworker("kworker/0:3-events", 2, start + 90000))
        children = RUN["after"]["children_seconds"] - RUN["before"]["children_seconds"]
        self.assertAlmostEqual(cpu.attributed_between(before, after), (1 + 1 + 4 + 3 + 2) / HZ + children, places=6)

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
