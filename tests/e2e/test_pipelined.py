"""Clients that send data right behind their hello (TLS early data, an HTTP request body,
pipelined requests) or half-close right after it. The proxy peeks the hello, so nothing the
client sent is consumed: the kernel splice (or the relay) forwards the hello and everything
behind it. Byte-exact both ways in both modes; in sockmap mode nearly all are spliced."""
import socket
import struct
import subprocess
import threading
import time
import unittest

from clients import run_clients
from harness import (SPLICE, Certificates, OpensslServer, ProxyTest, client_hello, config, free_port, listener,
                     one_route_config, pattern, recv_all, recv_exact, route, servers, wait_until, echo)

COUNT = 40
SPLICED_SHARE = 0.95


def tls_records(content_type, payload, size=16384):
    out = bytearray()
    for start in range(0, len(payload), size):
        piece = payload[start:start + size]
        out += bytes([content_type, 3, 3]) + len(piece).to_bytes(2, "big") + piece
    return bytes(out)


def early_data(i, size):
    """The ClientHello and application-data records in one buffer (TLS 1.3 early data's shape)."""
    return client_hello(f"c{i}.early.test") + tls_records(0x17, pattern(b"early%d" % i, size))


def padded_hello(server_name, size):
    """A TLS 1.3 ClientHello of about `size` bytes (a padding extension), its handshake message
    split over records of at most 16 KiB, as large hellos (post-quantum key shares) are."""
    name = server_name.encode()
    entry = struct.pack("!BH", 0, len(name)) + name
    sni = struct.pack("!HHH", 0, len(entry) + 2, len(entry)) + entry
    versions = struct.pack("!HHB", 43, 3, 2) + b"\x03\x04"
    padding = struct.pack("!HH", 21, size) + bytes(size)
    extensions = sni + versions + padding
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack("!H", 2) + b"\x13\x01" + b"\x01\x00"
            + struct.pack("!H", len(extensions)) + extensions)
    return tls_records(0x16, b"\x01" + struct.pack("!I", len(body))[1:] + body)


def http_post(i, size):
    body = pattern(b"body%d" % i, size)
    return (f"POST /upload/{i} HTTP/1.1\r\nHost: c{i}.web.test\r\nContent-Length: {size}\r\n\r\n").encode() + body


def http_pipelined(i):
    return b"".join(f"GET /{n} HTTP/1.1\r\nHost: c{i}.web.test\r\nUser-Agent: e2e\r\n\r\n".encode()
                    for n in range(3))


