#!/usr/bin/env python3
"""Every system call the daemon makes is allowed by the unit's SystemCallFilter=.

A seccomp filter that misses one call kills the service (or fails the call with EPERM) only
when that path runs, so the daemon is traced with strace through start-up (default splice
mode), a refused connection, a metrics scrape, a SIGHUP reload and a SIGTERM stop, plus
`--check` (ExecStartPre) and `--version`. The allowed set is the unit's SystemCallFilter=
lines expanded with `systemd-analyze syscall-filter`: the first line allows, each "~" line
removes.

usage: syscalls_test.py SOURCE_DIR SNISPLICE_BINARY
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops_support import Notifications, missing_prerequisite, skipped, stop, write_reject_all_config  # noqa: E402



def expand(names, cache):
    """System call names in a list of names and @groups, groups expanded recursively."""
    calls = set()
    for name in names:
        if not name.startswith("@"):
            calls.add(name)
            continue
        if name not in cache:
            out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True,
                                 check=True).stdout
            members = [line.split()[0] for line in out.splitlines()
                       if line.startswith("    ") and line.split() and not line.split()[0].startswith("#")]
            cache[name] = set()  # guards against cycles
            cache[name] = expand(members, cache)
        calls |= cache[name]
    return calls


def allowed_calls(unit_text):
    lines = re.findall(r"^SystemCallFilter=(.*)$", unit_text, re.M)
    if not lines or lines[0].startswith("~"):
        raise AssertionError("the unit's first SystemCallFilter= is not an allow list")
    cache = {}
    allowed = expand(lines[0].split(), cache)
    for line in lines[1:]:
        if line.startswith("~"):
            allowed -= expand(line[1:].split(), cache)
        else:
            allowed |= expand(line.split(), cache)
    return allowed


def traced(command, trace_path, **popen):
    return subprocess.Popen(["strace", "-f", "-qq", "-o", trace_path, *command], **popen)


def calls_in(trace_path):
    with open(trace_path) as f:
        return set(re.findall(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", f.read(), re.M))


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    source_dir, binary = sys.argv[1], os.path.abspath(sys.argv[2])
    reason = missing_prerequisite(binary, tools=("strace", "systemd-analyze"))
    if reason:
        return skipped("ops_syscalls", reason)
    if os.environ.get("SNISPLICE_SANITIZE") == "ON":
        # The sanitizer runtime makes its own system calls (and dislikes ptrace): the unit's
        # filter is judged against the production build.
        return skipped("ops_syscalls", "this is an ASan/UBSan build")
    probe = subprocess.run(["strace", "-o", "/dev/null", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return skipped("ops_syscalls", f"strace cannot trace here: {probe.stderr.strip()}")
    with open(os.path.join(source_dir, "systemd", "snisplice.service")) as f:
        allowed = allowed_calls(f.read())

    used = set()
    failures = []
    with tempfile.TemporaryDirectory(prefix="snisplice-sys-") as tmp:
        config, listen_port, metrics_port, pin_path = write_reject_all_config(tmp, "sys")
        for args in (["-c", config, "--check"], ["--version"]):
            trace = os.path.join(tmp, "trace-short")
            proc = traced([binary, *args], trace, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if proc.wait(timeout=60) != 0:
                failures.append(f"snisplice {' '.join(args)} failed under strace")
            used |= calls_in(trace)

        notify_path = os.path.join(tmp, "notify")
        notify = Notifications(notify_path)
        trace = os.path.join(tmp, "trace-daemon")
        env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="1000000")
        proc = traced([binary, "-c", config], trace, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # strace forks the daemon: notifications come from its child, not proc.pid.
            deadline = time.monotonic() + 30
            while True:
                got = notify.next(deadline)
                if got is None:
                    raise AssertionError("no READY=1 within 30s under strace")
                daemon_pid, fields = got
                if "READY" in fields:
                    break
            with socket.create_connection(("127.0.0.1", listen_port), timeout=2) as s:
                s.sendall(b"\x16\x03\x01\x00\x05hello")
                s.settimeout(2)
                try:
                    s.recv(64)
                except OSError:
                    pass
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5):
                pass
            os.kill(daemon_pid, signal.SIGHUP)
            notify.wait_for("RELOADING", daemon_pid)
            notify.wait_for("READY", daemon_pid)
            time.sleep(1.2)  # at least one watchdog ping
            os.kill(daemon_pid, signal.SIGTERM)
            if proc.wait(timeout=30) != 0:
                failures.append("the daemon did not exit 0 on SIGTERM under strace")
        except (AssertionError, OSError, subprocess.TimeoutExpired) as e:
            failures.append(str(e))
        finally:
            stop(proc)
            if os.path.isdir(pin_path):
                shutil.rmtree(pin_path, ignore_errors=True)
        used |= calls_in(trace)

    # Made by strace's own exec of the target before the daemon runs.
    used.discard("execve")
    denied = sorted(used - allowed)
    print(f"the daemon made {len(used)} distinct system calls; the unit allows {len(allowed)}")
    if denied:
        failures.append(f"system calls the unit's SystemCallFilter= would refuse: {' '.join(denied)}")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
