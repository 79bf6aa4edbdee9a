"""Hostile input through the real binary: open-proxy attempts (every spelling of this host's
addresses, by name through DNS and as literals in SNI and Host), DNS rebinding, the proxy's own
listener as a destination, PROXY headers from sources that may not send them, and HTTP requests
that name more than one host. Each attempt must be refused, never reach a backend, and be counted
in snisplice_connections_total{result} under the expected result.

Only loopback addresses are available, so "allowed" and "forbidden" are told apart like this:
  - an *allowed* backend listens on 127.0.0.2:P, and the routes that may reach it say
    `allow_networks: ["127.0.0.2/32"]`: that one address (however written) may be dialled,
    every other address of this host may not;
  - the routes without allow_networks use the default policy, which refuses all of loopback,
    so nothing is allowed through them;
  - *traps* listen on every other address of this host at the same port P (0.0.0.0:P and [::]:P,
    SO_REUSEPORT beside the allowed backend, which the kernel prefers for 127.0.0.2 because it
    is the more specific binding). A refusal that was really a bypass would land in a trap, so
    each test ends by checking that no trap accepted anything, and the allowed backend counts
    exactly the connections meant for it (a test that reaches it first proves the refusals are
    not a broken setup).

As root the module runs in a network namespace of its own (only `lo`, nothing routed anywhere
else), where the wildcard traps see only loopback and the IPv6 forms that embed 127.0.0.1
(NAT64 64:ff9b::7f00:1 and 64:ff9b:1::7f00:1, IPv4-compatible ::127.0.0.1, 6to4 2002:7f00:1::)
are put on `lo` as traps too: a bypass reaches a trap instead of leaving the host. Without root
the traps listen on 127.0.0.1 and ::1 only and the embedded-IPv6 cases are skipped, since those
addresses would be routed off this host. No DNS zone here ever names anything but 127.0.0.0/8,
::1, ::, or their IPv4-mapped forms (tests/support/dns_server.py refuses anything else).
"""
import contextlib
import ctypes
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

from harness import (ProxyTest, closed_without_data, config, dns, free_port, listener, recv_exact, route, servers,
                     wait_until)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../support"))
from dns_server import DnsServerProcess  # noqa: E402

CLONE_NEWNET = 0x40000000
# IPv6 addresses that embed 127.0.0.1 or 127.0.0.2 and lead off the host outside a namespace.
EMBEDDED_TRAPS = ["64:ff9b::7f00:1", "64:ff9b::7f00:2", "64:ff9b:1::7f00:1", "::7f00:1", "2002:7f00:1::"]
private_netns = False


def setUpModule():
    """As root: move this process (and so every child: proxy, DNS server) into a new network
    namespace with only lo. unshare(2) applies to the calling thread, and the test runner has no
    other thread yet."""
    global private_netns
    if os.geteuid() != 0:
        print("test_hostile: not root: traps on 127.0.0.1 and ::1 only; embedded-IPv6 cases skipped",
              file=sys.stderr)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for address in EMBEDDED_TRAPS:
        subprocess.run(["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo"], check=True)
    private_netns = True


SNI_OF = {}   # hello bytes -> the server name in them, for failure messages


def tls_hello(server_name):
    """A minimal TLS 1.3 ClientHello carrying `server_name` (bytes) verbatim in its SNI: Python's
    ssl module sends no SNI for IP literals and checks names, so it cannot send these."""
    entry = struct.pack("!BH", 0, len(server_name)) + server_name
    sni = struct.pack("!HHH", 0, len(entry) + 2, len(entry)) + entry
    versions = struct.pack("!HHB", 43, 3, 2) + b"\x03\x04"
    extensions = sni + versions
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack("!H", 2) + b"\x13\x01" + b"\x01\x00"
            + struct.pack("!H", len(extensions)) + extensions)
    message = b"\x01" + struct.pack("!I", len(body))[1:] + body
    hello = b"\x16\x03\x01" + struct.pack("!H", len(message)) + message
    SNI_OF[hello] = server_name
    return hello


def describe(payload):
    for hello, name in SNI_OF.items():
        if payload.endswith(hello):
            prefix = payload[:-len(hello)]
            return (f"{prefix!r} + " if prefix else "") + f"ClientHello(SNI {name!r})"
    return repr(payload[:100])


def http_request(host, target="/"):
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: e2e\r\n\r\n".encode()


