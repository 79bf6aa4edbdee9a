"""A SYN flood against the daemon, end to end, with legitimate clients connecting meanwhile.

snisplice runs in a server network namespace with its XDP program on the veth (native mode);
legitimate clients (4 source addresses, paced) and the flood (bench/xdp/synflood.c over
AF_PACKET) run in a client namespace. Everything stays inside 198.51.100.0/24 and the two
namespaces made here. Phases, one daemon, the config changed by SIGHUP between them:
  baseline    no flood, no limit;
  flood/off   a flood from 16 sources, no limit;
  conn/off    a connection flood: 4 hosts connecting and closing as fast as they can;
  flood/limit, conn/limit  the same floods, xdp.rate_limit enforce (50 SYN/s, burst 100 per
              source);
  flood/cookie a flood from 230 spoofed sources, xdp.syncookie on, with the netfilter SYNPROXY
              and conntrack on the proxy port that the cookie mode needs (docs/syn-flood.md);
  flood/auto  the same with xdp.syncookie auto: cookies only while the port sees more than
              1000 SYN/s, SYNPROXY answering the rest;
  reference   the same flood with the XDP cookies off: the netfilter SYNPROXY answers it all.
Each phase measures legitimate connections served per second, their p50 connect time, the
proxy's CPU and the XDP verdict counters, and prints a table. Done when, under the flood, the
limit and the cookie mode each keep legitimate clients at >= 80% of their unflooded rate.

Bounded by default (3 s per phase, at most 6000 flood packets per phase); docs/syn-flood.md
shows a longer run with SNISPLICE_FLOOD_SECONDS / SNISPLICE_FLOOD_PACKETS. Needs root: run as
`python3 test_syn_flood.py` (exit 77 = skipped, with the reason printed)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

from harness import BIN, Process, ProxyTest, client_hello, free_port, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NET = "198.51.100"
SERVER = f"{NET}.1"
NET6 = "2001:db8:51"            # IPv6 documentation prefix, inside the namespaces only
SERVER6, LEGIT6 = f"{NET6}::1", f"{NET6}::2"
LEGIT = [f"{NET}.{i}" for i in range(2, 6)]
CONNECTORS = [f"{NET}.{i}" for i in range(60, 64)]  # the connection flood: 4 hosts, 4 threads each
FLOOD_FIRST = f"{NET}.100"      # 16 flooding hosts: .100-.115
SPOOF_FIRST = f"{NET}.20"       # 230 spoofed sources: .20-.249
SPOOFED = 230
SECONDS = float(os.environ.get("SNISPLICE_FLOOD_SECONDS", "3"))
PACKETS = int(os.environ.get("SNISPLICE_FLOOD_PACKETS", "6000"))
LEGIT_RATE = 25                 # connections/s per legitimate source: 100/s in all
SYN_PER_SECOND, BURST = 50, 100
AUTO_THRESHOLD = 1000           # SYN/s on the port: the legitimate 100/s stay below it
# enum allowlist_verdict order (ebpf/include/xdp_abi.h): the index is the pinned counter key
VERDICTS = ("pass", "drop", "would_drop", "rate_limited", "would_rate_limit", "syncookie_sent",
            "syncookie_bad")


def sh(*argv, check=True, timeout=60, input=None):
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout, input=input)


def why_not():
    if os.geteuid() != 0:
        return "needs root (network namespaces, XDP, bpffs, nftables)"
    for tool in ("ip", "nsenter", "nft", "bpftool", "cc", "clang", "gcc", "setpriv"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not os.path.exists(BIN):
        return f"{BIN} is not built"
    if NET + "." in sh("ip", "route", "show").stdout:
        return f"{NET}.0/24 is already routed on this host"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as conf:
        conf.write(CHECK_CONFIG)
        conf.flush()
        check = subprocess.run([BIN, "-c", conf.name, "--check"], capture_output=True, text=True)
    if check.returncode != 0:
        return "this build's config loader refuses the flood settings: " + check.stderr.strip()
    return None


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[0] + v[2] + v[5] + v[6] + v[7], sum(v)  # user system irq softirq steal, total


class SynFlood(ProxyTest):
    def setUp(self):
        super().setUp()
        tag = f"{os.getpid() % 100000}"
        self.srv, self.cli = f"snfsrv{tag}", f"snfcli{tag}"
        self.srv_if, self.cli_if = f"fs{tag}", f"fc{tag}"
        self.pin = f"/sys/fs/bpf/snisplice-e2e-synflood-{tag}"
        self.later(lambda: sh("rm", "-rf", self.pin, check=False))
        for ns in (self.srv, self.cli):
            sh("ip", "netns", "add", ns)
            self.later(lambda ns=ns: sh("ip", "netns", "del", ns, check=False))
        sh("ip", "link", "add", self.srv_if, "netns", self.srv, "type", "veth", "peer", "name", self.cli_if,
           "netns", self.cli)
        self.ns(self.srv, "ip", "addr", "add", f"{SERVER}/24", "dev", self.srv_if)
        for address in LEGIT + CONNECTORS:
            self.ns(self.cli, "ip", "addr", "add", f"{address}/24", "dev", self.cli_if)
        for ns, dev in ((self.srv, self.srv_if), (self.cli, self.cli_if)):
            self.ns(ns, "ip", "link", "set", "lo", "up")
            self.ns(ns, "ip", "link", "set", dev, "up")
        self.ns(self.srv, "ip", "-6", "addr", "add", f"{SERVER6}/64", "dev", self.srv_if, "nodad")
        self.ns(self.cli, "ip", "-6", "addr", "add", f"{LEGIT6}/64", "dev", self.cli_if, "nodad")
        self.assertIn(self.cli_if, self.ns(self.cli, "ip", "route", "get", SERVER).stdout)
        self.assertIn(self.cli_if, self.ns(self.cli, "ip", "-6", "route", "get", SERVER6).stdout)
        # A native-mode XDP_TX on a veth hands the frame to the peer's XDP ring, which exists
        # only while the peer has an XDP program too (measured: with GRO on instead, the
        # SYN-ACKs vanish): the client side gets one that passes everything.
        xdp_pass = os.path.join(self.dir, "xdp_pass")
        with open(xdp_pass + ".c", "w") as f:
            f.write(XDP_PASS)
        sh("clang", "-O2", "-target", "bpf", f"-I/usr/include/{sh('gcc', '-print-multiarch').stdout.strip()}",
           "-c", xdp_pass + ".c", "-o", xdp_pass + ".o")
        self.ns(self.cli, "ip", "link", "set", "dev", self.cli_if, "xdpdrv", "obj", xdp_pass + ".o", "sec", "xdp")
        self.server_mac = json.loads(self.ns(self.srv, "ip", "-j", "link", "show", self.srv_if).stdout)[0]["address"]
        self.synflood = os.path.join(self.dir, "synflood")
        sh("cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", self.synflood, os.path.join(REPO, "bench/xdp/synflood.c"))

    def ns(self, name, *argv, check=True, timeout=60, input=None):
        return sh("nsenter", f"--net=/run/netns/{name}", *argv, check=check, timeout=timeout, input=input)

    def write_config(self, rate_mode="off", cookie_mode="off", threshold=10000):
        with open(self.conf, "w") as f:
            f.write(f"""workers: 1
