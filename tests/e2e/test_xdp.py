"""The daemon's XDP allowlist end to end: snisplice runs in a server network namespace with
its program on the veth, clients in another namespace (198.51.100.0/24, created here; nothing
leaves the two namespaces). An allowed client is proxied; a denied client's SYNs are dropped
before the proxy sees them; bpftool on the pinned trie admits it at once and shuts it out again."""
import os
import shutil
import socket
import subprocess
import unittest

from harness import BIN, Process, ProxyTest, client_hello, free_port, recv_exact, wait_until

NET = "198.51.100"


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def why_not():
    if os.geteuid() != 0:
        return "needs root (network namespaces, XDP, bpffs)"
    for tool in ("ip", "nsenter", "bpftool"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if NET + "." in sh("ip", "route", "show").stdout:
        return f"{NET}.0/24 is already routed on this host"
    return None


@unittest.skipIf(why_not(), why_not())
class XdpThroughTheDaemon(ProxyTest):
    def setUp(self):
        super().setUp()
        tag = f"{os.getpid() % 100000}"
        self.srv, self.cli = f"snsrv{tag}", f"sncli{tag}"
        self.pin = f"/sys/fs/bpf/snisplice-e2e-daemon-xdp-{tag}"
        self.later(lambda: sh("rm", "-rf", self.pin, check=False))
        for ns in (self.srv, self.cli):
            sh("ip", "netns", "add", ns)
            self.later(lambda ns=ns: sh("ip", "netns", "del", ns, check=False))
        sh("ip", "link", "add", f"vs{tag}", "netns", self.srv, "type", "veth", "peer", "name", f"vc{tag}",
           "netns", self.cli)
        self.srv_if = f"vs{tag}"
        self.ns(self.srv, "ip", "addr", "add", f"{NET}.1/24", "dev", self.srv_if)
        self.ns(self.cli, "ip", "addr", "add", f"{NET}.2/24", "dev", f"vc{tag}")
        self.ns(self.cli, "ip", "addr", "add", f"{NET}.3/24", "dev", f"vc{tag}")
        for ns, dev in ((self.srv, self.srv_if), (self.cli, f"vc{tag}")):
            self.ns(ns, "ip", "link", "set", "lo", "up")
            self.ns(ns, "ip", "link", "set", dev, "up")
        route = self.ns(self.cli, "ip", "route", "get", f"{NET}.1").stdout
        self.assertIn(f"vc{tag}", route)   # leaves through our veth, nowhere else

    def ns(self, name, *argv, check=True):
        return sh("nsenter", f"--net=/run/netns/{name}", *argv, check=check)

    def client(self, source, port, timeout=2.0):
        """Connect from `source` inside the client namespace; True if the proxy answered."""
        code = ("import socket,sys\n"
                "s=socket.socket(); s.settimeout(%r); s.bind((%r,0))\n"
                "try:\n s.connect((%r,%d)); s.sendall(bytes.fromhex(sys.argv[1])); d=s.recv(6)\n"
                " print('ok' if d==b'ready\\n' else 'closed')\n"
                "except OSError as e: print(type(e).__name__)\n") % (timeout, source, f"{NET}.1", port)
        out = self.ns(self.cli, "python3", "-c", code, client_hello("x.test").hex(), check=False)
        return out.stdout.strip()

    def test_allowlist_enforced_before_the_stack_and_managed_with_bpftool(self):
        port, metrics_port, backend_port = free_port(), free_port(), free_port()
        # A backend inside the server namespace that answers each hello.
        backend_code = ("import socket,threading\n"
                        "l=socket.socket(); l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                        "l.bind(('127.0.0.1',%d)); l.listen(64)\n"
                        "def h(c):\n c.recv(65536); c.sendall(b'ready\\n'); c.recv(1); c.close()\n"
                        "while True:\n c,_=l.accept(); threading.Thread(target=h,args=(c,),daemon=True).start()\n"
                        ) % backend_port
        backend = Process(["nsenter", f"--net=/run/netns/{self.srv}", "python3", "-c", backend_code],
                          os.path.join(self.dir, "backend.log"))
        self.later(backend.stop)
        conf = os.path.join(self.dir, "xdp.yaml")
        with open(conf, "w") as f:
            f.write(f"""workers: 1
listeners:
  - name: tls
    listen: ["{NET}.1:{port}"]
    table: t
tables:
  t:
    - host: "*"
      backend: b
backends:
  b:
    servers: ["127.0.0.1:{backend_port}"]
xdp:
  interfaces: [{self.srv_if}]
  mode: auto
  policy: enforce
  allow: ["{NET}.2/32"]
bpf_pin_path: {self.pin}
metrics:
  listen: "127.0.0.1:{metrics_port}"
""")
        proxy = Process(["nsenter", f"--net=/run/netns/{self.srv}", BIN, "-c", conf], os.path.join(self.dir, "proxy.log"))
        self.later(proxy.stop)

        def metrics():
            out = self.ns(self.srv, "python3", "-c",
                          f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{metrics_port}/metrics').read().decode())",
                          check=False)
            return out.stdout

        wait_until(lambda: "snisplice_xdp_attached" in metrics(), timeout=15, what="the daemon with XDP attached")
        self.assertRegex(self.ns(self.srv, "ip", "-d", "link", "show", self.srv_if).stdout, r"prog/xdp|\bxdp")
        self.assertEqual(self.client(f"{NET}.2", port), "ok")              # allowed
        self.assertEqual(self.client(f"{NET}.3", port), "TimeoutError")    # SYNs dropped

        def counter(name, **labels):
            total = 0.0
            for line in metrics().splitlines():
                if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                    total += float(line.split()[-1])
            return total

        wait_until(lambda: counter("snisplice_xdp_packets_total", verdict="drop") > 0, what="drops counted")
        self.assertEqual(counter("snisplice_connections_total"), 1)       # the proxy never saw .3
        key = ["32", "0", "0", "0"] + NET.split(".") + ["3"]
        sh("bpftool", "map", "update", "pinned", f"{self.pin}/allow_v4", "key", *key, "value", "1", "0", "0", "0")
        self.assertEqual(self.client(f"{NET}.3", port), "ok")              # admitted at once
        sh("bpftool", "map", "delete", "pinned", f"{self.pin}/allow_v4", "key", *key)
        self.assertEqual(self.client(f"{NET}.3", port), "TimeoutError")    # shut out again
        self.assertEqual(proxy.stop(), 0)
        # Detached on exit; the pinned allowlist stays for the next start.
        self.assertNotRegex(self.ns(self.srv, "ip", "-d", "link", "show", self.srv_if).stdout,
                            r"\bxdp(generic|drv|offload)?\b|prog/xdp")
        self.assertTrue(os.path.exists(f"{self.pin}/allow_v4"))


if __name__ == "__main__":
    unittest.main()
