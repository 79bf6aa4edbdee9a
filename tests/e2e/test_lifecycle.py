"""Operating the daemon: --check, --version, reload, drain on SIGTERM, admission limits and
backend pools, through the real binary."""
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

from clients import Clients
from harness import (one_route_config, BIN, ProxyTest, client_hello, closed_without_data, config, connect_from,
                     free_port, listener, recv_all, recv_exact, route, servers, wait_until, echo)

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../conf/reference.yaml")


def named(name):
    def handler(conn):
        recv_exact(conn, 5)
        conn.sendall(name.encode())
    return handler


class Commands(unittest.TestCase):
    def test_reference_config_passes_check(self):
        out = subprocess.run([BIN, "-c", REFERENCE, "--check"], capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr.decode())

    def test_default_config_passes_check(self):
        conf = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../conf/snisplice.yaml")
        out = subprocess.run([BIN, "-c", conf, "--check"], capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr.decode())

    def test_invalid_config_names_file_line_and_key(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("listeners:\n  - name: a\n    listen: [\"127.0.0.1:99999\"]\n    table: t\n"
                    "tables:\n  t:\n    - host: x\n      backend: nowhere\n")
        try:
            out = subprocess.run([BIN, "-c", f.name, "--check"], capture_output=True, timeout=30)
        finally:
            os.unlink(f.name)
        self.assertEqual(out.returncode, 1)
        lines = out.stderr.decode().splitlines()
        self.assertTrue(any(l.startswith(f"{f.name}:3: listeners[0].listen") for l in lines), lines)
        self.assertTrue(any(l.startswith(f"{f.name}:8: tables.t[0].backend") for l in lines), lines)

    def test_version_names_kernel_features(self):
        out = subprocess.run([BIN, "--version"], capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0)
        text = out.stdout.decode()
        self.assertRegex(text, r"^snisplice \d+\.\d+\.\d+")
        self.assertIn("io_uring", text)


class Lifecycle(ProxyTest):
    def two_backend_config(self, port, metrics_port, a, b, target="a"):
        return config([listener("tls", f"127.0.0.1:{port}", "t", protocol="tls")],
                      {"t": [route("*", backend=target)]}, {"a": servers(a.address), "b": servers(b.address)},
                      metrics_port)

    def test_reload_changes_new_connections_and_keeps_old_ones(self):
        a, b = self.backend(echo), self.backend(echo)
        port, metrics_port = free_port(), free_port()
        proxy = self.proxy(self.two_backend_config(port, metrics_port, a, b, "a"))
        hello = client_hello("x.test")
        old = socket.create_connection(("127.0.0.1", port), timeout=10)
        old.sendall(hello)
        recv_exact(old, len(hello))
        proxy.reload(self.two_backend_config(port, metrics_port, a, b, "b"))
        wait_until(lambda: proxy.metric("snisplice_config_reloads_total", result="ok") == 1, what="reload ok")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as new:
            new.sendall(hello)
            recv_exact(new, len(hello))
        self.assertEqual((a.accepted, b.accepted), (1, 1))
        old.sendall(b"still here")     # the old connection keeps its backend
        self.assertEqual(recv_exact(old, 10), b"still here")
        old.close()

    def test_invalid_reload_is_refused_and_the_old_config_stays(self):
        a, b = self.backend(echo), self.backend(echo)
        port, metrics_port = free_port(), free_port()
        proxy = self.proxy(self.two_backend_config(port, metrics_port, a, b, "a"))
        proxy.reload(self.two_backend_config(port, metrics_port, a, b, "missing"))
        wait_until(lambda: proxy.metric("snisplice_config_reloads_total", result="rejected") == 1, what="rejected")
        self.assertIn("reload refused", proxy.output())
        hello = client_hello("x.test")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(hello)
            self.assertEqual(recv_exact(c, len(hello)), hello)
        self.assertEqual(a.accepted, 1)
        self.assertIsNone(proxy.proc.poll())

    def test_reload_under_load_loses_nothing(self):
        a, b = self.backend(echo), self.backend(echo)
        port, metrics_port = free_port(), free_port()
        proxy = self.proxy(self.two_backend_config(port, metrics_port, a, b, "a"))
        stop = threading.Event()
        failures, done = [], []

        def client(i):
            payload = os.urandom(256 << 10)
            while not stop.is_set():
                try:
                    hello = client_hello(f"c{i}.test")
                    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                        # Like TLS: the hello, its answer, then the stream.
                        c.sendall(hello)
                        if recv_exact(c, len(hello)) != hello:
                            failures.append(f"client {i}: hello corrupted")
                        c.sendall(payload)
                        if recv_exact(c, len(payload)) != payload:
                            failures.append(f"client {i}: corrupted")
                    done.append(i)
                except Exception as e:
                    failures.append(f"client {i}: {e!r}")

        clients = Clients(4, client)
        for n in range(6):
            time.sleep(0.25)
            proxy.reload(self.two_backend_config(port, metrics_port, a, b, "ab"[n % 2]))
        time.sleep(0.5)
        stop.set()
        self.assertEqual(clients.wait(30), [])
        self.assertEqual(failures, [])
        self.assertGreater(len(done), 10)
        wait_until(lambda: proxy.metric("snisplice_config_reloads_total", result="ok") == 6, what="6 reloads")

    def test_sigterm_drains_in_flight_transfers_then_exits_zero(self):
        release = threading.Event()

        def slow(conn):
            data = recv_exact(conn, 5)
            release.wait(10)
            conn.sendall(b"done:" + data)

        backend = self.backend(slow)
        port, metrics_port = free_port(), free_port()
        proxy = self.proxy(one_route_config(port, backend.address, metrics_port))
        hello = client_hello("x.test")
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(hello)
        wait_until(lambda: backend.accepted == 1, what="backend connection")
        proxy.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with self.assertRaises(OSError):   # no longer accepting
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        self.assertIsNone(proxy.proc.poll(), "exited before its connection finished")
        release.set()
        self.assertEqual(recv_exact(c, 10), b"done:" + hello[:5])
        c.close()
        self.assertEqual(proxy.proc.wait(10), 0)

    def test_sigterm_closes_what_is_left_after_the_grace_period(self):
        backend = self.backend(lambda conn: recv_all(conn))
        port, metrics_port = free_port(), free_port()
        proxy = self.proxy(one_route_config(port, backend.address, metrics_port, timeouts={"shutdown_grace": "1s"}))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(client_hello("x.test"))
        wait_until(lambda: backend.accepted == 1, what="backend connection")
        t0 = time.monotonic()
        proxy.proc.send_signal(signal.SIGTERM)
        self.assertEqual(proxy.proc.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn('"result":"shutdown"', proxy.output())
        c.close()


class Admission(ProxyTest):
    def test_per_ip_and_total_limits_refuse_and_recover(self):
        backend = self.backend(echo)
        port, metrics_port = free_port(), free_port()
        proxy = self.proxy(one_route_config(port, backend.address, metrics_port,
                                            listener_options={"per_ip_max_connections": 2, "max_connections": 3}))
        hello = client_hello("x.test")

        def open_one(source):
            c = connect_from(source, port, timeout=5)
            c.sendall(hello)
            return c

        held = [open_one("127.0.0.1"), open_one("127.0.0.1")]
        for c in held:
            self.assertEqual(recv_exact(c, len(hello)), hello)
        third = open_one("127.0.0.1")       # same address: over its limit
        self.assertTrue(closed_without_data(third))
        other = open_one("127.0.0.2")       # another address: fine
        self.assertEqual(recv_exact(other, len(hello)), hello)
        fourth = open_one("127.0.0.3")      # but the listener is now full
        self.assertTrue(closed_without_data(fourth))
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="limit_exceeded") == 2,
                   what="limit_exceeded counted")
        for c in held + [third, fourth]:
            c.close()
        wait_until(lambda: proxy.metric("snisplice_active_connections") == 1, what="slots freed")
        again = open_one("127.0.0.1")       # recovered
        self.assertEqual(recv_exact(again, len(hello)), hello)
        again.close()
        other.close()

    def test_limit_refusal_writes_its_access_log_line(self):
        backend = self.backend(echo)
        port, metrics_port = free_port(), free_port()
        proxy = self.proxy(one_route_config(port, backend.address, metrics_port,
                                            listener_options={"max_connections": 1}))
        hello = client_hello("x.test")
        held = connect_from("127.0.0.1", port, timeout=5)
        held.sendall(hello)
        self.assertEqual(recv_exact(held, len(hello)), hello)
        refused = connect_from("127.0.0.2", port, timeout=5)
        self.assertTrue(closed_without_data(refused))
        records = wait_until(lambda: [r for r in proxy.access_log() if r["result"] == "limit_exceeded"] or None,
                             what="the refusal logged")
        self.assertEqual(len(records), 1)
        self.assertTrue(records[0]["client"].startswith("127.0.0.2"), records[0])
        self.assertEqual((records[0]["host"], records[0]["route"], records[0]["backend"]), ("", "", ""))
        refused.close()
        held.close()