def reuseport_listener(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


class Listeners:
    """Accepting sockets sharing one port: the allowed backend (echoes what it reads, then
    closes) and the traps (record who reached them and close at once)."""

    def __init__(self, port, allowed, traps):
        self.sockets = {reuseport_listener(allowed, port): "allowed"}
        for host in traps:
            self.sockets[reuseport_listener(host, port)] = "trap"
        self.allowed = 0
        self.trapped = []   # (trap address reached, peer)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        selector = selectors.DefaultSelector()
        for sock in self.sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while not self.stop.is_set():
            for key, _ in selector.select(timeout=0.1):
                try:
                    conn, peer = key.fileobj.accept()
                except BlockingIOError:
                    continue
                if self.sockets[key.fileobj] == "trap":
                    self.trapped.append((conn.getsockname()[0], peer))
                    conn.close()
                else:
                    self.allowed += 1
                    threading.Thread(target=self.echo_once, args=(conn,), daemon=True).start()
        selector.close()

    @staticmethod
    def echo_once(conn):
        with conn, contextlib.suppress(OSError):
            conn.settimeout(10)
            data = conn.recv(65536)
            conn.sendall(data)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for sock in self.sockets:
            sock.close()


class Hostile(ProxyTest):
    def setUp(self):
        super().setUp()
        self.backend_port = free_port()
        traps = ["0.0.0.0", "::"] if private_netns else ["127.0.0.1", "::1"]
        self.listeners = Listeners(self.backend_port, "127.0.0.2", traps)
        self.later(self.listeners.close)
        self.expected_allowed = 0

    def tearDown(self):
        try:
            self.assertEqual(self.listeners.trapped, [], "a refused attempt reached this host")
            if getattr(self._outcome, "success", True):
                self.assertEqual(self.listeners.allowed, self.expected_allowed, "connections to the allowed backend")
        finally:
            super().tearDown()

    def start_dns(self, zone):
        self.dns = DnsServerProcess(zone)
        self.dns.__enter__()
        self.later(lambda: self.dns.__exit__(None, None, None))

    def start_proxy(self, listeners, tables):
        """listeners: [(name, protocol, table, further options)], each on 127.0.0.1 and ::1;
        tables(backend port, ports): the tables. Returns ports: {name: IPv4 port, name + "6": IPv6 port}."""
        ports = {}
        entries = []
        for name, protocol, table, options in listeners:
            ports[name] = free_port()
            ports[name + "6"] = free_port(socket.AF_INET6)
            entries.append(listener(name, [f"127.0.0.1:{ports[name]}", f"[::1]:{ports[name + '6']}"], table,
                                    protocol=protocol, client_hello_timeout="3s", **options))
        pin_path = f"/sys/fs/bpf/snisplice-e2e-hostile-{os.getpid()}-{self.backend_port}-{len(self.proxies)}"
        self.later(lambda: subprocess.run(["rm", "-rf", pin_path]))
        if not hasattr(self, "dns"):   # never the system's resolver, even when no test name needs one
            self.start_dns({"names": {}})
        # min_ttl 0: an answer with TTL 0 is asked for again on the next connection (rebinding).
        self.proxy_ = self.proxy(config(entries, tables(self.backend_port, ports), {"unused": servers("127.0.0.2:9")},
                                        free_port(), dns=dns(self.dns.port, min_ttl="0s"), bpf_pin_path=pin_path),
                                 name=f"snisplice-{len(self.proxies)}")
        # Allowed connections end with the backend closing right after its echo; in the sockmap
        # mode some legitimately fall back to the relay around that close.
        self.proxy_.allow_fallback = True
        return ports

    def attempt(self, port, payload, host="127.0.0.1", pieces=1):
        """Sends `payload` (in `pieces` writes, 20 ms apart); True when the proxy closed without
        sending anything back."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as c:
            c.settimeout(10)
            c.connect((host, port))
            step = max(1, -(-len(payload) // pieces))
            try:
                for offset in range(0, len(payload), step):
                    c.sendall(payload[offset:offset + step])
                    if pieces > 1:
                        time.sleep(0.02)
            except (BrokenPipeError, ConnectionResetError):
                return True   # refused before the whole payload was written
            return closed_without_data(c)

    def refused(self, listener, port, payload, result, **kwargs):
        """One attempt that must be refused, counted once under `result` for `listener`."""
        before = self.proxy_.metric("snisplice_connections_total", listener=listener, result=result)
        self.assertTrue(self.attempt(port, payload, **kwargs), f"{listener}: {describe(payload)} was answered")
        wait_until(lambda: self.proxy_.metric("snisplice_connections_total", listener=listener,
                                              result=result) == before + 1,
                   what=f"{listener}: {describe(payload)} counted as {result}")

    def reaches(self, port, payload, echoed=None):
        """One attempt that must reach the allowed backend, which echoes what it first reads:
        `echoed`, by default the whole payload."""
        echoed = payload if echoed is None else echoed
        self.expected_allowed += 1
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(payload)
            self.assertEqual(recv_exact(c, len(echoed)), echoed)


# ------------------------------------------------------------------------------------------
# Names resolved through DNS, and literals, against the address policy.

def names_tables(backend_port, ports):
    return {
        "names": [route(".allowed.test", resolve={"port": backend_port, "allow_networks": ["127.0.0.2/32"]}),
                  route(".open.test", resolve={"port": backend_port}),
                  route(".self.test", resolve={"port": ports["tls_names"],
                                               "allow_networks": ["127.0.0.0/8", "::1/128"]})],
        "narrow": [route("*", resolve={"port": backend_port, "allow_networks": ["127.0.0.2/32"]})],
        "default": [route("*", resolve={"port": backend_port})],
    }


NAMES_LISTENERS = [("tls_names", "tls", "names", {}), ("http_names", "http", "names", {}),
                   ("tls_narrow", "tls", "narrow", {}), ("http_narrow", "http", "narrow", {}),
                   ("tls_default", "tls", "default", {}), ("http_default", "http", "default", {})]

# Every strict way a DNS answer can put this host in front of the proxy (dns_server.py accepts
# only these); label -> records.
THIS_HOST_ANSWERS = {
    "lo": [{"type": "A", "data": "127.0.0.1"}],
    "lo3": [{"type": "A", "data": "127.0.0.3"}],
    "top": [{"type": "A", "data": "127.255.255.254"}],
    "zero": [{"type": "A", "data": "0.0.0.0"}],
    "v6": [{"type": "AAAA", "data": "::1"}],
    "any6": [{"type": "AAAA", "data": "::"}],
    "mapped": [{"type": "AAAA", "data": "::ffff:127.0.0.1"}],
    "mapped-zero": [{"type": "AAAA", "data": "::ffff:0.0.0.0"}],
    "both": [{"type": "A", "data": "127.0.0.1"}, {"type": "AAAA", "data": "::1"}],
}

# Literal spellings of this host in SNI / Host: (text, result). Strict literals are the address
# they spell and the policy refuses them; every other spelling is no valid name.
LITERALS = [
    ("127.0.0.1", "denied_address"), ("127.0.0.1.", "denied_address"), ("127.1.2.3", "denied_address"),
    ("127.255.255.254", "denied_address"), ("0.0.0.0", "denied_address"), ("0.0.0.0.", "denied_address"),
    ("LOCALHOST", "denied_address"), ("localhost.", "denied_address"),
    ("127.1", "client_hello_error"), ("127.0.1", "client_hello_error"), ("2130706433", "client_hello_error"),
    ("0x7f000001", "client_hello_error"), ("0X7F000001", "client_hello_error"), ("0x7f.0.0.1", "client_hello_error"),
    ("0177.0.0.1", "client_hello_error"), ("0177.1", "client_hello_error"), ("127.000.000.001", "client_hello_error"),
    ("017700000001", "client_hello_error"), ("0", "client_hello_error"), ("127.0.0.1.1", "client_hello_error"),
    ("2130706433.", "client_hello_error"),
]
# IPv6 forms only HTTP can carry (in brackets); in SNI a ':' makes any of them an invalid name.
# Host may add a port, which is no part of the address; in SNI it makes the name invalid.
V6_LITERALS = ["[::1]", "[0:0:0:0:0:0:0:1]", "[::]", "[::ffff:127.0.0.1]", "[::FFFF:7F00:1]",
               "[0:0:0:0:0:ffff:7f00:1]", "[::ffff:0.0.0.0]", "[::ffff:127.0.0.3]:443", "127.0.0.1:443",
               "0.0.0.0:80"]


class OpenProxy(Hostile):
    def setUp(self):
        super().setUp()
        zone = {"names": {}}
        for label, records in THIS_HOST_ANSWERS.items():
            for domain in ("allowed.test", "open.test"):
                zone["names"][f"{label}.{domain}"] = records
        zone["names"].update({
            "ok.allowed.test": [{"type": "A", "data": "127.0.0.2"}],
            "ok-mapped.allowed.test": [{"type": "AAAA", "data": "::ffff:127.0.0.2"}],
            "ok.open.test": [{"type": "A", "data": "127.0.0.2"}],
            "alias.allowed.test": [{"type": "CNAME", "data": "lo.elsewhere.test"}],
            "lo.elsewhere.test": [{"type": "A", "data": "127.0.0.1"}],
            "mixed.allowed.test": [{"type": "A", "data": "127.0.0.1"}, {"type": "A", "data": "127.0.0.2"},
                                   {"type": "AAAA", "data": "::1"}],
            "rebind.allowed.test": [{"type": "A", "data": "127.0.0.2", "ttl": 0}],
            "loop.self.test": [{"type": "A", "data": "127.0.0.1"}],
            "zero.self.test": [{"type": "A", "data": "0.0.0.0"}],
            "mapped.self.test": [{"type": "AAAA", "data": "::ffff:127.0.0.1"}],
            "elsewhere.self.test": [{"type": "A", "data": "127.0.0.2"}],
        })
        self.start_dns(zone)
        self.ports = self.start_proxy(NAMES_LISTENERS, names_tables)

    def both(self, name):
        """(listener, port, payload) for the TLS and the HTTP listener of the names table."""
        return [("tls_names", self.ports["tls_names"], tls_hello(name.encode())),
                ("http_names", self.ports["http_names"], http_request(name))]

    def test_allowed_backend_is_reached_by_name_and_by_literal(self):
        for name in ("ok.allowed.test", "OK.Allowed.TEST.", "ok-mapped.allowed.test"):
            for _, port, payload in self.both(name):
                self.reaches(port, payload)
        self.reaches(self.ports["tls_narrow"], tls_hello(b"127.0.0.2"))
        for host in ("127.0.0.2", "127.0.0.2.:8080", "[::ffff:127.0.0.2]", "[::FFFF:7F00:2]:443"):
            self.reaches(self.ports["http_narrow"], http_request(host))

    def test_names_resolving_to_this_host_are_refused(self):
        names = [f"{label}.{domain}" for label in THIS_HOST_ANSWERS for domain in ("allowed.test", "open.test")]
        names += ["ok.open.test", "alias.allowed.test", "LO.Allowed.Test.", "V6.OPEN.TEST"]
        for name in names:
            for listener, port, payload in self.both(name):
                self.refused(listener, port, payload, "denied_address")
        log = self.proxy_.output()
        self.assertIn('refusing to dial 127.0.0.1:', log)
        self.assertIn("loopback 127.0.0.0/8", log)
        self.assertIn("not in allow_networks", log)

    def test_an_answer_mixing_allowed_and_forbidden_addresses_dials_only_the_allowed_one(self):
        for _, port, payload in self.both("mixed.allowed.test"):
            self.reaches(port, payload)

    def test_literals_in_sni_and_host_are_refused(self):
        for table in ("narrow", "default"):
            for text, result in LITERALS:
                self.refused(f"tls_{table}", self.ports[f"tls_{table}"], tls_hello(text.encode()), result)
                self.refused(f"http_{table}", self.ports[f"http_{table}"], http_request(text), result)
            for text in V6_LITERALS:
                self.refused(f"http_{table}", self.ports[f"http_{table}"], http_request(text), "denied_address")
                self.refused(f"tls_{table}", self.ports[f"tls_{table}"], tls_hello(text.encode()),
                             "client_hello_error")
        # The literal allowed for the narrow table is still refused by the default one.
        self.refused("tls_default", self.ports["tls_default"], tls_hello(b"127.0.0.2"), "denied_address")
        # Names never go to DNS when they are refused as spellings of an address.
        for text, result in LITERALS:
            if result == "client_hello_error":
                self.assertEqual(self.dns.queries(text), 0, text)

    def test_ipv6_forms_embedding_this_host_are_refused(self):
        if not private_netns:
            self.skipTest("needs root: outside a private network namespace these addresses are routed off this host")
        for table in ("narrow", "default"):
            for address in EMBEDDED_TRAPS + ["64:ff9b::127.0.0.1", "64:FF9B::7F00:1", "::127.0.0.1"]:
                self.refused(f"http_{table}", self.ports[f"http_{table}"], http_request(f"[{address}]"),
                             "denied_address")
        self.assertIn("NAT64 64:ff9b::/96", self.proxy_.output())

    def test_dns_rebinding_from_an_allowed_to_a_loopback_answer_is_refused(self):
        """The first answer (TTL 0) is the allowed backend; the next query for the same name
        answers 127.0.0.1 and the policy, applied to every address dialled, refuses it."""
        port = self.ports["tls_names"]
        self.reaches(port, tls_hello(b"rebind.allowed.test"))
        zone_names = dict(self.dns_zone_names())
        zone_names["rebind.allowed.test"] = [{"type": "A", "data": "127.0.0.1", "ttl": 0}]
        self.dns.set_zone({"names": zone_names})
        self.refused("tls_names", port, tls_hello(b"rebind.allowed.test"), "denied_address")
        self.assertEqual(self.dns.queries("rebind.allowed.test", "A"), 2)   # asked again: TTL 0
        # And back: the allowed answer is followed again, so the refusal was the answer's doing.
        zone_names["rebind.allowed.test"] = [{"type": "A", "data": "127.0.0.2", "ttl": 0}]
        self.dns.set_zone({"names": zone_names})
        self.reaches(port, tls_hello(b"rebind.allowed.test"))

    def dns_zone_names(self):
        with open(self.dns.zone_path) as zone_file:
            return json.load(zone_file)["names"].items()

    def test_the_proxys_own_listener_is_refused_even_when_allow_networks_covers_it(self):
        """.self.test dials port tls_names on any loopback address: 127.0.0.1 there is the proxy
        itself (one hello would make the proxy connect to itself over and over)."""
        for name in ("loop.self.test", "zero.self.test", "mapped.self.test"):
            self.refused("tls_names", self.ports["tls_names"], tls_hello(name.encode()), "denied_address")
        self.assertIn("proxy's own listener", self.proxy_.output())
        # The same port on another loopback address is the list's to allow: dialled (nothing
        # listens there), so the refusal above was about the listener, not the port.
        self.refused("tls_names", self.ports["tls_names"], tls_hello(b"elsewhere.self.test"), "connect_error")
        self.assertEqual(self.proxy_.metric("snisplice_connections_total", listener="tls_names"), 4)


# ------------------------------------------------------------------------------------------
# HTTP requests that name two hosts, or hide one.

class HostConfusion(Hostile):
    def test_several_hosts_or_a_conflicting_target_are_refused(self):
        self.start_dns({"names": {"ok.allowed.test": [{"type": "A", "data": "127.0.0.2"}]}})
        port = self.start_proxy([("http", "http", "t", {})], lambda backend_port, _: {"t": [
            route(".allowed.test", resolve={"port": backend_port, "allow_networks": ["127.0.0.2/32"]}),
            route("*", action="reject")]})["http"]
        for head in ("GET / HTTP/1.1\r\nHost: ok.allowed.test\r\n\r\n",
                     "GET http://OK.allowed.test:8080/x HTTP/1.1\r\nHost: ok.allowed.test.:80\r\n\r\n",
                     "CONNECT ok.allowed.test:443 HTTP/1.1\r\nHost: ok.allowed.test:443\r\n\r\n"):
            self.reaches(port, head.encode())
        heads = {
            "client_hello_error": [
                "GET / HTTP/1.1\r\nHost: ok.allowed.test\r\nHost: 127.0.0.1\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: ok.allowed.test\r\nHost: ok.allowed.test\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: ok.allowed.test\r\nX-A: b\r\nhOST: 127.0.0.1\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: ok.allowed.test\r\n Host: 127.0.0.1\r\n\r\n",
                "GET / HTTP/1.1\r\nHost : 127.0.0.1\r\nHost: ok.allowed.test\r\n\r\n",
                "GET http://127.0.0.1/ HTTP/1.1\r\nHost: ok.allowed.test\r\n\r\n",
                "GET http://other.allowed.test/ HTTP/1.1\r\nHost: ok.allowed.test\r\n\r\n",
                f"GET http://[::1]:{port}/ HTTP/1.1\r\nHost: ok.allowed.test\r\n\r\n",
                "GET http://ok.allowed.test@127.0.0.1/ HTTP/1.1\r\nHost: ok.allowed.test\r\n\r\n",
                "GET http://127.0.0.1@ok.allowed.test/ HTTP/1.1\r\nHost: ok.allowed.test\r\n\r\n",
                "GET ftp://127.0.0.1/ HTTP/1.1\r\nHost: ok.allowed.test\r\n\r\n",
                "GET 127.0.0.1:22 HTTP/1.1\r\nHost: ok.allowed.test\r\n\r\n",
                "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: ok.allowed.test\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: ok.allowed.test:443@127.0.0.1\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: ok.allowed.test@127.0.0.1\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: 127.0.0.1:80@ok.allowed.test\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: ok.allowed.test:99999\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: ok.allowed.test:80:80\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: ok.allowed.test 127.0.0.1\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: ok.allowed.test\x00127.0.0.1\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: ok.allowed.test\r127.0.0.1\r\n\r\n",
            ],
            "rejected": [   # the "*" route: hosts that are no .allowed.test name at all
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                "GET http://127.0.0.1/ HTTP/1.1\r\n\r\n",
                "CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n",
            ],
        }
        for result, texts in heads.items():
            for text in texts:
                self.refused("http", port, text.encode(), result)


# ------------------------------------------------------------------------------------------
# PROXY headers from sources that may not send them (test_proxy_protocol.py covers a listener
# trusting another network, and a malformed header from a trusted source).

def v2_header(src, dst, sport=4242, dport=443, command=0x21):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if command == 0x20:   # LOCAL
        return sig + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    addresses = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + bytes([command, 0x11]) + struct.pack("!H", len(addresses)) + addresses


HEADERS = {
    "v1": b"PROXY TCP4 127.0.0.2 127.0.0.1 4242 443\r\n",
    "v1 unknown": b"PROXY UNKNOWN\r\n",
    "v1 tcp6": b"PROXY TCP6 ::1 ::1 4242 443\r\n",
    "v2": v2_header("127.0.0.2", "127.0.0.1"),
    "v2 local": v2_header("0.0.0.0", "0.0.0.0", command=0x20),
}


class UntrustedProxyHeaders(Hostile):
    def start(self, trusted):
        """trusted: the proxy_protocol_from networks, if any."""
        options = {"proxy_protocol_from": trusted} if trusted else {}
        return self.start_proxy(
            [("tls", "tls", "t", options), ("http", "http", "t", options)],
            lambda backend_port, _: {"t": [route("*", resolve={"port": backend_port, "allow_networks": ["127.0.0.2/32"]})]})

    def test_no_proxy_protocol_from_refuses_every_header_whole_or_dribbled(self):
        ports = self.start(None)
        self.reaches(ports["tls"], tls_hello(b"127.0.0.2"))   # the route itself is open
        self.reaches(ports["http"], http_request("127.0.0.2"))
        for label, header in HEADERS.items():
            with self.subTest(header=label):
                self.refused("tls", ports["tls"], header + tls_hello(b"127.0.0.2"), "proxy_protocol_error")
                self.refused("http", ports["http"], header + http_request("127.0.0.2"), "proxy_protocol_error")
        # Byte by byte, the proxy waits while the bytes are a prefix of a signature and recognises
        # the header at its sixth (v1) or twelfth (v2) byte, on either listener.
        for label, header in HEADERS.items():
            with self.subTest(dribbled=label):
                self.refused("http", ports["http"], header + http_request("127.0.0.2"), "proxy_protocol_error",
                             pieces=len(header))
                self.refused("tls", ports["tls"], header + tls_hello(b"127.0.0.2"), "proxy_protocol_error",
                             pieces=len(header))

    def test_a_trusted_network_of_another_address_or_family_does_not_trust_this_client(self):
        ports = self.start(["127.0.0.3/32", "::1/128"])
        for label in ("v1", "v2"):
            self.refused("tls", ports["tls"], HEADERS[label] + tls_hello(b"127.0.0.2"), "proxy_protocol_error")
            self.refused("http", ports["http"], HEADERS[label] + http_request("127.0.0.2"), "proxy_protocol_error")
        ports = self.start(["127.0.0.0/8"])
        for label in ("v1", "v2"):   # from ::1, outside an IPv4-only list
            self.refused("tls", ports["tls6"], HEADERS[label] + tls_hello(b"127.0.0.2"), "proxy_protocol_error",
                         host="::1")

    def test_a_trusted_source_cannot_stack_a_second_header(self):
        ports = self.start(["127.0.0.0/8"])
        self.reaches(ports["tls"], HEADERS["v2"] + tls_hello(b"127.0.0.2"), echoed=tls_hello(b"127.0.0.2"))
        for first in ("v1", "v2"):
            for second in ("v1", "v2"):
                self.refused("tls", ports["tls"], HEADERS[first] + HEADERS[second] + tls_hello(b"127.0.0.2"),
                             "client_hello_error")
                self.refused("http", ports["http"], HEADERS[first] + HEADERS[second] + http_request("127.0.0.2"),
                             "client_hello_error")


if __name__ == "__main__":
    unittest.main()
