"""A transparent listener behind nftables TPROXY, in network namespaces made here
(198.51.100.0/24; nothing leaves them): the original destination is known per connection,
`resolve: {port: original}` dials the resolved name on the port the client dialled, and
`action: original_dst` dials the original address under the address policy."""
import json
import os
import shutil
import subprocess
import time
import unittest

from harness import BIN, Process, ProxyTest, client_hello, free_port, wait_until

NET = "198.51.100"
HERE = os.path.dirname(os.path.abspath(__file__))


def sh(*argv, check=True, **kwargs):
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kwargs)


def why_not():
    if os.geteuid() != 0:
        return "needs root (network namespaces, TPROXY)"
    for tool in ("ip", "nsenter", "nft"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    return None


@unittest.skipIf(why_not(), why_not())
class Transparent(ProxyTest):
    def setUp(self):
        super().setUp()
        tag = f"{os.getpid() % 100000}"
        self.srv, self.cli = f"sntps{tag}", f"sntpc{tag}"
        for ns in (self.srv, self.cli):
            sh("ip", "netns", "add", ns)
            self.later(lambda ns=ns: sh("ip", "netns", "del", ns, check=False))
        sh("ip", "link", "add", f"ts{tag}", "netns", self.srv, "type", "veth", "peer", "name", f"tc{tag}",
           "netns", self.cli)
        self.srv_if = f"ts{tag}"
        self.ns(self.srv, "ip", "addr", "add", f"{NET}.1/24", "dev", f"ts{tag}")
        self.ns(self.cli, "ip", "addr", "add", f"{NET}.2/24", "dev", f"tc{tag}")
        for ns, dev in ((self.srv, f"ts{tag}"), (self.cli, f"tc{tag}")):
            self.ns(ns, "ip", "link", "set", "lo", "up")
            self.ns(ns, "ip", "link", "set", dev, "up")
        # The client reaches an address nobody owns through the server, where TPROXY takes it.
        self.ns(self.cli, "ip", "route", "add", f"{NET}.77/32", "via", f"{NET}.1")
        self.assertIn(f"tc{tag}", self.ns(self.cli, "ip", "route", "get", f"{NET}.77").stdout)

    def ns(self, name, *argv, check=True):
        return sh("nsenter", f"--net=/run/netns/{name}", *argv, check=check)

    def test_original_destination_and_port(self):
        port, metrics_port = free_port(), free_port()
        rules = f"""table ip snisplice_tproxy {{
  chain prerouting {{
    type filter hook prerouting priority mangle; policy accept;
    iifname "{self.srv_if}" tcp dport 443 tproxy to 127.0.0.1:{port} meta mark set 1 accept
  }}
}}
"""
        sh("nsenter", f"--net=/run/netns/{self.srv}", "nft", "-f", "-", input=rules)
        self.ns(self.srv, "ip", "rule", "add", "fwmark", "1", "lookup", "100")
        self.ns(self.srv, "ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
        self.ns(self.srv, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")

        # The backend the resolved name points at: 127.0.0.1 on the original port (443).
        backend_code = ("import socket,threading\n"
                        "l=socket.socket(); l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                        "l.bind(('127.0.0.1',443)); l.listen(16)\n"
                        "def h(c):\n c.recv(65536); c.sendall(b'ready\\n'); c.recv(1); c.close()\n"
                        "while True:\n c,_=l.accept(); threading.Thread(target=h,args=(c,),daemon=True).start()\n")
        backend = Process(["nsenter", f"--net=/run/netns/{self.srv}", "python3", "-c", backend_code],
                          os.path.join(self.dir, "backend.log"))
        self.later(backend.stop)
        zone = os.path.join(self.dir, "zone.json")
        with open(zone, "w") as f:
            json.dump({"names": {"x.partner.test": [{"type": "A", "data": "127.0.0.1"}]}}, f)
        dns = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.srv}", "python3",
                                os.path.join(HERE, "../support/dns_server.py"), "--zone", zone],
                               stdout=subprocess.PIPE, text=True)
        self.later(lambda: (dns.terminate(), dns.wait(5)))
        dns_port = int(dns.stdout.readline())

        conf = os.path.join(self.dir, "tproxy.yaml")
        with open(conf, "w") as f:
            f.write(f"""workers: 1
splice: {os.environ.get("SNISPLICE_SPLICE", "auto")}
listeners:
  - name: intercept
    listen: ["127.0.0.1:{port}"]
    table: egress
    transparent: true
tables:
  egress:
    - host: ".partner.test"
      resolve: {{port: original, allow_networks: ["127.0.0.0/8"]}}
    - host: ".intranet.test"
      action: original_dst
    - host: "*"
      action: reject
dns:
  servers: ["127.0.0.1:{dns_port}"]
bpf_pin_path: /sys/fs/bpf/snisplice-e2e-tproxy-{os.getpid()}
metrics:
  listen: "127.0.0.1:{metrics_port}"
""")
        self.later(lambda: sh("rm", "-rf", f"/sys/fs/bpf/snisplice-e2e-tproxy-{os.getpid()}", check=False))
        proxy = Process(["nsenter", f"--net=/run/netns/{self.srv}", BIN, "-c", conf], os.path.join(self.dir, "proxy.log"))
        self.later(proxy.stop)
        wait_until(lambda: "ready:" in proxy.output(), timeout=15, what="snisplice ready")

        def client(name):
            code = ("import socket,sys\n"
                    "s=socket.create_connection((%r,443),timeout=5); s.sendall(bytes.fromhex(sys.argv[1]))\n"
                    "try:\n d=s.recv(6); print('ok' if d==b'ready\\n' else 'closed')\n"
                    "except OSError as e: print(type(e).__name__)\n") % f"{NET}.77"
            return self.ns(self.cli, "python3", "-c", code, client_hello(name).hex(), check=False).stdout.strip()

        self.assertEqual(client("x.partner.test"), "ok")
        self.assertEqual(client("y.intranet.test"), "closed")   # 198.51.100.77 is a documentation range
        wait_until(lambda: '"result":"denied_address"' in proxy.output(), what="denied_address logged")
        log = proxy.output()
        self.assertIn('"backend":"127.0.0.1:443"', log)          # the original port, on the resolved name
        self.assertIn(f"{NET}.77:443", log)                       # the original destination, refused
        self.assertEqual(proxy.stop(), 0)


if __name__ == "__main__":
    unittest.main()