class Pools(ProxyTest):
    def pool_config(self, port, metrics_port, addresses, balance, **pool_options):
        return config([listener("tls", f"127.0.0.1:{port}", "t", protocol="tls")], {"t": [route("*", backend="pool")]},
                      {"pool": servers(*addresses, balance=balance, connect_timeout="1s", **pool_options)},
                      metrics_port, workers=1)

    def proxy(self, document, **kwargs):
        p = super().proxy(document, **kwargs)
        p.allow_fallback = True  # the test backends answer and close before a splice can start
        return p

    def ask(self, port, source="127.0.0.1"):
        with connect_from(source, port) as c:
            c.sendall(client_hello("x.test"))
            return recv_all(c).decode()

    def test_round_robin_spreads_and_fails_over(self):
        a, b = self.backend(named("a")), self.backend(named("b"))
        dead = f"127.0.0.1:{free_port()}"
        port = free_port()
        self.proxy(self.pool_config(port, free_port(), [a.address, dead, b.address], "round_robin"))
        answers = [self.ask(port) for _ in range(6)]
        self.assertEqual(sorted(set(answers)), ["a", "b"])   # the dead one is skipped
        self.assertGreaterEqual(min(answers.count("a"), answers.count("b")), 2)

    def test_source_hash_is_sticky_per_client(self):
        pool = [self.backend(named(n)) for n in "abc"]
        port = free_port()
        self.proxy(self.pool_config(port, free_port(), [s.address for s in pool], "source_hash"))
        for source in ("127.0.0.5", "127.0.0.6", "127.0.0.7"):
            answers = {self.ask(port, source) for _ in range(4)}
            self.assertEqual(len(answers), 1, source)

    def test_health_check_takes_a_failing_server_out_and_back(self):
        a = self.backend(named("a"))
        b_port = free_port()
        port, metrics_port = free_port(), free_port()
        proxy = self.proxy(self.pool_config(port, metrics_port, [a.address, f"127.0.0.1:{b_port}"], "round_robin",
                                            health_check={"interval": "200ms", "timeout": "100ms"}))
        wait_until(lambda: proxy.metric("snisplice_backend_server_up", server=f"127.0.0.1:{b_port}") == 0
                   and ("snisplice_backend_server_up", frozenset({("backend", "pool"), ("server", f"127.0.0.1:{b_port}")}))
                   in proxy.metrics(), what="b marked down")
        self.assertEqual({self.ask(port) for _ in range(4)}, {"a"})
        b = self.backend(named("b"))
        # Start a listener on b's port: the next probes put it back into rotation.
        b.sock.close()
        b2 = socket.socket()
        b2.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        b2.bind(("127.0.0.1", b_port))
        b2.listen(16)
        self.later(b2.close)

        def serve():
            while True:
                try:
                    conn, _ = b2.accept()
                except OSError:
                    return
                with conn:
                    try:
                        recv_exact(conn, 5)
                        conn.sendall(b"b")
                    except Exception:
                        pass
        threading.Thread(target=serve, daemon=True).start()
        wait_until(lambda: proxy.metric("snisplice_backend_server_up", server=f"127.0.0.1:{b_port}") == 1,
                   what="b back up")
        self.assertIn("b", {self.ask(port) for _ in range(6)})


