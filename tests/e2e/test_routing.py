"""Routing real TLS and HTTP clients by name, through the real binary."""
import os
import socket
import subprocess
import unittest

from harness import (Certificates, OpensslServer, ProxyTest, client_hello, config, free_port, http_head, listener,
                     recv_all, route, servers, wait_until)


def named_certificates(directory, name):
    sub = os.path.join(directory, name)
    os.makedirs(sub)
    return Certificates(sub, [f"{name}.test", "api.test", "x.web.test", "web.test"])


class TlsRouting(ProxyTest):
    def setUp(self):
        super().setUp()
        self.servers = {}
        for name, alpn in (("api", None), ("acme", ["acme-tls/1"]), ("web", None)):
            certs = Certificates(self._mkdir(name), [f"{name}.backend"])
            # The certificate's CN tells the client which backend answered.
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", certs.key, "-out", certs.cert, "-days", "2",
                            "-subj", f"/CN={name}-backend"], check=True, capture_output=True)
            port = free_port()
            server = OpensslServer(self.dir, certs, name, port, alpn=alpn)
            self.later(server.stop)
            self.servers[name] = server
        self.port = free_port()
        self.port6 = free_port(socket.AF_INET6)
        self.metrics_port = free_port()
        self.proxy_ = self.proxy(config(
            [listener("tls", [f"127.0.0.1:{self.port}", f"[::1]:{self.port6}"], "edge", protocol="tls")],
            {"edge": [route("api.test", alpn=["acme-tls/1"], backend="acme"), route("api.test", backend="api"),
                      route("*.web.test", backend="web"), route("*", action="reject")]},
            {name: servers(f"127.0.0.1:{server.port}") for name, server in self.servers.items()},
            self.metrics_port))

    def _mkdir(self, name):
        path = os.path.join(self.dir, name)
        os.makedirs(path)
        return path

    def s_client(self, name, host="127.0.0.1", port=None, alpn=None):
        argv = ["openssl", "s_client", "-connect", f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "-servername", name]
        if alpn:
            argv += ["-alpn", alpn]
        out = subprocess.run(argv, input=b"Q\n", capture_output=True, timeout=15)
        return out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")

    def test_sni_picks_the_backend(self):
        self.assertIn("CN = api-backend", self.s_client("api.test", port=self.port))
        self.assertIn("CN = web-backend", self.s_client("x.web.test", port=self.port))
        self.assertIn("CN = web-backend", self.s_client("A.B.WEB.TEST.", port=self.port))

    def test_alpn_condition_wins_over_the_same_name_without(self):
        out = self.s_client("api.test", port=self.port, alpn="acme-tls/1")
        self.assertIn("CN = acme-backend", out)
        self.assertIn("ALPN protocol: acme-tls/1", out)
        self.assertIn("CN = api-backend", self.s_client("api.test", port=self.port, alpn="h2,http/1.1"))

    def test_ipv6_listener(self):
        self.assertIn("CN = web-backend", self.s_client("x.web.test", host="::1", port=self.port6))
        wait_until(lambda: [r for r in self.proxy_.access_log() if r["client"].startswith("[::1]")],
                   what="an access log record with the IPv6 client address")

    def test_curl_through_the_proxy(self):
        out = subprocess.run(["curl", "-sk", "-v", "--max-time", "10", "--resolve", f"api.test:{self.port}:127.0.0.1",
                              f"https://api.test:{self.port}/"], capture_output=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr.decode())
        self.assertIn("CN=api-backend", out.stderr.decode())
        self.assertIn(b"s_server", out.stdout)

    def test_unmatched_name_is_rejected_and_counted(self):
        out = self.s_client("other.test", port=self.port)
        self.assertNotIn("-backend", out)
        wait_until(lambda: self.proxy_.metric("snisplice_connections_total", result="rejected", route="*") >= 1,
                   what="rejected counted")

    def test_connections_are_counted_by_route(self):
        self.s_client("api.test", port=self.port)
        wait_until(lambda: self.proxy_.metric("snisplice_connections_total", listener="tls", route="api.test",
                                              result="proxied") >= 1, what="proxied counted")
        self.assertGreater(self.proxy_.metric("snisplice_bytes_total", direction="backend_to_client"), 0)
        self.assertGreaterEqual(self.proxy_.metric("snisplice_spliced_connections_total"), 1)
        self.assertEqual(self.proxy_.metric("snisplice_active_connections", listener="tls"), 0)


class HttpRouting(ProxyTest):
    def test_host_header_picks_the_backend(self):
        def named(name):
            def handler(conn):
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                body = name.encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            return handler
        a = self.backend(named("alpha"))
        b = self.backend(named("beta"))
        port, metrics_port = free_port(), free_port()
        proxy = self.proxy(config(
            [listener("plain", f"127.0.0.1:{port}", "web", protocol="http")],
            {"web": [route("alpha.test", backend="alpha"), route(".beta.test", backend="beta")]},
            {"alpha": servers(a.address), "beta": servers(b.address)}, metrics_port))
        proxy.allow_fallback = True  # the backends answer and close before a splice can start
        for host, want in (("alpha.test", "alpha"), ("beta.test", "beta"), ("www.beta.test:8080", "beta")):
            out = subprocess.run(["curl", "-s", "--max-time", "10", "-H", f"Host: {host}",
                                  f"http://127.0.0.1:{port}/"], capture_output=True, timeout=20)
            self.assertEqual(out.stdout.decode(), want, host)
        # No table entry and no "*": closed, counted as no_route.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(http_head("gamma.test"))
            self.assertEqual(recv_all(c), b"")
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="no_route") >= 1, what="no_route")


if __name__ == "__main__":
    unittest.main()
