"""Byte exactness on the data path under test (run in both modes; the in-kernel splice is the
point): large transfers, many connections, half-close both ways, resets, a backend that stops
reading, and the per-connection fallback."""
import hashlib
import os
import socket
import struct
import threading
import time
import unittest
import zlib

from clients import run_clients
from harness import (one_route_config, SPLICE, ProxyTest, client_hello, free_port, recv_all, recv_exact,
                     wait_until)

BIG = int(os.environ.get("SNISPLICE_BIG_BYTES", 1 << 30))   # 1 GiB each way
MANY = 200                                                  # concurrent connections
CHUNK = 1 << 20


def stream(seed, total, send):
    """Sends `total` deterministic bytes (a seeded block, each copy numbered so a reordered or
    repeated block changes the checksum); returns their CRC-32. CRC-32 keeps the Python ends
    faster than the proxy, so the test measures the proxy, not hashing."""
    crc = 0
    block = bytearray(hashlib.sha256(seed).digest() * (CHUNK // 32))
    sent = 0
    n = 0
    while sent < total:
        block[:8] = n.to_bytes(8, "big")
        piece = bytes(block[: min(CHUNK, total - sent)])
        send(piece)
        crc = zlib.crc32(piece, crc)
        sent += len(piece)
        n += 1
    return crc


def drain(recv, total):
    crc = 0
    got = 0
    while got < total:
        data = recv(min(CHUNK, total - got))
        if not data:
            raise EOFError(f"EOF after {got} of {total}")
        crc = zlib.crc32(data, crc)
        got += len(data)
    return crc


class Splice(ProxyTest):
    def start(self, handler, budget_case=False):
        backend = self.backend(handler)
        port = free_port()
        proxy = self.proxy(one_route_config(port, backend.address, free_port()))
        return backend, proxy, port

    def handshake(self, c, name="x.test"):
        """Like TLS: the hello, then the backend's first bytes, then the stream."""
        c.sendall(client_hello(name))
        self.assertEqual(recv_exact(c, 6), b"ready\n")

    @staticmethod
    def backend_handshake(conn):
        head = recv_exact(conn, 5)
        recv_exact(conn, int.from_bytes(head[3:5], "big"))
        conn.sendall(b"ready\n")

    def test_one_gib_each_way(self):
        # Unpaced: over loopback the writer outruns the reader, so the in-kernel path must
        # hold it back (pause) rather than queue or abort. One direction at a time, so each
        # end is one thread.
        seen = {}

        def handler(conn):
            self.backend_handshake(conn)
            seen["up"] = drain(conn.recv, BIG)
            conn.sendall(b"k")
            seen["down"] = stream(b"down", BIG, conn.sendall)

        backend, proxy, port = self.start(handler)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            self.handshake(c)
            up = stream(b"up", BIG, c.sendall)
            self.assertEqual(recv_exact(c, 1), b"k")
            down = drain(c.recv, BIG)
        wait_until(lambda: "down" in seen, timeout=60, what="backend to finish")
        self.assertEqual(seen["up"], up)
        self.assertEqual(down, seen["down"])
        self.assertEqual(backend.errors, [])
        wait_until(lambda: proxy.metric("snisplice_bytes_total", direction="backend_to_client") == BIG + 7,
                   what="bytes counted")
        self.assertEqual(proxy.metric("snisplice_splice_budget_aborts_total"), 0)

    def test_many_concurrent_connections(self):
        size = 512 << 10

        def handler(conn):
            self.backend_handshake(conn)
            seed = recv_exact(conn, 16)
            t = threading.Thread(target=lambda: stream(seed[::-1], size, conn.sendall))
            t.start()
            drain(conn.recv, size)
            t.join()

        backend, proxy, port = self.start(handler)

        def client(i):
            seed = os.urandom(16)
            with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
                self.handshake(c, f"c{i}.test")
                c.sendall(seed)
                t = threading.Thread(target=lambda: stream(seed, size, c.sendall))
                t.start()
                got = drain(c.recv, size)
                t.join()
                if got != stream(seed[::-1], size, lambda piece: None):
                    raise AssertionError("bytes differ")

        self.assertEqual(run_clients(MANY, client, timeout=180), [])
        self.assertEqual(backend.errors, [])
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="proxied") == MANY, timeout=30,
                   what="every connection proxied")

    def test_client_half_close_mid_stream_delivers_the_response(self):
        request, response = 8 << 20, 8 << 20
        seen = {}

        def handler(conn):
            self.backend_handshake(conn)
            seen["request"] = drain(conn.recv, request)
            self.assertEqual(conn.recv(1), b"")       # the client's FIN, after every byte
            seen["response"] = stream(b"resp", response, conn.sendall)
            conn.shutdown(socket.SHUT_WR)

        backend, proxy, port = self.start(handler)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            self.handshake(c)
            sent = stream(b"req", request, c.sendall)
            c.shutdown(socket.SHUT_WR)
            got = drain(c.recv, response)
            self.assertEqual(c.recv(1), b"")
        wait_until(lambda: "response" in seen, what="backend")
        self.assertEqual(seen["request"], sent)
        self.assertEqual(got, seen["response"])
        self.assertEqual(backend.errors, [])
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="proxied") == 1, what="proxied")

    def test_backend_closing_first(self):
        size = 4 << 20
        sent = {}

        def handler(conn):
            self.backend_handshake(conn)
            sent["down"] = stream(b"bye", size, conn.sendall)
            conn.shutdown(socket.SHUT_WR)
            sent["up"] = drain(conn.recv, 1 << 20)
            self.assertEqual(conn.recv(1), b"")

        backend, proxy, port = self.start(handler)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            self.handshake(c)
            got = drain(c.recv, size)
            self.assertEqual(c.recv(1), b"")           # the backend's FIN came through
            up = stream(b"after", 1 << 20, c.sendall)   # and this direction still flows
            c.shutdown(socket.SHUT_WR)
        wait_until(lambda: "up" in sent, what="backend")
        self.assertEqual(got, sent["down"])
        self.assertEqual(up, sent["up"])
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="proxied") == 1, what="proxied")

    def test_client_reset_mid_stream(self):
        ended = threading.Event()

        def handler(conn):
            self.backend_handshake(conn)
            try:
                while conn.recv(CHUNK):
                    pass
            except ConnectionResetError:
                pass
            ended.set()

        backend, proxy, port = self.start(handler)
        c = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.handshake(c)
        c.sendall(os.urandom(1 << 20))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        self.assertTrue(ended.wait(15), "the backend connection did not end")
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="client_reset") == 1,
                   what="client_reset")
        # The proxy still serves.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c2:
            self.handshake(c2)

    def test_backend_that_stops_reading_holds_the_client_back_and_loses_nothing(self):
        # The redirect has no flow control of its own: without the pause the kernel queued
        # whatever the client sent (1 GiB in 3 s). With it, TCP's window stops the client, the
        # connection survives, and every byte arrives once the backend reads again.
        resume = threading.Event()
        got = {}

        def handler(conn):
            self.backend_handshake(conn)
            resume.wait(30)     # stops reading
            crc = 0
            while data := conn.recv(CHUNK):
                crc = zlib.crc32(data, crc)
            got["crc"] = crc
            conn.sendall(b"k")

        backend, proxy, port = self.start(handler)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            self.handshake(c)
            block = bytearray(os.urandom(CHUNK))
            crc = 0
            pushed = 0
            c.setblocking(False)
            # Push until the window has been closed for a second (bounded by count and time).
            start = last_progress = time.monotonic()
            pending = b""
            while time.monotonic() - last_progress < 1.0 and time.monotonic() - start < 30 and pushed < (1 << 30):
                if not pending:
                    block[:8] = pushed.to_bytes(8, "big")
                    pending = bytes(block)
                try:
                    n = c.send(pending)
                except BlockingIOError:
                    time.sleep(0.005)
                    continue
                crc = zlib.crc32(pending[:n], crc)
                pending = pending[n:]
                pushed += n
                last_progress = time.monotonic()
            self.assertLess(pushed, 256 << 20, "the client was never held back: the kernel queued without bound")
            c.setblocking(True)
            resume.set()
            crc = zlib.crc32(pending, crc)
            c.sendall(pending)
            c.shutdown(socket.SHUT_WR)
            wait_until(lambda: "crc" in got or backend.errors, timeout=60, what="backend to read everything")
            self.assertEqual(recv_exact(c, 1), b"k")
        self.assertEqual(backend.errors, [])
        self.assertEqual(got["crc"], crc)
        self.assertEqual(proxy.metric("snisplice_splice_budget_aborts_total"), 0)
        if SPLICE == "sockmap":
            self.assertGreaterEqual(proxy.metric("snisplice_splice_pauses_total"), 1)
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="proxied") == 1, what="proxied")
        # What the pause held went through the proxy; it is part of the bytes carried, never more.
        held = proxy.metric("snisplice_splice_held_bytes_total")
        if SPLICE == "sockmap":
            self.assertGreater(held, 0)
        if SPLICE == "userspace":
            self.assertEqual(held, 0)
        self.assertLessEqual(held, proxy.metric("snisplice_bytes_total", direction="client_to_backend"))

    def test_client_half_closing_right_after_its_hello_falls_back_and_loses_nothing(self):
        def handler(conn):
            data = recv_all(conn)
            conn.sendall(hashlib.sha256(data).digest())

        backend, proxy, port = self.start(handler)
        proxy.allow_fallback = True
        hello = client_hello("early.test")
        extra = os.urandom(100000)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
            c.sendall(hello + extra)
            c.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_all(c), hashlib.sha256(hello + extra).digest())
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="proxied") == 1, what="proxied")


if __name__ == "__main__":
    unittest.main()
