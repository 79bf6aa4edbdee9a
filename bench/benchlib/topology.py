"""Where the client, the proxies and the backend run.

Loopback: everything on 127.0.0.1 of this host. Namespaces: three network namespaces (client,
proxy, backend), named after this process's pid so concurrent runs never collide, joined by two
veth pairs, so every segment crosses a device and a receive softirq as from a NIC:

    client ns  cli0 198.51.100.1/30 --- prx-c 198.51.100.2/30  proxy ns  (forwards, for direct)
    proxy ns   prx-s 198.51.100.5/30 --- srv0 198.51.100.6/30  backend ns

Only 198.51.100.0/24 (TEST-NET-2) is used, each namespace routes exactly these /30s, and the
routes are checked with `ip route get` before anything runs. RPS (receive packet steering) is
switched off or on for the proxy namespace's two devices; every namespace reuses ports in
TIME_WAIT as loopback does (Namespaces.SYSCTLS says why). Namespaces are deleted on close, which
also deletes their veths; namespaces a killed earlier run left behind (its pid gone) are deleted
on setup."""
import contextlib
import ctypes
import json
import os
import re
import subprocess

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
PREFIX = "snibench"


def _ip(*args, netns=None, check=True):
    argv = ["ip"] + (["-n", netns] if netns else []) + list(args)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip()}")
    return out.stdout


class Loopback:
    name = "loopback"
    description = "client, proxies and backend on 127.0.0.1 of one host"
    proxy_host = "127.0.0.1"
    backend_host = "127.0.0.1"

    def setup(self):
        pass

    def close(self):
        pass

    @contextlib.contextmanager
    def inside(self, role):
        yield

    def interface_bytes(self):
        return {}

    def describe(self):
        return {"name": self.name, "description": self.description}


