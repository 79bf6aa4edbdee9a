"""A transparent listener behind nftables TPROXY, in network namespaces made here
(198.51.100.0/24; nothing leaves them): the original destination is known per connection,
`resolve: {port: original}` dials the resolved name on the port the client dialled, and
`action: original_dst` dials the original address under the address policy."""
import json
import os
import subprocess
import unittest

from config_builder import listener, proxy_config, route, to_yaml
from harness import BIN, Process, ProxyTest, client_hello, free_port, wait_until
from netns import NET, SERVER, NamespacePair, sh, why_no_namespaces

HERE = os.path.dirname(os.path.abspath(__file__))
WHY_NOT = why_no_namespaces("network namespaces, TPROXY", ["nft"])


@unittest.skipIf(WHY_NOT, WHY_NOT)
class Transparent(ProxyTest):
    def setUp(self):
        super().setUp()
        self.net = NamespacePair(self, "tp")
        self.srv, self.cli, self.srv_if = self.net.server, self.net.client, self.net.server_if
        # The client reaches an address nobody owns through the server, where TPROXY takes it.
        self.net.run(self.cli, "ip", "route", "add", f"{NET}.77/32", "via", SERVER)
        self.assertIn(self.net.client_if, self.net.run(self.cli, "ip", "route", "get", f"{NET}.77").stdout)

    def test_original_destination_and_port(self):
        port, metrics_port = free_port(), free_port()
        rules = f"""table ip snisplice_tproxy {{
  chain prerouting {{
    type filter hook prerouting priority mangle; policy accept;
    iifname "{self.srv_if}" tcp dport 443 tproxy to 127.0.0.1:{port} meta mark set 1 accept
  }}
}}
"""
        self.net.run(self.srv, "nft", "-f", "-", input=rules)
        self.net.run(self.srv, "ip", "rule", "add", "fwmark", "1", "lookup", "100")
        self.net.run(self.srv, "ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
        self.net.run(self.srv, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")

        # The backend the resolved name points at: 127.0.0.1 on the original port (443).
        backend = Process(self.net.ready_backend_argv(443), os.path.join(self.dir, "backend.log"))
        self.later(backend.stop)
        zone = os.path.join(self.dir, "zone.json")
        with open(zone, "w") as f:
            json.dump({"names": {"x.partner.test": [{"type": "A", "data": "127.0.0.1"}]}}, f)
        dns = subprocess.Popen(self.net.inside(self.srv, "python3", os.path.join(HERE, "../support/dns_server.py"),
                                               "--zone", zone), stdout=subprocess.PIPE, text=True)
        self.later(lambda: (dns.terminate(), dns.wait(5)))
        dns_port = int(dns.stdout.readline())

        conf = os.path.join(self.dir, "tproxy.yaml")
        with open(conf, "w") as f:
            f.write(to_yaml(proxy_config(
                [listener("intercept", f"127.0.0.1:{port}", "egress", transparent=True)],
                {"egress": [route(".partner.test", resolve={"port": "original", "allow_networks": ["127.0.0.0/8"]}),
                            route(".intranet.test", action="original_dst"), route("*", action="reject")]},
                metrics_port=metrics_port, defaults={}, workers=1, splice=os.environ.get("SNISPLICE_SPLICE", "auto"),
                dns={"servers": [f"127.0.0.1:{dns_port}"]},
                bpf_pin_path=f"/sys/fs/bpf/snisplice-e2e-tproxy-{os.getpid()}")))
        self.later(lambda: sh("rm", "-rf", f"/sys/fs/bpf/snisplice-e2e-tproxy-{os.getpid()}", check=False))
        proxy = Process(self.net.inside(self.srv, BIN, "-c", conf), os.path.join(self.dir, "proxy.log"))
        self.later(proxy.stop)
        wait_until(lambda: "ready:" in proxy.output(), timeout=15, what="snisplice ready")

        def client(name):
            return self.net.hello_from_client(f"{NET}.77", 443, client_hello(name))

        self.assertEqual(client("x.partner.test"), "ok")
        self.assertEqual(client("y.intranet.test"), "closed")   # 198.51.100.77 is a documentation range
        wait_until(lambda: '"result":"denied_address"' in proxy.output(), what="denied_address logged")
        log = proxy.output()
        self.assertIn('"backend":"127.0.0.1:443"', log)          # the original port, on the resolved name
        self.assertIn(f"{NET}.77:443", log)                       # the original destination, refused
        self.assertEqual(proxy.stop(), 0)


if __name__ == "__main__":
    unittest.main()