class Pipelined(ProxyTest):
    def start(self, protocol="tls", listener_options=None):
        backend = self.backend(echo)
        port = free_port()
        if protocol == "tls":
            document = one_route_config(port, backend.address, free_port(), listener_options)
        else:
            document = config([listener("web", f"127.0.0.1:{port}", "t", protocol="http", **(listener_options or {}))],
                              {"t": [route("*", backend="b")]}, {"b": servers(backend.address)}, free_port())
        return backend, self.proxy(document), port

    def exchange(self, port, blob, half_close, pieces=None, prefix=b"", pause=0.05):
        """Writes `prefix` + `blob` (in one write, or `blob` as `pieces` with pauses between
        them), optionally half-closes right after, and checks the echo is `blob` exactly, then
        EOF. `prefix` (an inbound PROXY header) is not for the backend."""
        with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
            def write():
                for n, piece in enumerate(pieces or [blob]):
                    if n:
                        time.sleep(pause)
                    c.sendall((prefix if n == 0 else b"") + piece)
                if half_close:
                    c.shutdown(socket.SHUT_WR)
            writer = threading.Thread(target=write)
            writer.start()
            got = recv_exact(c, len(blob))
            writer.join()
            if got != blob:
                raise AssertionError(f"echo differs ({len(got)} of {len(blob)} bytes)")
            if not half_close:
                c.shutdown(socket.SHUT_WR)
            if recv_all(c) != b"":
                raise AssertionError("bytes after the echo")

    def check(self, proxy, backend, blobs, half_close, relayed=False):
        """Every connection proxied, every byte counted once each way, and the data path."""
        self.assertEqual(backend.errors, [])
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="proxied") == len(blobs),
                   what="every connection counted as proxied")
        total = sum(len(b) for b in blobs)
        self.assertEqual(proxy.metric("snisplice_bytes_total", direction="client_to_backend"), total)
        self.assertEqual(proxy.metric("snisplice_bytes_total", direction="backend_to_client"), total)
        records = [r for r in proxy.access_log() if r["result"] == "proxied"]
        self.assertEqual(sorted(r["bytes_client_to_backend"] for r in records), sorted(len(b) for b in blobs))
        self.assertEqual(sorted(r["bytes_backend_to_client"] for r in records), sorted(len(b) for b in blobs))
        spliced = proxy.metric("snisplice_spliced_connections_total", mode="sockmap")
        userspace = proxy.metric("snisplice_spliced_connections_total", mode="userspace")
        self.assertEqual(spliced + userspace, len(blobs))
        if relayed:
            self.assertEqual(spliced, 0)
        if SPLICE == "sockmap" and not half_close and not relayed:
            # A fallback is allowed per connection, but the hello no longer forces one.
            self.assertGreaterEqual(spliced, SPLICED_SHARE * len(blobs), f"{userspace} relayed")
        # Half-closed clients (CLOSE_WAIT cannot enter a sockhash) and the cases above are
        # checked here rather than by the harness's all-or-nothing rule.
        proxy.allow_fallback = True

    def run_many(self, protocol, blob_of, half_close=False, count=COUNT, listener_options=None, relayed=False,
                 prefix=b""):
        backend, proxy, port = self.start(protocol, listener_options)
        blobs = [blob_of(i) for i in range(count)]
        self.assertEqual(run_clients(count, lambda i: self.exchange(port, blobs[i], half_close, prefix=prefix)), [])
        self.check(proxy, backend, blobs, half_close, relayed)

    def test_tls_early_data_in_the_hello_write(self):
        self.run_many("tls", lambda i: early_data(i, 1000 + 997 * i))

    def test_a_megabyte_behind_the_hello(self):
        self.run_many("tls", lambda i: early_data(i, 1 << 20), count=6)

    def test_http_request_with_body(self):
        self.run_many("http", lambda i: http_post(i, 500 + 1500 * i))

    def test_pipelined_http_requests(self):
        self.run_many("http", http_pipelined)

    def test_half_close_right_after_hello_and_data(self):
        self.run_many("tls", lambda i: early_data(i, 3000 + i), half_close=True, count=20)

    def test_http_half_close_right_after_the_request(self):
        self.run_many("http", lambda i: http_post(i, 2000 + i), half_close=True, count=20)

    def test_segmented_hello_with_data_behind_its_last_piece(self):
        # The hello in three writes: the proxy waits for more than it peeked (SO_RCVLOWAT),
        # and the data riding with the last piece is still forwarded, in order.
        backend, proxy, port = self.start()
        blobs = []

        def client(i):
            hello = client_hello(f"c{i}.seg.test")
            data = tls_records(0x17, pattern(b"seg%d" % i, 5000))
            blobs.append(hello + data)
            self.exchange(port, hello + data, False, [hello[:3], hello[3:100], hello[100:] + data])
        self.assertEqual(run_clients(10, client), [])
        self.check(proxy, backend, blobs, False)

    def test_large_hellos_in_many_records_dribbled_with_data_behind(self):
        # The peek buffer grows past its first 2 KiB, the socket keeps the whole hello queued
        # (SO_RCVBUF), and the low-water mark follows each piece. 60 000 bytes is close to the
        # largest limit a listener may set (64 KiB).
        backend, proxy, port = self.start(listener_options={"client_hello_max_bytes": 65536})
        blobs = []
        shapes = [(40000, 4000), (60000, 60000 + 20000), (60000, 1400), (20000, 1)]

        def client(i):
            size, piece = shapes[i % len(shapes)]
            hello = padded_hello(f"c{i}.big.test", size)
            data = tls_records(0x17, pattern(b"big%d" % i, 20000))
            blobs.append(hello + data)
            if piece == 1:  # a dribbled head, then the rest
                pieces = [hello[k:k + 1] for k in range(20)] + [hello[20:] + data]
            else:
                pieces = [hello[k:k + piece] for k in range(0, len(hello), piece)]
                pieces[-1] += data
            self.exchange(port, hello + data, False, pieces, pause=0.01)
        self.assertEqual(run_clients(2 * len(shapes), client), [])
        self.check(proxy, backend, blobs, False)

    def test_trusted_proxy_header_is_consumed_and_the_rest_relayed_exactly(self):
        # The header is read from the socket (the backend must not see it); the verdict would
        # forward a partly read skb whole, so these connections are relayed in userspace.
        header = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 443\r\n"
        self.run_many("tls", lambda i: early_data(i, 2000 + i), count=10,
                      listener_options={"proxy_protocol_from": ["127.0.0.1/32"]}, relayed=True, prefix=header)

    def test_a_refused_hello_still_gets_a_fin(self):
        # The peeked hello is unread when the route refuses it: the proxy drops it before the
        # close, which would otherwise answer with a reset.
        port = free_port()
        proxy = self.proxy(config([listener("tls", f"127.0.0.1:{port}", "t", protocol="tls")],
                                  {"t": [route("*", action="reject")]}, {}, free_port()))
        for name in ("a.test", "b.test"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(client_hello(name))
                self.assertEqual(recv_all(c), b"")  # a ConnectionResetError fails the test
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="rejected") == 2,
                   what="both refusals counted")

    def test_curl_and_s_client_through_it(self):
        certs = Certificates(self.dir, ["api.test"])
        server_port = free_port()
        server = OpensslServer(self.dir, certs, "api", server_port)
        self.later(server.stop)
        port = free_port()
        proxy = self.proxy(one_route_config(port, f"127.0.0.1:{server_port}", free_port()))
        out = subprocess.run(["curl", "-sk", "--max-time", "10", "--resolve", f"api.test:{port}:127.0.0.1",
                              f"https://api.test:{port}/"], capture_output=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr.decode())
        self.assertIn(b"s_server", out.stdout)
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "api.test",
                              "-ign_eof"], input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=15)
        self.assertIn(b"s_server", out.stdout)
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="proxied") == 2,
                   what="both connections counted as proxied")
        if SPLICE == "sockmap":
            self.assertEqual(proxy.metric("snisplice_spliced_connections_total", mode="sockmap"), 2)


if __name__ == "__main__":
    unittest.main()
