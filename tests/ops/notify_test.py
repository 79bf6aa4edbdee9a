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
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(listen_port, metrics_port, pin_path):
    return f"""listeners:
  - name: tls
    listen: ["127.0.0.1:{listen_port}"]
    protocol: tls
    table: edge
tables:
  edge:
    - host: "*"
      action: reject
splice: userspace
bpf_pin_path: {pin_path}
metrics:
  listen: "127.0.0.1:{metrics_port}"
access_log: "off"
timeouts:
  shutdown_grace: 1s
"""


class Notifications:
    """Receives sd_notify datagrams with the sender's credentials."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(path)
        self.log = []

    def next(self, deadline):
        """One message as (pid, {key: value}), or None when the deadline passes."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        self.sock.settimeout(remaining)
        try:
            data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _, _ = struct.unpack("iII", payload[:12])
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.log.append(fields)
        return pid, fields

    def wait_for(self, key, expected_pid, seconds=10.0, skip=("WATCHDOG", "STATUS")):
        """The next message carrying `key`; fails on an unexpected state message before it."""
        deadline = time.monotonic() + seconds
        while True:
            got = self.next(deadline)
            if got is None:
                raise AssertionError(f"no {key}=1 within {seconds}s; received so far: {self.log}")
            pid, fields = got
            if pid != expected_pid:
                raise AssertionError(f"notification from pid {pid}, not the main pid {expected_pid}: {fields}")
            if key in fields:
                return fields
            unexpected = [k for k in fields if k not in skip]
            if unexpected:
                raise AssertionError(f"expected {key}=1, got {fields}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    if not os.access(binary, os.X_OK):
        print(f"ops_notify: skipped: {binary} is not built")
        return SKIP
    failures = []
    with tempfile.TemporaryDirectory(prefix="snisplice-notify-") as tmp:
        listen_port, metrics_port = free_port(), free_port()
        pin_path = f"/sys/fs/bpf/snisplice-ops-notify-{os.getpid()}"
        config = os.path.join(tmp, "snisplice.yaml")
        with open(config, "w") as f:
            f.write(config_text(listen_port, metrics_port, pin_path))
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
            if proc.poll() is None:
                proc.kill()
                proc.wait()
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