@unittest.skipUnless(os.geteuid() == 0, "switching users needs root")
class Privileges(ProxyTest):
    def test_runs_as_the_configured_user_with_no_capabilities_and_still_serves(self):
        backend = self.backend(echo)
        port = free_port()
        proxy = self.proxy(one_route_config(port, backend.address, free_port(), user="nobody"))
        with open(f"/proc/{proxy.proc.pid}/status") as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        self.assertEqual(status["Uid"].split()[0], "65534")
        self.assertEqual(int(status["CapEff"], 16), 0)
        self.assertEqual(int(status["CapPrm"], 16), 0)
        self.assertIn("capabilities kept: none", proxy.output())
        hello = client_hello("x.test")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(hello)
            self.assertEqual(recv_exact(c, len(hello)), hello)
            c.sendall(b"after the splice")
            self.assertEqual(recv_exact(c, 16), b"after the splice")


class IdleTimeout(ProxyTest):
    def test_idle_connections_are_closed_and_busy_ones_kept(self):
        backend = self.backend(echo)
        port = free_port()
        proxy = self.proxy(one_route_config(port, backend.address, free_port(), timeouts={"idle": "2s"}))
        hello = client_hello("x.test")
        busy = socket.create_connection(("127.0.0.1", port), timeout=10)
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        for c in (busy, idle):
            c.sendall(hello)
            recv_exact(c, len(hello))
        t0 = time.monotonic()
        # The busy connection trickles a byte every 0.5 s (in the kernel when spliced: the
        # idle clock reads the BPF counters) and must outlive the idle one.
        for _ in range(8):
            busy.sendall(b".")
            self.assertEqual(recv_exact(busy, 1), b".")
            time.sleep(0.5)
        self.assertTrue(closed_without_data(idle))
        self.assertLess(time.monotonic() - t0, 6)
        busy.sendall(b"!")
        self.assertEqual(recv_exact(busy, 1), b"!")
        busy.close()
        idle.close()
        wait_until(lambda: proxy.metric("snisplice_connections_total", result="idle_timeout") == 1, what="idle_timeout")


