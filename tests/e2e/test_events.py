"""Live events end to end: the real binary's /events.ndjson (read as `curl -N` reads it) and
/events (WebSocket, python3-websocket) carry the events of real connections, in order, with the
contract's fields; filters select; reloads appear; a subscriber that stops reading is cut off
while the proxy and the other subscribers go on; the subscriber limit and the bearer token hold.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

from harness import (SPLICE, EchoServer, ProxyTest, client_hello, config, dns, free_port, listener,
                     open_echoed_connections, recv_all, route, servers, wait_until)

try:
    import websocket  # Debian's python3-websocket (websocket-client)
except ImportError:
    # The same package when the interpreter running the tests is not Debian's own (pyenv):
    # it is pure Python.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import websocket
    except ImportError:
        websocket = None
    finally:
        sys.path.remove("/usr/lib/python3/dist-packages")


def events_config(port, backend_address, metrics_port, **metrics_options):
    return config([listener("tls", f"127.0.0.1:{port}", "t", protocol="tls")],
                  {"t": [route("*.events.test", backend="b")]}, {"b": servers(backend_address)}, metrics_port,
                  metrics=metrics_options)


class Stream:
    """`curl -N` on an event stream; its lines parsed as they arrive."""

    def __init__(self, url, headers=()):
        argv = ["curl", "-sN", "--max-time", "120", url]
        for header in headers:
            argv += ["-H", header]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
        self.events = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            if not line.endswith(b"\n"):
                return   # cut short by close()
            self.events.append(json.loads(line))

    def wait_for(self, predicate, what, timeout=10):
        return wait_until(lambda: [e for e in self.events if predicate(e)], timeout=timeout, what=what)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.thread.join(10)
        self.proc.stdout.close()


class EventStreams(ProxyTest):
    def setUp(self):
        super().setUp()
        self.backend_ = self.backend(self.answer)
        self.port = free_port()
        self.metrics_port = free_port()
        self.base = f"http://127.0.0.1:{self.metrics_port}"
        self.streams = []

    @staticmethod
    def answer(conn):
        conn.recv(65536)
        conn.sendall(b"backend says hi")

    def start(self, **metrics_options):
        self.proxy_ = self.proxy(events_config(self.port, self.backend_.address, self.metrics_port, **metrics_options))
        # The backend answers and closes at once: with sockmap, a connection whose answer
        # arrives before the splice is relayed in userspace (per connection, as designed).
        self.proxy_.allow_fallback = True
        return self.proxy_

    def check_proxies(self):
        # A departed stream's client is noticed at the stream's next write (within a second).
        for s in self.streams:
            s.close()
        if self.streams:
            wait_until(lambda: self.proxy_.metric("snisplice_event_subscribers") == 0, what="every subscriber gone")
        super().check_proxies()

    def stream(self, query="", headers=()):
        s = Stream(f"{self.base}/events.ndjson{query}", headers)
        self.later(s.close)
        self.streams.append(s)
        wait_until(lambda: self.proxy_.metric("snisplice_event_subscribers") >= 1 or s.proc.poll() is not None,
                   what="the stream to subscribe")
        return s

    def connect(self, name, alpn=None):
        """One connection through the proxy; returns its local port (the event's client)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as c:
            c.sendall(client_hello(name, alpn))
            recv_all(c)
            return c.getsockname()[1]

    def test_ndjson_carries_a_connection_in_order_with_its_fields(self):
        self.start()
        stream = self.stream()
        client_port = self.connect("www.events.test", alpn=["h2", "http/1.1"])
        client = f"127.0.0.1:{client_port}"
        stream.wait_for(lambda e: e["type"] == "closed" and e["client"] == client, "the closed event")
        mine = [e for e in stream.events if e.get("client") == client]
        self.assertEqual([e["type"] for e in mine], ["accepted", "routed", "spliced", "closed"])
        accepted, routed, spliced, closed = mine
        self.assertEqual(accepted["listener"], "tls")
        self.assertEqual(routed["host"], "www.events.test")
        self.assertEqual(routed["alpn"], ["h2", "http/1.1"])
        self.assertEqual(routed["route"], "*.events.test")
        self.assertEqual(routed["backend"], "b")
        self.assertIn(spliced["mode"], ("sockmap", "userspace") if SPLICE == "sockmap" else ("userspace",))
        self.assertEqual(closed["result"], "proxied")
        self.assertEqual(closed["backend"], self.backend_.address)
        self.assertEqual(closed["splice"], spliced["mode"])
        self.assertEqual(closed["bytes_backend_to_client"], len(b"backend says hi"))
        self.assertEqual(closed["bytes_client_to_backend"], len(client_hello("www.events.test", ["h2", "http/1.1"])))
        self.assertGreater(closed["duration_ms"], 0)
        times = [e["time"] for e in mine]
        self.assertEqual(times, sorted(times))
        self.assertRegex(closed["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_a_refused_connection_and_filters(self):
        self.start()
        refused_only = self.stream("?type=refused")
        elsewhere = self.stream("?client=192.0.2.0/24")
        everything = self.stream()
        client = f"127.0.0.1:{self.connect('unknown.other')}"
        self.connect("a.events.test")
        everything.wait_for(lambda e: e["type"] == "closed", "the proxied connection's closed event")
        refused = refused_only.wait_for(lambda e: True, "the refused event")
        self.assertEqual(refused[0], {"type": "refused", "time": refused[0]["time"], "listener": "tls",
                                      "client": client, "host": "unknown.other", "result": "no_route"})
        self.assertEqual({e["type"] for e in refused_only.events}, {"refused"})
        self.assertEqual(elsewhere.events, [])

    def test_bad_filters_are_refused(self):
        self.start()
        for query, status in (("?type=bogus", 400), ("?client=nonsense", 400), ("?colour=red", 400)):
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(f"{self.base}/events.ndjson{query}", timeout=5)
            self.assertEqual(caught.exception.code, status, query)

    def test_reloads_appear(self):
        proxy = self.start()
        stream = self.stream("?type=reload")
        proxy.reload()
        stream.wait_for(lambda e: e["result"] == "ok", "the reload event")
        with open(proxy.config_path, "a") as f:
            f.write("bogus_key: 1\n")
        proxy.reload()
        stream.wait_for(lambda e: e["result"] == "rejected", "the rejected reload event")

    def test_summaries_instead_of_events(self):
        self.start()
        stream = self.stream("?aggregate=200&type=closed")
        for _ in range(3):
            self.connect("a.events.test")
        summaries = stream.wait_for(lambda e: e["type"] == "aggregate" and e["events"] > 0, "a summary")
        wait_until(lambda: sum(e["events"] for e in stream.events) == 3, what="three connections summarised")
        rows = [row for e in stream.events for row in e["counts"]]
        self.assertTrue(all(row["type"] == "closed" and row["route"] == "*.events.test" for row in rows))
        self.assertEqual(summaries[0]["interval_ms"], 200)

    def test_subscriber_limit(self):
        self.start(max_subscribers=1)
        self.stream()
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{self.base}/events.ndjson", timeout=5)
        self.assertEqual(caught.exception.code, 503)

    def test_bearer_token_guards_the_page_and_the_streams_not_metrics(self):
        token_file = os.path.join(self.dir, "token")
        with open(token_file, "w") as f:
            f.write("s3cret-token\n")
        proxy = self.start(token_file=token_file)
        for path in ("/", "/events.ndjson"):
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(f"{self.base}{path}", timeout=5)
            self.assertEqual(caught.exception.code, 401, path)
            request = urllib.request.Request(f"{self.base}{path}", headers={"Authorization": "Bearer wrong"})
            with self.assertRaises(urllib.error.HTTPError):
                urllib.request.urlopen(request, timeout=5)
        request = urllib.request.Request(f"{self.base}/", headers={"Authorization": "Bearer s3cret-token"})
        with urllib.request.urlopen(request, timeout=5) as r:
            self.assertIn(b"snisplice", r.read())
        self.assertIn("snisplice_event_subscribers", proxy.metrics_text())
        stream = self.stream(headers=["Authorization: Bearer s3cret-token"])
        self.connect("a.events.test")
        stream.wait_for(lambda e: e["type"] == "closed", "events with the token")
        # A new token at reload: the old one no longer opens anything.
        with open(token_file, "w") as f:
            f.write("rotated\n")
        proxy.reload()
        wait_until(lambda: "reloaded" in proxy.output(), what="the reload")
        with self.assertRaises(urllib.error.HTTPError):
            urllib.request.urlopen(urllib.request.Request(
                f"{self.base}/", headers={"Authorization": "Bearer s3cret-token"}), timeout=5)

    @unittest.skipIf(websocket is None, "python3-websocket is not installed")
    def test_websocket_carries_the_same_events(self):
        self.start()
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.metrics_port}/events?type=routed&type=closed",
                                         timeout=10)
        self.later(ws.close)
        wait_until(lambda: self.proxy_.metric("snisplice_event_subscribers") == 1, what="the WebSocket subscribed")
        client = f"127.0.0.1:{self.connect('ws.events.test')}"
        routed = json.loads(ws.recv())
        closed = json.loads(ws.recv())
        self.assertEqual((routed["type"], routed["client"], routed["host"]), ("routed", client, "ws.events.test"))
        self.assertEqual((closed["type"], closed["client"], closed["result"]), ("closed", client, "proxied"))
        ws.close()
        wait_until(lambda: self.proxy_.metric("snisplice_event_subscribers") == 0, what="the WebSocket gone")


class DnsEvents(ProxyTest):
    """A resolve route's lookup appears as a dns event (then from the cache), and an address the
    policy refuses as a refused connection."""

    def test_lookups_and_a_denied_address(self):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../support"))
        from dns_server import DnsServerProcess
        dns_server = DnsServerProcess({"names": {"svc.open.test": [{"type": "A", "data": "127.0.0.1"}]}})
        dns_server.__enter__()
        self.later(lambda: dns_server.__exit__(None, None, None))
        port, metrics_port = free_port(), free_port()
        pin_path = f"/sys/fs/bpf/snisplice-e2e-events-{os.getpid()}-{port}"
        self.later(lambda: subprocess.run(["rm", "-rf", pin_path]))
        proxy = self.proxy(config([listener("tls", f"127.0.0.1:{port}", "t", protocol="tls")],
                                  {"t": [route(".open.test", resolve={"port": 443})]},
                                  {"unused": servers("127.0.0.1:9")}, metrics_port,
                                  dns=dns(dns_server.port, min_ttl="30s"), bpf_pin_path=pin_path))
        stream = Stream(f"http://127.0.0.1:{metrics_port}/events.ndjson?type=dns&type=refused")
        self.later(stream.close)
        wait_until(lambda: proxy.metric("snisplice_event_subscribers") == 1, what="the stream to subscribe")
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(client_hello("svc.open.test"))
                recv_all(c)
        wait_until(lambda: len([e for e in stream.events if e["type"] == "refused"]) == 2, what="two refusals")
        dns_events = [(e["name"], e["result"], e["cached"]) for e in stream.events if e["type"] == "dns"]
        self.assertEqual(dns_events, [("svc.open.test", "resolved", False), ("svc.open.test", "resolved", True)])
        refused = [e for e in stream.events if e["type"] == "refused"]
        self.assertEqual([(e["host"], e["result"]) for e in refused], [("svc.open.test", "denied_address")] * 2)
        stream.close()
        wait_until(lambda: proxy.metric("snisplice_event_subscribers") == 0, what="the stream gone")


class SlowSubscriber(ProxyTest):
    """A subscriber that stops reading loses events (counted) and is cut off; the proxy does not
    wait for it, and a subscriber that reads gets everything."""

    BATCHES = 12
    PER_BATCH = 500   # connections open at once: within the test process's descriptor limit
    # Long names make big events: the stalled socket's kernel buffer (up to 4 MiB) must fill
    # before the server's queue for it (4096 events) overflows.
    NAME = ".".join(c * 60 for c in "abc") + ".events.test"

    def test_a_stalled_subscriber_is_cut_off_without_slowing_the_proxy(self):
        echo = EchoServer()
        self.later(echo.close)
        port, metrics_port = free_port(), free_port()
        proxy = self.proxy(events_config(port, echo.address, metrics_port))
        hello = client_hello(self.NAME)

        def connections():
            started = time.monotonic()
            for _ in range(self.BATCHES):
                for s in open_echoed_connections(("127.0.0.1", port), self.PER_BATCH, hello, timeout=120):
                    s.close()
            return time.monotonic() - started

        # The same connections first without the stalled subscriber, for the comparison printed
        # below (a figure to read, not a timed assertion).
        took_without = connections()
        # Stalled: a tiny receive window, and never read.
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        stalled.connect(("127.0.0.1", metrics_port))
        stalled.sendall(b"GET /events.ndjson HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = Stream(f"http://127.0.0.1:{metrics_port}/events.ndjson?type=closed")
        wait_until(lambda: proxy.metric("snisplice_event_subscribers") == 2, what="both subscribers")
        took = connections()
        total = self.BATCHES * self.PER_BATCH
        wait_until(lambda: len(reader.events) >= total, timeout=60,
                   what=f"the reading subscriber to get all {total} closed events")
        self.assertGreater(proxy.metric("snisplice_events_dropped_total", reason="slow_subscriber"), 0)
        self.assertEqual(proxy.metric("snisplice_events_dropped_total", reason="ring_full"), 0)
        # Its handler gives up the blocked write after the server's write timeout (10 s).
        wait_until(lambda: proxy.metric("snisplice_event_subscribers") == 1, timeout=30,
                   what="the stalled subscriber cut off")
        print(f"{total} connections in {took_without:.1f} s without a stalled subscriber, {took:.1f} s with "
              f"one, which lost {proxy.metric('snisplice_events_dropped_total', reason='slow_subscriber'):.0f} "
              f"events")
        proxy.allow_fallback = True   # bulk short connections: some may close before the splice
        stalled.close()
        reader.close()
        wait_until(lambda: proxy.metric("snisplice_event_subscribers") == 0, what="every subscriber gone")


if __name__ == "__main__":
    unittest.main()
