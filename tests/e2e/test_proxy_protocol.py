"""PROXY protocol: what snisplice sends is read correctly by real peers (nginx stream with
`proxy_protocol`, HAProxy with `accept-proxy`), v1 and v2, IPv4 and IPv6; and inbound PROXY
headers are accepted only from proxy_protocol_from."""
import os
import shutil
import socket
import struct
import subprocess
import unittest

from harness import (Process, ProxyTest, client_hello, config, free_port, http_head, listener, recv_all,
                     recv_exact, route, servers, wait_until, _can_connect)

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def by_version(name, address):
    """Tables routing v1.test and v2.test to backends name_v1 and name_v2 on `address`, which
    send a PROXY header of that version; and those backends."""
    versions = ("v1", "v2")
    return ({"t": [route(f"{v}.test", backend=f"{name}_{v}") for v in versions]},
            {f"{name}_{v}": servers(address, proxy_protocol=v) for v in versions})


@unittest.skipUnless(shutil.which("nginx") and os.path.exists(NGINX_STREAM_MODULE),
                     "nginx with the stream module is not installed (scripts/setup-deps installs it)")
class NginxReadsOurHeader(ProxyTest):
    """nginx answers each connection with the client address it read from our PROXY header."""

    def setUp(self):
        super().setUp()
        self.nginx_port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""load_module {NGINX_STREAM_MODULE};
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/nginx-error.log;
events {{ worker_connections 64; }}
stream {{
  server {{
    listen 127.0.0.1:{self.nginx_port} proxy_protocol;
    return "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port\\n";
  }}
}}
""")
        nginx = Process(["nginx", "-c", conf, "-p", self.dir, "-e", f"{self.dir}/nginx-error.log"],
                        os.path.join(self.dir, "nginx.log"))
        self.later(nginx.stop)
        wait_until(lambda: _can_connect("127.0.0.1", self.nginx_port), what="nginx")
        self.port, self.port6 = free_port(), free_port(socket.AF_INET6)
        self.proxy_ = self.proxy(config(
            [listener("tls", [f"127.0.0.1:{self.port}", f"[::1]:{self.port6}"], "t", protocol="tls")],
            *by_version("nginx", f"127.0.0.1:{self.nginx_port}"), free_port()))
        self.proxy_.allow_fallback = True  # nginx answers and closes before the splice

    def seen_by_nginx(self, name, host, port):
        # nginx answers, then closes with our hello unread, which resets the connection: the
        # proxy must still deliver the answer before passing the reset on.
        with socket.create_connection((host, port), timeout=10) as c:
            c.sendall(client_hello(name))
            data = b""
            try:
                while chunk := c.recv(4096):
                    data += chunk
            except ConnectionResetError:
                pass
            return data.decode().strip().split(" "), c.getsockname()

    def test_v1_and_v2_over_ipv4(self):
        for version in ("v1", "v2"):
            (addr, port, server_addr, server_port), local = self.seen_by_nginx(f"{version}.test", "127.0.0.1", self.port)
            self.assertEqual(addr, "127.0.0.1", version)
            self.assertEqual(int(port), local[1], version)
            self.assertEqual(server_addr, "127.0.0.1", version)
            self.assertEqual(int(server_port), self.port, version)

    def test_v1_and_v2_over_ipv6(self):
        for version in ("v1", "v2"):
            (addr, port, server_addr, server_port), local = self.seen_by_nginx(f"{version}.test", "::1", self.port6)
            self.assertEqual(addr, "::1", version)
            self.assertEqual(int(port), local[1], version)
            self.assertEqual(int(server_port), self.port6, version)


@unittest.skipUnless(shutil.which("haproxy"), "haproxy is not installed (scripts/setup-deps installs it)")
class HaproxyReadsOurHeader(ProxyTest):
    """HAProxy (HTTP mode, accept-proxy) answers with the client address and port it read."""

    def test_v1_and_v2_through_an_http_listener(self):
        hp_v1, hp_v2 = free_port(), free_port()
        conf = os.path.join(self.dir, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(f"""global
  log stderr local0 warning
defaults
  mode http
  timeout client 10s
  timeout server 10s
  timeout connect 5s
frontend v1
  bind 127.0.0.1:{hp_v1} accept-proxy
  http-request return status 200 content-type text/plain lf-string "%ci %cp"
