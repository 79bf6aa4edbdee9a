#!/usr/bin/env python3
"""The sd_notify protocol the unit's Type=notify relies on, checked against the real binary.

PID 1 here is not systemd, so the test plays systemd's part: it binds an AF_UNIX datagram
socket, passes it as NOTIFY_SOCKET (and WATCHDOG_USEC), and checks what the daemon sends:
READY=1 only once its listeners accept, RELOADING=1 + MONOTONIC_USEC then READY=1 around
SIGHUP (also when the new file is refused), WATCHDOG=1 pings, STOPPING=1 on SIGTERM, exit 0.
Every message must come from the main PID (the unit sets NotifyAccess=main).

usage: notify_test.py SNISPLICE_BINARY
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops_support import Notifications, missing_prerequisite, skipped, stop, write_reject_all_config  # noqa: E402



def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    reason = missing_prerequisite(binary)
    if reason:
        return skipped("ops_notify", reason)
    failures = []
    with tempfile.TemporaryDirectory(prefix="snisplice-notify-") as tmp:
        config, listen_port, _, pin_path = write_reject_all_config(tmp, "notify", splice="userspace",
                                                                   access_log='"off"')
        notify = Notifications(os.path.join(tmp, "notify"))
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(tmp, "notify"), WATCHDOG_USEC="1000000")
        env.pop("WATCHDOG_PID", None)
        stderr_path = os.path.join(tmp, "stderr")
        with open(stderr_path, "w") as stderr:
            proc = subprocess.Popen([binary, "-c", config], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            notify.wait_for("READY", proc.pid, seconds=20)
            # READY=1 promises bound listeners: a connect right now must succeed.
            with socket.create_connection(("127.0.0.1", listen_port), timeout=2):
                pass
            print("ok: READY=1, and the listener accepts at once")

            deadline = time.monotonic() + 3
            pings = 0
            while pings < 2:
                got = notify.next(deadline)
                if got is None:
                    raise AssertionError(f"fewer than 2 WATCHDOG=1 in 3s with WATCHDOG_USEC=1s: {notify.log}")
                if got[1].get("WATCHDOG") == "1":
                    pings += 1
            print("ok: WATCHDOG=1 pings with WATCHDOG_USEC set")

            os.kill(proc.pid, signal.SIGHUP)
            fields = notify.wait_for("RELOADING", proc.pid)
            if not fields.get("MONOTONIC_USEC", "").isdigit():
                raise AssertionError(f"RELOADING=1 without MONOTONIC_USEC (systemd 253+ wants it): {fields}")
            notify.wait_for("READY", proc.pid)
            print("ok: SIGHUP gives RELOADING=1 + MONOTONIC_USEC, then READY=1")

            with open(config, "w") as f:
                f.write("listeners: [\n")
            os.kill(proc.pid, signal.SIGHUP)
            notify.wait_for("RELOADING", proc.pid)
            notify.wait_for("READY", proc.pid)
            if proc.poll() is not None:
                raise AssertionError("the daemon exited on a refused reload")
            with socket.create_connection(("127.0.0.1", listen_port), timeout=2):
                pass
            print("ok: a refused reload still ends in READY=1 and the daemon keeps serving")

            os.kill(proc.pid, signal.SIGTERM)
            notify.wait_for("STOPPING", proc.pid)
            code = proc.wait(timeout=15)
            if code != 0:
                raise AssertionError(f"exit code {code} after SIGTERM, expected 0")
            print("ok: SIGTERM gives STOPPING=1 and exit 0")
        except (AssertionError, OSError, subprocess.TimeoutExpired) as e:
            failures.append(str(e))
        finally:
            stop(proc)
            if os.path.isdir(pin_path):
                subprocess.run(["rm", "-rf", pin_path], check=False)
            with open(stderr_path) as f:
                daemon_log = f.read()
    if failures:
        for failure in failures:
            print(f"FAIL: {failure}")
        print("daemon stderr:\n" + daemon_log[-4000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
