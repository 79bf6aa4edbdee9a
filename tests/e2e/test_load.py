"""Load, overload and hostile clients, scaled down for CI (tests/soak runs full-size versions):
churn, fd exhaustion, slowloris. Loopback only; every loop bounded in count and time."""
import os
import socket
import subprocess
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import (BIN, Process, ProxyTest, client_hello, closed_without_data, free_port, one_route_config,
                     recv_exact, wait_until)

CHURN = int(os.environ.get("SNISPLICE_CHURN", 5000))
SLOWLORIS = int(os.environ.get("SNISPLICE_SLOWLORIS", 1000))


def echo(conn):
    while data := conn.recv(65536):
        conn.sendall(data)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Load(ProxyTest):
    def test_churn_returns_to_baseline_and_accounts_for_every_connection(self):
        backend = self.backend(echo)
        port = free_port()
        proxy = self.proxy(one_route_config(port, backend.address, free_port(),
                                            listener_extra="\n    per_ip_max_connections: 100000"))
        hello = client_hello("churn.test")

        def one(_):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(hello)
                return recv_exact(c, len(hello)) == hello

        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(one, range(CHURN)))
        self.assertEqual(results.count(True), CHURN)
        wait_until(lambda: proxy.metric("snisplice_connections_total") == CHURN, timeout=30,
                   what="every connection counted")
        self.assertEqual(proxy.metric("snisplice_connections_total", result="proxied"), CHURN)
        # tearDown checks fds, sockhash entries and the active gauge are back to baseline.

    @unittest.skipIf(os.environ.get("SNISPLICE_SANITIZE") == "ON",
                     "the UBSan runtime needs file descriptors for its own checks (it reads /proc/self/maps)")
    def test_fd_exhaustion_backs_off_without_spinning_and_recovers(self):
        backend = self.backend(echo)
        port, metrics_port = free_port(), free_port()
        conf = os.path.join(self.dir, "fds.yaml")
        with open(conf, "w") as f:
            f.write(one_route_config(port, backend.address, metrics_port).replace("workers: 2", "workers: 1"))
        proxy = Process(["prlimit", "--nofile=64:64", BIN, "-c", conf], os.path.join(self.dir, "fds.log"))
        self.later(proxy.stop)
        wait_until(lambda: "ready:" in proxy.output(), what="ready")
        hello = client_hello("x.test")
        held = []
        for _ in range(40):   # 80 proxied fds wanted, 64 allowed in all
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(hello)
            held.append(c)
        time.sleep(0.5)
        before = cpu_seconds(proxy.proc.pid)
        time.sleep(2)
        used = cpu_seconds(proxy.proc.pid) - before
        self.assertLess(used, 0.5, "the proxy spins while out of descriptors")
        # Out of descriptors at accept (accepts pause) or at the backend socket (connect_error).
        self.assertRegex(proxy.output(), "pausing accepts|cannot open a backend socket")
        for c in held:
            c.close()
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:   # recovered
            c.sendall(hello)
            self.assertEqual(recv_exact(c, len(hello)), hello)
        self.assertIsNone(proxy.proc.poll())

    def test_slowloris_clients_are_cut_without_starving_others(self):
        backend = self.backend(echo)
        port = free_port()
        proxy = self.proxy(one_route_config(port, backend.address, free_port(),
                                            listener_extra="\n    client_hello_timeout: 2s"
                                                           "\n    per_ip_max_connections: 100000"))
        hello = client_hello("slow.test")
        slow = []
        for _ in range(SLOWLORIS):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.sendall(hello[:1])
            slow.append(c)
        stop = threading.Event()

        def dribble():
            i = 1
            while not stop.is_set() and i < len(hello):
                for c in slow:
                    try:
                        c.send(hello[i:i + 1])
                    except OSError:
                        pass
                i += 1
                stop.wait(0.2)

        t = threading.Thread(target=dribble)
        t.start()
        start = time.monotonic()
        served = 0
        while time.monotonic() - start < 1.5:   # well-behaved clients, during the attack
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(hello)
                if recv_exact(c, len(hello)) == hello:
                    served += 1
        self.assertGreater(served, 20)
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="client_hello_timeout") == SLOWLORIS,
                   timeout=15, what="every slowloris client cut at the hello timeout")
        stop.set()
        t.join()
        for c in slow:
            self.assertTrue(closed_without_data(c))
            c.close()


if __name__ == "__main__":
    unittest.main()
