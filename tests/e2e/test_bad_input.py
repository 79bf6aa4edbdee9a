"""Bad and slow input: each ends only its own connection, cleanly, counted under the right
result, and the proxy keeps serving everyone else."""
import socket
import struct
import threading
import time
import unittest

from harness import (one_route_config, ProxyTest, client_hello, config, free_port, listener, recv_all, recv_exact,
                     route, servers, wait_until, echo)


class BadInput(ProxyTest):
    def setUp(self):
        super().setUp()
        self.echo = self.backend(echo)
        self.port, self.metrics_port = free_port(), free_port()
        self.refused_port = free_port()  # nothing listens here
        self.proxy_ = self.proxy(config(
            [listener("tls", f"127.0.0.1:{self.port}", "t", protocol="tls", client_hello_timeout="1s",
                      client_hello_max_bytes=2048)],
            {"t": [route("refused.test", backend="refused"), route("*.test", backend="echo")]},
            {"echo": servers(self.echo.address),
             "refused": servers(f"127.0.0.1:{self.refused_port}", connect_timeout="1s")},
            self.metrics_port))

    def result_count(self, result):
        return self.proxy_.metric("snisplice_connections_total", result=result)

    def assert_still_serving(self):
        hello = client_hello("ok.test")
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
            c.sendall(hello + b"ping")
            self.assertEqual(recv_exact(c, len(hello) + 4), hello + b"ping")

    def expect_closed(self, payload, result, dribble=False):
        before = self.result_count(result)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as c:
            if dribble:
                for byte in payload:
                    try:
                        c.send(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.1)
            else:
                c.sendall(payload)
            c.settimeout(10)
            try:
                self.assertEqual(recv_all(c), b"")
            except ConnectionResetError:
                pass
        wait_until(lambda: self.result_count(result) == before + 1, what=f"a {result} to be counted")
        self.assert_still_serving()

    def test_garbage_is_a_hello_error(self):
        self.expect_closed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "client_hello_error")
        self.expect_closed(bytes(range(256)), "client_hello_error")

    def test_hello_over_the_limit_is_a_hello_error(self):
        hello = client_hello("big.test", alpn=[f"p{i:03d}-" + "x" * 40 for i in range(60)])
        self.assertGreater(len(hello), 2048)
        self.expect_closed(hello, "client_hello_error")

    def test_truncated_hello_then_close_is_counted_as_client_closed(self):
        hello = client_hello("cut.test")
        before = self.result_count("client_closed")
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
            c.sendall(hello[: len(hello) // 2])
        wait_until(lambda: self.result_count("client_closed") == before + 1, what="client_closed")
        self.assert_still_serving()

    def test_dribbled_hello_is_cut_at_the_timeout(self):
        hello = client_hello("slow.test")
        start = time.monotonic()
        self.expect_closed(hello, "client_hello_timeout", dribble=True)
        # One absolute deadline from accept (1 s): dribbling does not extend it.
        self.assertLess(time.monotonic() - start, 8)

    def test_silent_client_is_cut_at_the_timeout(self):
        before = self.result_count("client_hello_timeout")
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
            t0 = time.monotonic()
            self.assertEqual(recv_all(c), b"")
            self.assertLess(time.monotonic() - t0, 3)
        wait_until(lambda: self.result_count("client_hello_timeout") == before + 1, what="timeout counted")

    def test_refusing_backend_is_a_connect_error(self):
        self.expect_closed(client_hello("refused.test"), "connect_error")

    def test_backend_vanishing_mid_stream(self):
        def vanish(conn):
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()   # RST

        vanishing = self.backend(vanish)
        port, metrics_port = free_port(), free_port()
        proxy = self.proxy(one_route_config(port, vanishing.address, metrics_port), name="second")
        proxy.allow_fallback = True  # the backend resets as soon as it reads, at times before the splice
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(client_hello("x.test"))
            with self.assertRaises((ConnectionResetError, AssertionError)):
                data = recv_all(c)
                raise AssertionError(f"got {data!r}") if data else ConnectionResetError()
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="backend_reset") == 1,
                   what="backend_reset")

    def test_client_reset_mid_stream(self):
        before = self.result_count("client_reset")
        c = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        hello = client_hello("reset.test")
        c.sendall(hello)
        recv_exact(c, len(hello))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        wait_until(lambda: self.result_count("client_reset") == before + 1, what="client_reset")
        self.assert_still_serving()
        wait_until(lambda: self.proxy_.metric("snisplice_active_connections") == 0, what="no active connections")


if __name__ == "__main__":
    unittest.main()