def pinned_threads(pid):
    """{thread id: CPU} of the process's threads allowed on exactly one CPU: its workers under
    `workers: auto` (no other thread is pinned)."""
    pinned = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as status:
            allowed = next(line.split(":", 1)[1].strip() for line in status if line.startswith("Cpus_allowed_list"))
        if allowed.isdigit():
            pinned[int(tid)] = int(allowed)
    return pinned


def time_on_cpu(pid, tid):
    """Nanoseconds the thread has run (schedstat: exact, unlike the tick-based stat fields)."""
    with open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat:
        return int(schedstat.read().split()[0])


class WorkerPlacement(ProxyTest):
    CONNECTIONS = 200   # per CPU

    def test_auto_pins_one_worker_per_cpu_and_each_serves_what_its_cpu_received(self):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            self.skipTest(f"one CPU ({cpus}): nothing to place")
        if cpus != list(range(len(cpus))):
            self.skipTest(f"CPUs {cpus} are not 0..n-1: connections are left to the kernel's hash")
        backend = self.backend(echo)
        port = free_port()
        proxy = self.proxy(one_route_config(port, backend.address, free_port(), workers="auto", log_level="info",
                                            access_log="off"))
        self.assertIn("workers pinned one per CPU; new connections go to the worker on their CPU", proxy.output())
        workers = pinned_threads(proxy.proc.pid)
        self.assertEqual(sorted(workers.values()), cpus, f"one worker pinned to each CPU: {workers}")
        hello = client_hello("x.test")

        def connect_from_cpu(cpu, failures):
            os.sched_setaffinity(0, {cpu})   # this thread only: its SYNs are processed on `cpu`
            try:
                for _ in range(self.CONNECTIONS):
                    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                        c.sendall(hello)
                        recv_exact(c, len(hello))
            except OSError as error:
                failures.append(error)

        for cpu in cpus:
            before = {tid: time_on_cpu(proxy.proc.pid, tid) for tid in workers}
            failures = []
            client = threading.Thread(target=connect_from_cpu, args=(cpu, failures))
            client.start()
            client.join(60)
            self.assertFalse(client.is_alive(), "the clients finished")
            self.assertEqual(failures, [])
            spent = {workers[tid]: time_on_cpu(proxy.proc.pid, tid) - before[tid] for tid in workers}
            # The worker on the clients' CPU accepted and served them; the others only ticked.
            self.assertGreater(spent[cpu], 0.8 * sum(spent.values()),
                               f"run time of the workers by CPU (ns) for clients on CPU {cpu}: {spent}")

    def test_a_fixed_worker_count_is_not_pinned(self):
        port = free_port()
        backend = self.backend(echo)
        proxy = self.proxy(one_route_config(port, backend.address, free_port(), workers=2))
        self.assertEqual(pinned_threads(proxy.proc.pid), {})


def sockets_of(pid):
    """Duplicates of the process's TCP sockets (pidfd_getfd), as socket objects."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    found = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    continue
            except OSError:
                continue
            copy = libc.syscall(438, pidfd, int(fd), 0)   # pidfd_getfd
            if copy < 0:
                continue
            sock = socket.socket(fileno=copy)
            if sock.type == socket.SOCK_STREAM and sock.family in (socket.AF_INET, socket.AF_INET6):
                found.append(sock)
            else:
                sock.close()
    finally:
        os.close(pidfd)
    return found


class SocketOptions(ProxyTest):
    def test_both_sockets_of_a_proxied_connection_have_nodelay(self):
        if os.geteuid() != 0:
            self.skipTest("not root: pidfd_getfd needs ptrace rights over the daemon")
        backend = self.backend(echo)
        port = free_port()
        proxy = self.proxy(one_route_config(port, backend.address, free_port()))
        hello = client_hello("x.test")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(hello)
            recv_exact(c, len(hello))
            peers = {}
            for sock in sockets_of(proxy.proc.pid):
                with sock:
                    try:
                        peer = sock.getpeername()[:2]
                    except OSError:
                        continue   # a listener
                    peers[peer] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            client_side, backend_side = c.getsockname()[:2], ("127.0.0.1", int(backend.address.rsplit(":", 1)[1]))
            # Small writes must not wait for Nagle's algorithm on either leg (sniproxy #289).
            self.assertEqual(peers.get(client_side), 1, f"client-side socket: {peers}")
            self.assertEqual(peers.get(backend_side), 1, f"backend-side socket: {peers}")


if __name__ == "__main__":
    unittest.main()