class Namespaces:
    """Three namespaces and two veth pairs; `inside(role)` moves this (single-threaded) process into
    one of them, so sockets opened and processes started there belong to it."""

    description = "client, proxy and backend in their own network namespaces, joined by veth pairs"
    proxy_host = "198.51.100.2"
    backend_host = "198.51.100.6"
    # role -> {device: (address/prefix)}
    DEVICES = {
        "client": {"cli0": "198.51.100.1/30"},
        "proxy": {"prx-c": "198.51.100.2/30", "prx-s": "198.51.100.5/30"},
        "backend": {"srv0": "198.51.100.6/30"},
    }
    # Set in every namespace. Each reconnect leaves a port in TIME_WAIT for 60 s; the proxies close
    # towards the backend first, all from 198.51.100.5 to the one backend address and port, and
    # the kernel's default tcp_tw_reuse (2) reuses such ports for loopback only. connect() tries
    # the even ports first: once TIME_WAIT held nearly all 14,116 even ports of the default range,
    # each upstream connect walked all of them, and the paths measured late in a round fell to
    # about 200 connections/s (docs/benchmarks.md). With reuse on and a range above every port
    # the run listens on, the namespaces treat every path as loopback does.
    SYSCTLS = {"net.ipv4.tcp_tw_reuse": "1", "net.ipv4.ip_local_port_range": "20000 65535"}
    # role -> (destination, expected device, expected gateway or None)
    ROUTES = {
        "client": [("198.51.100.2", "cli0", None), ("198.51.100.6", "cli0", "198.51.100.2")],
        "proxy": [("198.51.100.1", "prx-c", None), ("198.51.100.6", "prx-s", None)],
        "backend": [("198.51.100.5", "srv0", None), ("198.51.100.1", "srv0", "198.51.100.5")],
    }

    def __init__(self, rps):
        self.rps = rps
        self.name = "netns-rps" if rps else "netns"
        tag = os.getpid()
        self.netns = {role: f"{PREFIX}{tag}-{role[0]}" for role in ("client", "proxy", "backend")}
        self.created = []
        self._libc = ctypes.CDLL(None, use_errno=True)

    def describe(self):
        return {"name": self.name, "description": self.description + (", RPS on" if self.rps else ", RPS off"),
                "namespaces": self.netns, "devices": self.DEVICES, "rps_cpus": self.rps_mask() if self.rps else "0",
                "sysctls": self.SYSCTLS}

    @staticmethod
    def rps_mask():
        return format((1 << os.cpu_count()) - 1, "x")

    def setup(self):
        remove_stale_namespaces()
        try:
            for role, name in self.netns.items():
                _ip("netns", "add", name)
                self.created.append(name)
                _ip("link", "set", "lo", "up", netns=name)
                for key, value in self.SYSCTLS.items():
                    self._sysctl(name, key, value)
            cli, prx, srv = self.netns["client"], self.netns["proxy"], self.netns["backend"]
            _ip("link", "add", "prx-c", "type", "veth", "peer", "name", "cli0", "netns", cli, netns=prx)
            _ip("link", "add", "prx-s", "type", "veth", "peer", "name", "srv0", "netns", srv, netns=prx)
            for role, devices in self.DEVICES.items():
                for device, address in devices.items():
                    _ip("addr", "add", address, "dev", device, netns=self.netns[role])
                    _ip("link", "set", device, "up", netns=self.netns[role])
            _ip("route", "add", "198.51.100.4/30", "via", "198.51.100.2", "dev", "cli0", netns=cli)
            _ip("route", "add", "198.51.100.0/30", "via", "198.51.100.5", "dev", "srv0", netns=srv)
            self._sysctl(prx, "net.ipv4.ip_forward", "1")   # the direct path crosses the proxy host too
            for device in self.DEVICES["proxy"]:
                self._set_rps(device, self.rps_mask() if self.rps else "0")
            self.check_routes()
        except BaseException:
            self.close()
            raise

    def _sysctl(self, netns, key, value):
        subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", f"{key}={value}"],
                       check=True, timeout=30)

    def _set_rps(self, device, mask):
        path = f"/sys/class/net/{device}/queues/rx-0/rps_cpus"
        # `ip netns exec` mounts the namespace's own sysfs, where its devices are.
        out = subprocess.run(["ip", "netns", "exec", self.netns["proxy"], "sh", "-c", f"echo {mask} > {path} && cat {path}"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0 or int(out.stdout.strip().replace(",", ""), 16) != int(mask, 16):
            raise RuntimeError(f"setting {path} to {mask} in {self.netns['proxy']} failed: {out.stderr.strip() or out.stdout}")

    def check_routes(self):
        """Every address the run uses is reached over the veth it must cross (`ip route get`)."""
        for role, routes in self.ROUTES.items():
            for destination, device, gateway in routes:
                route = json.loads(_ip("-j", "route", "get", destination, netns=self.netns[role]))[0]
                if route.get("dev") != device or route.get("gateway") != gateway:
                    raise RuntimeError(f"ip route get {destination} in the {role} namespace gave {route}, "
                                       f"expected dev {device}" + (f" via {gateway}" if gateway else ""))

    @contextlib.contextmanager
    def inside(self, role):
        original = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open(os.path.join(NETNS_DIR, self.netns[role]), os.O_RDONLY)
        try:
            self._setns(target)
            try:
                yield
            finally:
                self._setns(original)
        finally:
            os.close(target)
            os.close(original)

    def _setns(self, fd):
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns: {os.strerror(errno)}")

    def interface_bytes(self):
        """device -> {rx_bytes, tx_bytes, rx_packets, tx_packets}, for every veth end. Read from
        /proc/thread-self/net/dev inside each namespace (no subprocess: this runs around every
        measurement)."""
        counters = {}
        for role, devices in self.DEVICES.items():
            with self.inside(role):
                with open("/proc/thread-self/net/dev") as f:
                    lines = f.read().splitlines()[2:]
            for line in lines:
                device, _, numbers = line.partition(":")
                if device.strip() in devices:
                    fields = [int(x) for x in numbers.split()]
                    counters[device.strip()] = {"rx_bytes": fields[0], "rx_packets": fields[1],
                                                "tx_bytes": fields[8], "tx_packets": fields[9]}
        return counters

    def close(self):
        for name in reversed(self.created):
            _ip("netns", "del", name, check=False)
        self.created = []


def remove_stale_namespaces():
    """Deletes namespaces of this tool whose creating process is gone (a run killed by SIGKILL)."""
    for line in _ip("netns", "list", check=False).splitlines():
        match = re.match(rf"({PREFIX}(\d+)-[cpb])\b", line)
        if match and not os.path.exists(f"/proc/{match.group(2)}"):
            _ip("netns", "del", match.group(1), check=False)


def make(name):
    if name == "loopback":
        return Loopback()
    if name in ("netns", "netns-rps"):
        return Namespaces(rps=name == "netns-rps")
    raise ValueError(f"unknown topology {name!r}: loopback, netns or netns-rps")


def interface_delta(before, after):
    return {dev: {k: after[dev][k] - before[dev].get(k, 0) for k in after[dev]} for dev in after if dev in before}
