"""XDP drops in the live event stream, end to end: snisplice runs in a server network namespace
with its XDP program on the veth (policy enforce), a client outside the allowlist in another
namespace (198.51.100.0/24, created here; nothing leaves the two namespaces) sends SYNs to the
filtered port, and /events.ndjson?type=xdp shows the drop, with that source, port and verdict,
within a second. A reload with no interfaces stops the reader and detaches; the daemon goes on.
Needs root (exit 77 with the reason otherwise)."""
import json
import os
import queue
import signal
import subprocess
import threading
import time
import unittest

from config_builder import listener, proxy_config, route, servers, to_yaml
from harness import BIN, Process, ProxyTest, free_port, wait_until
from netns import NET, SERVER, NamespacePair, sh, why_no_namespaces

WHY_NOT = why_no_namespaces("network namespaces, XDP, bpffs", ["curl"])
ALLOWED, DENIED = f"{NET}.2", f"{NET}.3"

# `count` non-blocking connects from `source` to destination:port: one SYN each, sent at once,
# no waiting for answers that may never come (the sockets are held half a second, then closed).
_SYN_SENDER = """import socket, sys, time
source, destination, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
held = []
for _ in range(count):
    s = socket.socket(); s.setblocking(False); s.bind((source, 0))
    try:
        s.connect((destination, port))
    except BlockingIOError:
        pass
    held.append(s)
time.sleep(0.5)
"""


@unittest.skipIf(WHY_NOT, WHY_NOT)
class XdpEventsThroughTheDaemon(ProxyTest):
    def setUp(self):
        super().setUp()
        self.pin = f"/sys/fs/bpf/snisplice-e2e-xdp-events-{os.getpid() % 100000}"
        self.later(lambda: sh("rm", "-rf", self.pin, check=False))
        self.net = NamespacePair(self, "xev", client_addresses=(ALLOWED, DENIED))
        route_out = self.net.run(self.net.client, "ip", "route", "get", SERVER).stdout
        self.assertIn(self.net.client_if, route_out)   # leaves through our veth, nowhere else

    def write_config(self, interfaces):
        with open(self.conf, "w") as f:
            f.write(to_yaml(proxy_config(
                [listener("tls", f"{SERVER}:{self.port}", "t")], {"t": [route("*", backend="b")]},
                {"b": servers(f"127.0.0.1:{free_port()}")}, self.metrics_port, defaults={}, workers=1,
                xdp={"interfaces": interfaces, "mode": "auto", "policy": "enforce", "allow": [f"{ALLOWED}/32"]},
                bpf_pin_path=self.pin)))

    def metrics(self):
        return self.net.run(self.net.server, "curl", "-s", "--max-time", "5",
                            f"http://127.0.0.1:{self.metrics_port}/metrics", check=False).stdout

    def metric(self, name, **labels):
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.split()[-1])
        return total

    def stream(self, seconds):
        """/events.ndjson?type=xdp for `seconds`: (the curl process, a queue of (arrival, event))."""
        curl = subprocess.Popen(self.net.inside(self.net.server, "curl", "-s", "-N", "--max-time", str(seconds),
                                                f"http://127.0.0.1:{self.metrics_port}/events.ndjson?type=xdp"),
                                stdout=subprocess.PIPE, text=True)
        self.later(lambda: curl.kill())
        lines = queue.Queue()

        def read():
            for line in curl.stdout:
                if line.strip():   # the stream's keep-alive spaces lead lines, or end it
                    lines.put((time.monotonic(), json.loads(line)))
        threading.Thread(target=read, daemon=True).start()
        wait_until(lambda: self.metric("snisplice_event_subscribers") >= 1, timeout=5, what="the stream subscribed")
        return curl, lines

    def send_syns(self, source, count):
        return subprocess.Popen(self.net.inside(self.net.client, "python3", "-c", _SYN_SENDER, source, SERVER,
                                                str(self.port), str(count)))

    def test_a_drop_appears_in_the_stream_within_a_second(self):
        self.port, self.metrics_port = free_port(), free_port()
        self.conf = os.path.join(self.dir, "xdp-events.yaml")
        self.write_config([self.net.server_if])
        proxy = Process(self.net.inside(self.net.server, BIN, "-c", self.conf), os.path.join(self.dir, "proxy.log"))
        self.later(proxy.stop)
        wait_until(lambda: "snisplice_xdp_attached" in self.metrics(), timeout=15, what="the daemon with XDP attached")

        curl, lines = self.stream(seconds=10)
        # The allowed source's SYN passes: it must not appear. The denied one's must, quickly.
        self.send_syns(ALLOWED, 1).wait(timeout=10)
        sent = time.monotonic()
        sender = self.send_syns(DENIED, 1)
        found = None
        while found is None and time.monotonic() < sent + 3:
            try:
                arrived, event = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.assertEqual(event["type"], "xdp")
            self.assertNotEqual(event["source"], ALLOWED, event)
            if event["source"] == DENIED:
                found = (arrived, event)
        sender.wait(timeout=10)
        self.assertIsNotNone(found, "no xdp event for the denied source within 3 s:\n" + proxy.output())
        arrived, event = found
        self.assertLess(arrived - sent, 1.0, event)
        self.assertEqual(event["port"], self.port)
        self.assertEqual(event["verdict"], "drop")
        self.assertEqual(event["reason"], "denied")
        self.assertEqual(event["interface"], self.net.server_if)
        wait_until(lambda: self.metric("snisplice_xdp_packets_total", verdict="drop") > 0, what="drops counted")
        self.assertEqual(self.metric("snisplice_events_dropped_total", reason="sampled_out"), 0)
        curl.kill()

        # Detach by reload: the reader stops with the program, the daemon keeps serving.
        self.write_config([])
        proxy.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "snisplice_xdp_attached{" not in self.metrics(), timeout=10, what="XDP detached")
        self.assertIn("detaching", proxy.output())
        self.assertNotRegex(self.net.run(self.net.server, "ip", "-d", "link", "show", self.net.server_if).stdout,
                            r"\bxdp(generic|drv|offload)?\b|prog/xdp")
        self.assertEqual(proxy.stop(), 0)


if __name__ == "__main__":
    unittest.main()
