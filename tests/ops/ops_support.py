"""What the Python ops tests share: skipping with a printed reason (exit 77, ctest's
SKIP_RETURN_CODE), a free port, a minimal daemon configuration, the sd_notify receiver that
plays systemd's part, and stopping a daemon."""
import os
import shutil
import socket
import struct
import time

SKIP = 77


def skipped(test, reason):
    """Prints why `test` skips; returns the exit code for it."""
    print(f"{test}: skipped: {reason}")
    return SKIP


def missing_prerequisite(binary=None, tools=(), python_yaml=False):
    """Why a test cannot run here (a tool not installed, the binary not built), or None."""
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup-deps installs it)"
    if python_yaml:
        try:
            import yaml  # noqa: F401
        except ImportError:
            return "python3 has no yaml module (Debian package python3-yaml)"
    if binary is not None and not os.access(binary, os.X_OK):
        return f"{binary} is not built"
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reject_all_config(listen_port, metrics_listen, pin_path, **top_level):
    """A daemon configuration: one TLS listener on 127.0.0.1:listen_port whose only route
    rejects, metrics on `metrics_listen` ("" for none), a 1 s shutdown grace, and any further
    top-level scalar keys (splice, access_log...) as given."""
    extra = "".join(f"{key}: {value}\n" for key, value in top_level.items())
    return f"""listeners:
  - name: tls
    listen: ["127.0.0.1:{listen_port}"]
    protocol: tls
    table: edge
tables:
  edge:
    - host: "*"
      action: reject
bpf_pin_path: {pin_path}
metrics:
  listen: "{metrics_listen}"
timeouts:
  shutdown_grace: 1s
{extra}"""


def write_reject_all_config(directory, name, **top_level):
    """reject_all_config on free ports with a pin path of its own (named after the test),
    written to directory/snisplice.yaml; returns (config path, listen port, metrics port,
    pin path)."""
    listen_port, metrics_port = free_port(), free_port()
    pin_path = f"/sys/fs/bpf/snisplice-ops-{name}-{os.getpid()}"
    config = os.path.join(directory, "snisplice.yaml")
    with open(config, "w") as f:
        f.write(reject_all_config(listen_port, f"127.0.0.1:{metrics_port}", pin_path, **top_level))
    return config, listen_port, metrics_port, pin_path


def stop(proc):
    """Kills a daemon a test left running (after a failure)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


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
