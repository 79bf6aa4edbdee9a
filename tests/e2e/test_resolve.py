"""DNS-resolved routes through the real binary, against a real DNS server on loopback. Every
test name resolves to an address on this host (127.x, ::1, ::ffff:127.0.0.1, 0.0.0.0), so a
policy bug can never send traffic anywhere else."""
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

from harness import (ProxyTest, client_hello, closed_without_data, config, dns, free_port, listener, recv_exact, route,
                     servers, wait_until, echo)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../support"))
from dns_server import DnsServerProcess  # noqa: E402


class Resolve(ProxyTest):
    def start(self, zone, backend_port, allow=None, workers=2):
        self.dns = DnsServerProcess(zone)
        self.dns.__enter__()
        self.later(lambda: self.dns.__exit__(None, None, None))
        port = free_port()
        allowed = {"port": backend_port, **({"allow_networks": allow} if allow else {})}
        pin_path = f"/sys/fs/bpf/snisplice-e2e-{os.getpid()}-{port}"
        self.later(lambda: subprocess.run(["rm", "-rf", pin_path]))
        document = config(
            [listener("tls", f"127.0.0.1:{port}", "t", protocol="tls")],
            {"t": [route(".open.test", resolve={"port": backend_port}), route(".allowed.test", resolve=allowed),
                   route("direct.test", backend="direct")]},
            {"direct": servers(f"127.0.0.1:{backend_port}")}, free_port(),
            dns=dns(self.dns.port), bpf_pin_path=pin_path, workers=workers)
        return self.proxy(document), port, pin_path

    def connect(self, port, name):
        hello = client_hello(name)
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(hello)
        return c, hello

    def reaches_backend(self, port, name):
        c, hello = self.connect(port, name)
        with c:
            try:
                return recv_exact(c, len(hello)) == hello
            except (EOFError, ConnectionResetError):
                return False

    def test_resolve_route_reaches_an_allowed_network(self):
        backend = self.backend(echo)
        proxy, port, _ = self.start({"names": {"svc.allowed.test": [{"type": "A", "data": "127.0.0.1"}]}},
                                    backend.port, allow=["127.0.0.0/8"])
        self.assertTrue(self.reaches_backend(port, "svc.allowed.test"))
        self.assertEqual(backend.accepted, 1)
        wait_until(lambda: proxy.metric("snisplice_dns_lookups_total", result="resolved") == 1, what="resolved")
        self.assertTrue(self.reaches_backend(port, "SVC.allowed.test."))   # now from the cache
        wait_until(lambda: proxy.metric("snisplice_dns_lookups_total", result="cache_hit") == 1, what="cache hit")
        self.assertEqual(self.dns.queries("svc.allowed.test", "A"), 1)

    def test_this_host_is_refused_by_default_and_allowed_only_when_listed(self):
        backend = self.backend(echo, host="::")
        zone = {"names": {
            "lo.open.test": [{"type": "A", "data": "127.0.0.1"}],
            "zero.open.test": [{"type": "A", "data": "0.0.0.0"}],
            "v6.open.test": [{"type": "AAAA", "data": "::1"}],
            "mapped.open.test": [{"type": "AAAA", "data": "::ffff:127.0.0.1"}],
            "lo.allowed.test": [{"type": "A", "data": "127.0.0.1"}],
            "v6.allowed.test": [{"type": "AAAA", "data": "::1"}],
            "mapped.allowed.test": [{"type": "AAAA", "data": "::ffff:127.0.0.1"}],
        }}
        proxy, port, _ = self.start(zone, backend.port, allow=["127.0.0.0/8", "::1/128"])
        for name in ("lo.open.test", "zero.open.test", "v6.open.test", "mapped.open.test"):
            c, _ = self.connect(port, name)
            with c:
                self.assertTrue(closed_without_data(c), name)
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="denied_address") == 4,
                   what="4 denied_address")
        self.assertEqual(backend.accepted, 0)
        log = proxy.output()
        self.assertIn('"lo.open.test"', log)
        self.assertIn("127.0.0.1", log)
        for name in ("lo.allowed.test", "v6.allowed.test", "mapped.allowed.test"):
            self.assertTrue(self.reaches_backend(port, name), name)
        self.assertEqual(backend.accepted, 3)

    def test_ttl_expiry_queries_again(self):
        backend = self.backend(echo)
        proxy, port, _ = self.start({"names": {"short.allowed.test": [{"type": "A", "data": "127.0.0.1", "ttl": 1}]}},
                                    backend.port, allow=["127.0.0.0/8"])
        self.assertTrue(self.reaches_backend(port, "short.allowed.test"))
        self.assertTrue(self.reaches_backend(port, "short.allowed.test"))
        self.assertEqual(self.dns.queries("short.allowed.test", "A"), 1)
        time.sleep(1.5)
        self.assertTrue(self.reaches_backend(port, "short.allowed.test"))
        self.assertEqual(self.dns.queries("short.allowed.test", "A"), 2)

    def test_many_connections_for_one_uncached_name_make_one_query(self):
        backend = self.backend(echo)
        proxy, port, _ = self.start(
            {"names": {"busy.allowed.test": {"delay_ms": 200, "records": [{"type": "A", "data": "127.0.0.1"}]}}},
            backend.port, allow=["127.0.0.0/8"], workers=1)   # in-flight queries are shared per worker
        proxy.allow_fallback = True
        count = 500
        hello = client_hello("busy.allowed.test")
        sockets = []
        for _ in range(count):
            c = socket.create_connection(("127.0.0.1", port), timeout=20)
            c.sendall(hello)
            sockets.append(c)
        ok = 0
        for c in sockets:
            with c:
                if recv_exact(c, len(hello)) == hello:
                    ok += 1
        self.assertEqual(ok, count)
        self.assertEqual(self.dns.queries("busy.allowed.test", "A"), 1)

    def test_dead_dns_server_fails_within_timeout_times_tries(self):
        backend = self.backend(echo)
        proxy, port, _ = self.start({"names": {"silent.allowed.test": "drop"}}, backend.port, allow=["127.0.0.0/8"])
        t0 = time.monotonic()
        c, _ = self.connect(port, "silent.allowed.test")
        with c:
            self.assertTrue(closed_without_data(c))
        self.assertLess(time.monotonic() - t0, 3.0)   # 500 ms x 2 tries, with room
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="resolve_error") == 1,
                   what="resolve_error")
        self.assertTrue(self.reaches_backend(port, "direct.test"))   # other routes still served

    @unittest.skipUnless(os.geteuid() == 0, "the pinned dns_cache map needs root")
    def test_cache_map_is_visible_with_bpftool_and_survives_a_restart(self):
        backend = self.backend(echo)
        zone = {"names": {"kept.allowed.test": [{"type": "A", "data": "127.0.0.1", "ttl": 300}]}}
        proxy, port, pin = self.start(zone, backend.port, allow=["127.0.0.0/8"])
        self.assertTrue(self.reaches_backend(port, "kept.allowed.test"))
        if "pinned" not in proxy.output():
            self.skipTest("no BPF here: the in-process cache is in use")
        dump = subprocess.run(["bpftool", "map", "dump", "pinned", f"{pin}/dns_cache"], capture_output=True, text=True)
        self.assertIn("kept.allowed.test", dump.stdout)
        proxy.stop()
        self.proxies.remove(proxy)
        again = self.proxy(proxy.config, name="restarted")
        self.assertTrue(self.reaches_backend(port, "kept.allowed.test"))
        self.assertEqual(self.dns.queries("kept.allowed.test", "A"), 1)   # answered by the pinned cache
        wait_until(lambda: again.metric("snisplice_dns_lookups_total", result="cache_hit") == 1, what="cache hit")


if __name__ == "__main__":
    unittest.main()