frontend v2
  bind 127.0.0.1:{hp_v2} accept-proxy
  http-request return status 200 content-type text/plain lf-string "%ci %cp"
""")
        haproxy = Process(["haproxy", "-f", conf, "-db"], os.path.join(self.dir, "haproxy.log"))
        self.later(haproxy.stop)
        wait_until(lambda: _can_connect("127.0.0.1", hp_v2), what="haproxy")
        port = free_port()
        tables, backends = by_version("hp", f"127.0.0.1:{hp_v1}")
        backends["hp_v2"]["servers"] = [f"127.0.0.1:{hp_v2}"]   # one HAProxy frontend per version
        proxy = self.proxy(config([listener("plain", f"127.0.0.1:{port}", "t", protocol="http")], tables, backends,
                                  free_port()))
        proxy.allow_fallback = True  # HAProxy answers and closes before the splice
        for version in ("v1", "v2"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(http_head(f"{version}.test").replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
                response = recv_all(c).decode()
                local = c.getsockname()
            self.assertIn("200", response.split("\r\n")[0], version)
            self.assertTrue(response.endswith(f"127.0.0.1 {local[1]}"), (version, response))


class InboundProxyHeaders(ProxyTest):
    """A listener with proxy_protocol_from takes the client address from a trusted PROXY header
    and passes it on; the same header from an untrusted source closes the connection."""

    def start(self, trusted):
        seen = []

        def backend(conn):
            data = b""
            while b"\r\n" not in data:
                data += conn.recv(4096)
            seen.append(data.split(b"\r\n")[0].decode())
            conn.sendall(b"ok")

        b = self.backend(backend)
        port = free_port()
        proxy = self.proxy(config(
            [listener("tls", f"127.0.0.1:{port}", "t", protocol="tls", proxy_protocol_from=[trusted])],
            {"t": [route("*", backend="b")]}, {"b": servers(b.address, proxy_protocol="v1")}, free_port()),
            name=f"inbound-{len(trusted)}")
        proxy.allow_fallback = True  # the backend answers and closes, at times before the splice
        return proxy, port, seen

    def v2_header(self, src, sport, dst, dport):
        sig = b"\r\n\r\n\x00\r\nQUIT\n"
        addresses = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
        return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses

    def test_trusted_source_header_sets_the_client(self):
        proxy, port, seen = self.start("127.0.0.0/8")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(self.v2_header("127.9.8.7", 4242, "127.0.0.1", 443) + client_hello("a.test"))
            self.assertEqual(recv_all(c), b"ok")
        wait_until(lambda: seen, what="backend")
        self.assertEqual(seen[0], "PROXY TCP4 127.9.8.7 127.0.0.1 4242 443")
        # v1 inbound, and a trusted source that sends no header at all.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"PROXY TCP4 127.1.2.3 127.0.0.1 5555 443\r\n" + client_hello("a.test"))
            self.assertEqual(recv_all(c), b"ok")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(client_hello("a.test"))
            self.assertEqual(recv_all(c), b"ok")
        wait_until(lambda: len(seen) == 3, what="backend")
        self.assertEqual(seen[1], "PROXY TCP4 127.1.2.3 127.0.0.1 5555 443")
        self.assertTrue(seen[2].startswith("PROXY TCP4 127.0.0.1 127.0.0.1 "), seen[2])

    def test_untrusted_source_header_is_refused(self):
        proxy, port, seen = self.start("10.255.255.0/24")  # not us: nothing is dialled there
        for header in (self.v2_header("127.9.8.7", 4242, "127.0.0.1", 443),
                       b"PROXY TCP4 127.1.2.3 127.0.0.1 5555 443\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(header + client_hello("a.test"))
                self.assertEqual(recv_all(c), b"")
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="proxy_protocol_error") == 2,
                   what="proxy_protocol_error counted")
        self.assertEqual(seen, [])

    def test_malformed_header_from_trusted_source_is_refused(self):
        proxy, port, seen = self.start("127.0.0.1/32")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"PROXY TCP4 127.1.2.3 nonsense\r\n" + client_hello("a.test"))
            self.assertEqual(recv_all(c), b"")
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="proxy_protocol_error") == 1,
                   what="proxy_protocol_error counted")


if __name__ == "__main__":
    unittest.main()
