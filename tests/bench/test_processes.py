"""bench's process handling (peers.Processes): every process it started is gone at the end, within
a bounded time, and one that ignores SIGTERM is killed and reported."""
import os
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench"))
from benchlib import peers  # noqa: E402

IGNORES_SIGTERM = ("import signal, sys, time\n"
                   "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                   "print('ignoring', flush=True)\n"
                   "time.sleep(60)\n")


def read(path):
    with open(path) as f:
        return f.read()


class StopTest(unittest.TestCase):
    def test_every_process_is_stopped_and_a_stubborn_one_killed(self):
        with tempfile.TemporaryDirectory() as workdir:
            procs = peers.Processes(workdir)
            procs.TERM_SECONDS = 1
            stubborn = procs.start("stubborn", [sys.executable, "-c", IGNORES_SIGTERM])
            polite = procs.start("polite", ["sleep", "60"])
            gone = procs.start("gone", ["true"])
            deadline = time.monotonic() + 10
            while not read(os.path.join(workdir, "stubborn.log")) or gone.poll() is None:
                self.assertLess(time.monotonic(), deadline, "the test's processes did not start")
                time.sleep(0.05)
            start = time.monotonic()
            outcome = procs.stop_all()
            self.assertLess(time.monotonic() - start, procs.TERM_SECONDS + procs.KILL_SECONDS)
            self.assertEqual(outcome, {"stubborn": "SIGKILL", "polite": "SIGTERM", "gone": "exited"})
            for proc in (stubborn, polite, gone):
                self.assertIsNotNone(proc.returncode)   # reaped
            self.assertEqual(stubborn.returncode, -9)


if __name__ == "__main__":
    unittest.main()