access_log: off
listeners:
  - name: tls
    listen: ["{SERVER}:{self.port}", "[{SERVER6}]:{self.port}"]
    table: t
tables:
  t:
    - host: "*"
      backend: b
backends:
  b:
    servers: ["127.0.0.1:{self.backend_port}"]
xdp:
  interfaces: [{self.srv_if}]
  mode: native
  policy: off
  rate_limit:
    mode: {rate_mode}
    syn_per_second: {SYN_PER_SECOND}
    burst: {BURST}
  syncookie:
    mode: {cookie_mode}
    syn_threshold: {threshold}
bpf_pin_path: {self.pin}
metrics:
  listen: "127.0.0.1:{self.metrics_port}"
""")

    def metrics(self):
        out = self.ns(self.srv, sys.executable, "-c",
                      f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{self.metrics_port}/metrics').read().decode())",
                      check=False)
        return out.stdout

    def counter(self, name, text=None, **labels):
        total = 0.0
        for line in (text if text is not None else self.metrics()).splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.split()[-1])
        return total

    def verdicts(self):
        """The pinned per-CPU counters, summed (the daemon exports them once a second)."""
        dump = json.loads(sh("bpftool", "-j", "map", "dump", "pinned", f"{self.pin}/xdp_verdicts").stdout)
        totals = {e["formatted"]["key"]: sum(cpu["value"] for cpu in e["formatted"]["values"]) for e in dump}
        return {v: totals.get(i, 0) for i, v in enumerate(VERDICTS)}

    def reload(self, rate_mode, cookie_mode, threshold=10000):
        before = self.counter("snisplice_config_reloads_total", result="ok")
        self.write_config(rate_mode, cookie_mode, threshold)
        self.proxy.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.counter("snisplice_config_reloads_total", result="ok") > before,
                   timeout=15, what="the reload")

    def phase(self, name, flood_sources=None, flood_first=FLOOD_FIRST, connection_flood=False):
        """Legitimate clients for SECONDS, with a SYN flood alongside when flood_sources is set,
        a connection flood when connection_flood is."""
        hello = client_hello("flood.test").hex()
        before_verdicts, before_cpu, before_machine = self.verdicts(), cpu_ticks(self.proxy.proc.pid), machine_busy()
        flood = None
        if flood_sources:
            flood = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.cli}", self.synflood, self.cli_if,
                                      self.server_mac, flood_first, SERVER, str(self.port), str(PACKETS),
                                      f"{SECONDS:.3f}", str(flood_sources)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.later(flood.kill)
        connectors = None
        if connection_flood:
            connectors = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.cli}", sys.executable,
                 os.path.join(REPO, "bench/xdp/legit_clients.py"), SERVER, str(self.port), hello, f"{SECONDS}",
                 "0", *(CONNECTORS * 4)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.later(connectors.kill)
        clients = self.ns(self.cli, sys.executable, os.path.join(REPO, "bench/xdp/legit_clients.py"), SERVER,
                          str(self.port), hello, f"{SECONDS}", str(LEGIT_RATE), *LEGIT, timeout=SECONDS + 60)
        sent = None
        if flood:
            out, err = flood.communicate(timeout=SECONDS + 30)
            self.assertEqual(flood.returncode, 0, err)
            sent = json.loads(out)
        if connectors:
            out, err = connectors.communicate(timeout=SECONDS + 30)
            self.assertEqual(connectors.returncode, 0, err)
            flooded = json.loads(out)
            sent = {"sent": flooded["attempts"], "pps": flooded["attempts"] / flooded["seconds"],
                    "handshakes": flooded["served"]}
        after_cpu, after_machine = cpu_ticks(self.proxy.proc.pid), machine_busy()
        result = json.loads(clients.stdout)
        after_verdicts = self.verdicts()
        result.update(
            phase=name,
            flood_sent=sent["sent"] if sent else 0,
            flood_handshakes=sent.get("handshakes") if sent else None,
            flood_pps=sent["pps"] if sent else 0,
            proxy_cpu_percent=round(100.0 * (after_cpu - before_cpu) / os.sysconf("SC_CLK_TCK") / result["seconds"], 1),
            machine_busy_percent=round(100.0 * (after_machine[0] - before_machine[0]) /
                                       max(1, after_machine[1] - before_machine[1]), 1),
            verdicts={v: int(after_verdicts[v] - before_verdicts[v]) for v in VERDICTS
                      if after_verdicts[v] != before_verdicts[v]})
        self.results.append(result)
        return result

    def ipv6_clients(self):
        """One second of IPv6 clients: their SYN-ACKs come from XDP, SYNPROXY completes them."""
        before = self.verdicts()["syncookie_sent"]
        out = self.ns(self.cli, sys.executable, os.path.join(REPO, "bench/xdp/legit_clients.py"), SERVER6,
                      str(self.port), client_hello("flood.test").hex(), "1", "20", LEGIT6, timeout=60)
        result = json.loads(out.stdout)
        result["syncookie_sent"] = int(self.verdicts()["syncookie_sent"] - before)
        print(f"\nIPv6 clients with syncookie on: {json.dumps(result)}")
        return result

    def synproxy_rules(self, install):
        """conntrack + the netfilter SYNPROXY on the proxy port: what the cookie mode needs.
        Without SYNPROXY's `timestamp` option: with it, 1 to 2 in 300 connections here stalled
        until the client's 3 s timeout, and the served rate fell to 61-76/s without any flood."""
        if not install:
            self.ns(self.srv, "nft", "delete", "table", "inet", "snisplice_synproxy", check=False)
            return
        self.ns(self.srv, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0")
        self.ns(self.srv, "nft", "-f", "-", input=SYNPROXY_RULES.format(port=self.port))

    def report(self):
        print(f"\nSYN flood, {SECONDS:g} s per phase, flood bounded at {PACKETS} packets; legitimate: "
              f"{len(LEGIT)} sources x {LEGIT_RATE} connections/s")
        print("| phase | flood sent (/s) | legit served/s | failed | p50 connect ms | p90 ms | proxy CPU % | machine busy % | XDP verdicts |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in self.results:
            failed = sum(r["failures"].values())
            flood = f"{r['flood_sent']} ({r['flood_pps']:.0f})"
            if r["flood_handshakes"] is not None:
                flood += f", {r['flood_handshakes']} handshakes"
            print(f"| {r['phase']} | {flood} | {r['served_per_second']} | {failed} | "
                  f"{r['connect_ms_p50']} | {r['connect_ms_p90']} | {r['proxy_cpu_percent']} | "
                  f"{r['machine_busy_percent']} | {json.dumps(r['verdicts'])} |")
        sys.stdout.flush()

    def test_legitimate_clients_keep_their_rate_under_a_syn_flood(self):
        self.port, self.metrics_port, self.backend_port = free_port(), free_port(), free_port()
        self.conf = os.path.join(self.dir, "flood.yaml")
        self.write_config()
        self.results = []
        backend = Process(["nsenter", f"--net=/run/netns/{self.srv}", sys.executable, "-c",
                           BACKEND.format(port=self.backend_port)], os.path.join(self.dir, "backend.log"))
        self.later(backend.stop)
        self.proxy = Process(["nsenter", f"--net=/run/netns/{self.srv}", BIN, "-c", self.conf],
                             os.path.join(self.dir, "proxy.log"))
        self.later(self.proxy.stop)
        self.later(lambda: self.synproxy_rules(False))
        wait_until(lambda: "snisplice_xdp_attached" in self.metrics(), timeout=15, what="the daemon with XDP attached")
        self.assertIn("attached in native mode", self.proxy.output())
        try:
            baseline = self.phase("baseline")
            flood_off = self.phase("SYN flood, no limit", 16)
            connect_off = self.phase("connection flood, no limit", connection_flood=True)
            self.reload("enforce", "off")
            limited = self.phase("SYN flood, rate_limit enforce", 16)
            connect_limited = self.phase("connection flood, rate_limit enforce", connection_flood=True)
            self.reload("off", "on")
            self.synproxy_rules(True)
            cookies = self.phase("spoofed flood, syncookie on", SPOOFED, SPOOF_FIRST)
            ipv6 = self.ipv6_clients()
            self.reload("off", "auto", AUTO_THRESHOLD)
            automatic = self.phase(f"spoofed flood, syncookie auto ({AUTO_THRESHOLD} SYN/s)", SPOOFED, SPOOF_FIRST)
            self.reload("off", "off")
            self.phase("spoofed flood, netfilter SYNPROXY alone (reference)", SPOOFED, SPOOF_FIRST)
        finally:
            self.report()
        self.assertGreater(baseline["served"], 0)
        self.assertGreater(flood_off["flood_sent"], 0)
        self.assertGreater(connect_off["flood_handshakes"], 0)
        self.assertGreater(limited["verdicts"].get("rate_limited", 0), 0)
        self.assertGreater(connect_limited["verdicts"].get("rate_limited", 0), 0)
        self.assertGreater(cookies["verdicts"].get("syncookie_sent", 0), 0)
        self.assertGreater(automatic["verdicts"].get("syncookie_sent", 0), 0)
        self.assertGreater(automatic["verdicts"].get("pass", 0), 0)  # below the threshold
        self.assertGreater(ipv6["served"], 0)
        self.assertEqual(ipv6["failures"], {})
        self.assertGreaterEqual(ipv6["syncookie_sent"], ipv6["attempts"])
        for r in (limited, connect_limited, cookies, automatic):
            self.assertGreaterEqual(r["served_per_second"], 0.8 * baseline["served_per_second"],
                                    f"{r['phase']}: legitimate clients below 80% of their unflooded rate: {r}")
        # The daemon exports the new verdicts too.
        wait_until(lambda: all(self.counter("snisplice_xdp_packets_total", verdict=v) > 0
                               for v in ("rate_limited", "syncookie_sent")), what="the verdicts in /metrics")
        self.assertEqual(self.proxy.stop(), 0)


CHECK_CONFIG = """listeners:
  - name: tls
    listen: ["127.0.0.1:8443"]
    table: t
tables:
  t:
    - host: "*"
      backend: b
backends:
  b:
    servers: ["127.0.0.1:9"]
xdp:
  rate_limit: {mode: enforce}
  syncookie: {mode: on}
"""

BACKEND = """import socket,threading
l=socket.socket(); l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
l.bind(('127.0.0.1',{port})); l.listen(1024)
def h(c):
    try:
        c.recv(65536); c.sendall(b'ready\\n'); c.recv(1)
    except OSError:
        pass
    c.close()
while True:
    c,_=l.accept(); threading.Thread(target=h,args=(c,),daemon=True).start()
"""

XDP_PASS = """#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
"""

SYNPROXY_RULES = """table inet snisplice_synproxy {{
  chain prerouting {{
    type filter hook prerouting priority raw; policy accept;
    tcp dport {port} tcp flags syn notrack
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    tcp dport {port} ct state invalid,untracked synproxy mss 1460 wscale 7 sack-perm
    ct state invalid drop
  }}
}}
"""


if __name__ == "__main__":
    reason = why_not()
    if reason:
        print(f"SKIP: {reason}")
        sys.exit(77)
    unittest.main()
