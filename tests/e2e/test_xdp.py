"""The daemon's XDP allowlist end to end: snisplice runs in a server network namespace with
its program on the veth, clients in another namespace (198.51.100.0/24, created here; nothing
leaves the two namespaces). An allowed client is proxied; a denied client's SYNs are dropped
before the proxy sees them; bpftool on the pinned trie admits it at once and shuts it out again."""
import os
import unittest

from config_builder import listener, proxy_config, route, servers, to_yaml
from harness import BIN, Process, ProxyTest, client_hello, free_port, wait_until
from netns import NET, SERVER, NamespacePair, sh, why_no_namespaces

WHY_NOT = why_no_namespaces("network namespaces, XDP, bpffs", ["bpftool"])


@unittest.skipIf(WHY_NOT, WHY_NOT)
class XdpThroughTheDaemon(ProxyTest):
    def setUp(self):
        super().setUp()
        self.pin = f"/sys/fs/bpf/snisplice-e2e-daemon-xdp-{os.getpid() % 100000}"
        self.later(lambda: sh("rm", "-rf", self.pin, check=False))
        self.net = NamespacePair(self, "xdp", client_addresses=(f"{NET}.2", f"{NET}.3"))
        self.srv, self.srv_if = self.net.server, self.net.server_if
        route_out = self.net.run(self.net.client, "ip", "route", "get", SERVER).stdout
        self.assertIn(self.net.client_if, route_out)   # leaves through our veth, nowhere else

    def client(self, source, port, timeout=2.0):
        """Connect from `source` inside the client namespace: "ok" if the proxy answered."""
        return self.net.hello_from_client(SERVER, port, client_hello("x.test"), source=source, timeout=timeout)

    def test_allowlist_enforced_before_the_stack_and_managed_with_bpftool(self):
        port, metrics_port, backend_port = free_port(), free_port(), free_port()
        # A backend inside the server namespace that answers each hello.
        backend = Process(self.net.ready_backend_argv(backend_port), os.path.join(self.dir, "backend.log"))
        self.later(backend.stop)
        conf = os.path.join(self.dir, "xdp.yaml")
        with open(conf, "w") as f:
            f.write(to_yaml(proxy_config(
                [listener("tls", f"{SERVER}:{port}", "t")], {"t": [route("*", backend="b")]},
                {"b": servers(f"127.0.0.1:{backend_port}")}, metrics_port, defaults={}, workers=1,
                xdp={"interfaces": [self.srv_if], "mode": "auto", "policy": "enforce", "allow": [f"{NET}.2/32"]},
                bpf_pin_path=self.pin)))
        proxy = Process(self.net.inside(self.srv, BIN, "-c", conf), os.path.join(self.dir, "proxy.log"))
        self.later(proxy.stop)

        def metrics():
            out = self.net.run(self.srv, "python3", "-c",
                          f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{metrics_port}/metrics').read().decode())",
                          check=False)
            return out.stdout

        wait_until(lambda: "snisplice_xdp_attached" in metrics(), timeout=15, what="the daemon with XDP attached")
        self.assertRegex(self.net.run(self.srv, "ip", "-d", "link", "show", self.srv_if).stdout, r"prog/xdp|\bxdp")
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
        self.assertNotRegex(self.net.run(self.srv, "ip", "-d", "link", "show", self.srv_if).stdout,
                            r"\bxdp(generic|drv|offload)?\b|prog/xdp")
        self.assertTrue(os.path.exists(f"{self.pin}/allow_v4"))


if __name__ == "__main__":
    unittest.main()
