#!/usr/bin/env python3
"""The daemon starts and serves with exactly the credentials snisplice.service gives it.

PID 1 here is not systemd, so the unit's credentials are reproduced by hand: a private mount
namespace with a fresh bpffs laid out as the tmpfiles snippet does it (/sys/fs/bpf 1711, the
pin directory 0700 owned by the service user), an unprivileged uid ("nobody" standing in for
"snisplice"), the unit's CapabilityBoundingSet and AmbientCapabilities, and no_new_privs.
With the default splice mode and a listener below port 1024, the daemon must send READY=1,
accept, hold no capability outside the unit's set, and exit 0 on SIGTERM.

usage: credentials_test.py SOURCE_DIR SNISPLICE_BINARY
"""
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops_support import Notifications, missing_prerequisite, reject_all_config, skipped, stop  # noqa: E402

CAP_BITS = {"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_PERFMON": 38, "CAP_BPF": 39}


def unit_setting(unit_text, key):
    match = re.search(rf"^{key}=(.*)$", unit_text, re.M)
    return match.group(1).split() if match else []


def free_low_port():
    for port in range(900, 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in 900-999 on 127.0.0.1")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    source_dir, binary = sys.argv[1], os.path.abspath(sys.argv[2])
    if os.geteuid() != 0:
        return skipped("ops_credentials", "needs root to build the unit's credentials (setpriv, mount namespace)")
    reason = missing_prerequisite(binary, tools=("setpriv", "unshare"))
    if reason:
        return skipped("ops_credentials", reason)
    with open(os.path.join(source_dir, "systemd", "snisplice.service")) as f:
        unit = f.read()
    bounding = unit_setting(unit, "CapabilityBoundingSet")
    ambient = unit_setting(unit, "AmbientCapabilities")
    if unit_setting(unit, "NoNewPrivileges") != ["yes"] or unit_setting(unit, "User") != ["snisplice"]:
        print("FAIL: the unit no longer sets User=snisplice and NoNewPrivileges=yes: update this test")
        return 1
    unknown = [c for c in bounding + ambient if c not in CAP_BITS]
    if unknown:
        print(f"FAIL: capabilities {unknown} unknown to this test: add their bit numbers")
        return 1
    nobody = pwd.getpwnam("nobody")
    caps = ",".join("+" + c[4:].lower() for c in ambient)
    bound = ",".join("+" + c[4:].lower() for c in bounding)

    port = free_low_port()
    with tempfile.TemporaryDirectory(prefix="snisplice-cred-") as tmp:
        os.chmod(tmp, 0o755)
        config = os.path.join(tmp, "snisplice.yaml")
        with open(config, "w") as f:
            f.write(reject_all_config(port, "", "/sys/fs/bpf/snisplice", access_log='"off"'))
        os.chmod(config, 0o644)
        notify_path = os.path.join(tmp, "notify")
        notify = Notifications(notify_path)
        os.chmod(notify_path, 0o777)
        # The tmpfiles snippet's layout, on a bpffs private to this namespace.
        script = (f"mount -t bpf -o mode=1711 bpf /sys/fs/bpf && "
                  f"mkdir -m 0700 /sys/fs/bpf/snisplice && "
                  f"chown {nobody.pw_uid}:{nobody.pw_gid} /sys/fs/bpf/snisplice && "
                  f"exec setpriv --reuid={nobody.pw_uid} --regid={nobody.pw_gid} --clear-groups "
                  f"--inh-caps=-all,{caps} --ambient-caps=-all,{caps} --bounding-set=-all,{bound} "
                  f"--no-new-privs {binary} -c {config}")
        log_path = os.path.join(tmp, "log")
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        with open(log_path, "w") as log:
            proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                    env=env, stdout=log, stderr=log)
        failures = []
        try:
            # unshare and sh exec into the daemon: the pid stays the same.
            notify.wait_for("READY", proc.pid, seconds=20)
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
            print(f"ok: READY=1 as uid {nobody.pw_uid} with {' '.join(ambient)}; port {port} accepts")
            with open(f"/proc/{proc.pid}/status") as f:
                status = f.read()
            allowed = sum(1 << CAP_BITS[c] for c in bounding)
            for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
                value = int(re.search(rf"^{field}:\s*([0-9a-f]+)$", status, re.M).group(1), 16)
                if value & ~allowed:
                    failures.append(f"{field} {value:x} holds capabilities outside the unit's set {allowed:x}")
            print("ok: no capability outside the unit's set")
            os.kill(proc.pid, signal.SIGTERM)
            notify.wait_for("STOPPING", proc.pid)
            code = proc.wait(timeout=15)
            if code != 0:
                failures.append(f"exit code {code} after SIGTERM")
            else:
                print("ok: exit 0 on SIGTERM")
        except (AssertionError, OSError, subprocess.TimeoutExpired) as e:
            failures.append(str(e))
        finally:
            stop(proc)
            with open(log_path) as f:
                daemon_log = f.read()
    for failure in failures:
        print(f"FAIL: {failure}")
    if failures:
        print("daemon log:\n" + daemon_log[-4000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
