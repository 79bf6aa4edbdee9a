"""End-to-end harness: runs the real snisplice binary against real peers on loopback.

Every test gets its own temporary directory, free ports, a generated config and a clean
process; nothing here sends traffic anywhere but 127.0.0.1 / ::1.
"""
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import random
import re
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from config_builder import dns, listener, proxy_config, route, servers, to_yaml  # noqa: F401 (for the tests)

BIN = os.environ.get("SNISPLICE_BIN", os.path.join(os.path.dirname(__file__), "../../build/snisplice"))
# The load generator and backend from bench/load, built beside the binary.
LOAD = os.environ.get("SNISPLICE_LOAD", os.path.join(os.path.dirname(BIN), "bench", "snisplice_load"))
SPLICE = os.environ.get("SNISPLICE_SPLICE", "userspace")
HERE = os.path.dirname(os.path.abspath(__file__))


_handed_out = {}  # port -> the fd of its lock
_PORT_LOCKS = os.path.join(tempfile.gettempdir(), "snisplice-e2e-ports")


def _claim_port(port):
    """Holds a lock on `port` for this process's life, so that test modules run in parallel
    (ctest -j) never hand out the same one (seen: a proxy's metrics port taken by another
    module's proxy between the check and the bind)."""
    os.makedirs(_PORT_LOCKS, exist_ok=True)
    fd = os.open(os.path.join(_PORT_LOCKS, str(port)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _handed_out[port] = fd
    return True


def free_port(family=socket.AF_INET):
    """A port nothing listens on, never the same one twice in a process or in two test
    processes running at once."""
    # Below the kernel's ephemeral range (ip_local_port_range), so no outgoing connection
    # can take the port between this check and the proxy's bind.
    while True:
        port = random.randrange(20000, 32000)
        if port in _handed_out:
            continue
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
        except OSError:
            continue
        if _claim_port(port):
            return port


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def client_hello(server_name, alpn=None):
    """A real ClientHello from Python's ssl module (OpenSSL), without any network."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def http_head(host, path="/"):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: e2e\r\n\r\n".encode()


class Certificates:
    """A throwaway CA-less self-signed certificate valid for the test names."""

    def __init__(self, directory, names):
        self.cert = os.path.join(directory, "cert.pem")
        self.key = os.path.join(directory, "key.pem")
        san = ",".join(f"DNS:{n}" for n in names)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=e2e",
                        "-addext", f"subjectAltName={san}"], check=True, capture_output=True)


class Process:
    def __init__(self, argv, log_path, **kwargs):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        # setpriv execs argv with a parent-death signal: should this test process be killed
        # (a ctest timeout), its daemons stop too instead of holding ports and CPU.
        self.proc = subprocess.Popen(["setpriv", "--pdeathsig", "TERM", *argv], stdout=self.log,
                                     stderr=subprocess.STDOUT, **kwargs)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


class OpensslServer(Process):
    """`openssl s_server` answering every request with a body naming the backend."""

    def __init__(self, directory, certs, name, port, alpn=None, family="127.0.0.1"):
        self.name = name
        self.port = port
        argv = ["openssl", "s_server", "-accept", f"[{family}]:{port}" if ":" in family else f"{family}:{port}",
                "-cert", certs.cert, "-key", certs.key, "-www", "-quiet", "-naccept", "1000"]
        if alpn:
            argv += ["-alpn", ",".join(alpn)]
        # -www answers GET / with a status page; the page includes the server's argv? No:
        # identify the backend by its port instead (the test knows which port is which).
        super().__init__(argv, os.path.join(directory, f"s_server-{name}.log"))
        host = family
        wait_until(lambda: _can_connect(host, port), what=f"openssl s_server {name}")


def _can_connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class TcpBackend:
    """A plain TCP backend in a thread pool. `handler(conn)` runs per connection."""

    def __init__(self, handler, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.address = f"[{host}]:{self.port}" if family == socket.AF_INET6 else f"{host}:{self.port}"
        self.handler = handler
        self.accepted = 0
        self.errors = []
        self.threads = []
        self.closing = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, conn):
        try:
            with conn:
                self.handler(conn)
        except Exception as e:  # recorded and asserted on by tests
            self.errors.append(repr(e))

    def close(self):
        self.closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for t in self.threads:
            t.join(10)


def cpu_seconds(pid):
    """User and system CPU time a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def recv_exact(conn, n):
    data = bytearray()
    while len(data) < n:
        chunk = conn.recv(min(1 << 20, n - len(data)))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def recv_all(conn):
    data = bytearray()
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            return bytes(data)
        data += chunk


def echo(conn):
    """A TcpBackend handler that sends back every byte, in order, until the client's EOF."""
    while data := conn.recv(65536):
        conn.sendall(data)


def connect_from(source, port, timeout=10):
    """A TCP connection from loopback address `source` to 127.0.0.1:port (per-address limits)."""
    c = socket.socket()
    c.settimeout(timeout)
    c.bind((source, 0))
    c.connect(("127.0.0.1", port))
    return c


def closed_without_data(conn):
    """True when the peer closed (FIN, or RST when it closed with our bytes unread) and sent nothing."""
    try:
        return recv_all(conn) == b""
    except ConnectionResetError:
        return True


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


class Proxy(Process):
    """The real snisplice binary on a generated config (a dict, see config())."""

    def __init__(self, directory, config, name="snisplice", expect_ready=True):
        self.directory = directory
        self.config_path = os.path.join(directory, f"{name}.yaml")
        self.config = config
        self.write_config(config)
        self.metrics_port = int(config["metrics"]["listen"].rsplit(":", 1)[1])
        super().__init__([BIN, "-c", self.config_path], os.path.join(directory, f"{name}.log"))
        self.baseline_fds = None
        self.allow_fallback = False
        if expect_ready:
            wait_until(self._ready, timeout=15, what="snisplice to serve /metrics")
            self.baseline_fds = self.open_fds()

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"snisplice exited with {self.proc.returncode}:\n{self.output()}")
        if "ready:" not in self.output():   # logged once every worker runs (after any user switch)
            return False
        try:
            self.metrics_text()
            return True
        except OSError:
            return False

    def metrics_text(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metrics(self):
        return parse_metrics(self.metrics_text())

    def metric(self, name, **labels):
        want = set(labels.items())
        return sum(v for (n, ls), v in self.metrics().items() if n == name and want <= set(ls))

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def bpf_maps(self):
        """{name: id} of the BPF maps this process holds open (bpftool names them)."""
        maps = {}
        for fd in os.listdir(f"/proc/{self.proc.pid}/fdinfo"):
            try:
                with open(f"/proc/{self.proc.pid}/fdinfo/{fd}") as f:
                    info = f.read()
            except OSError:
                continue
            m = re.search(r"^map_id:\s*(\d+)", info, re.M)
            if not m:
                continue
            shown = subprocess.run(["bpftool", "-j", "map", "show", "id", m.group(1)], capture_output=True, text=True)
            with contextlib.suppress(ValueError):
                maps[json.loads(shown.stdout).get("name", "")] = int(m.group(1))
        return maps

    def splice_map_entries(self):
        """Entries in this process's splice maps (both sockhashes and the stats); None without bpftool."""
        if not shutil.which("bpftool") or os.geteuid() != 0:
            return None
        total = 0
        for name, map_id in self.bpf_maps().items():
            if not name.startswith("splice_"):
                continue
            dump = subprocess.run(["bpftool", "map", "dump", "id", str(map_id)], capture_output=True, text=True)
            found = re.search(r"Found (\d+) element", dump.stdout)
            total += int(found.group(1)) if found else 0
        return total

    def assert_nothing_left_behind(self, baseline_fds):
        """After every connection closed: no connection fds and no splice map entries remain."""
        wait_until(lambda: self.metric("snisplice_active_connections") == 0, timeout=15,
                   what="no active connections")
        wait_until(lambda: self.open_fds() <= baseline_fds, timeout=15,
                   what=f"open fds back to {baseline_fds} (now {self.open_fds()})")
        entries = self.splice_map_entries()
        if entries is not None:
            wait_until(lambda: self.splice_map_entries() == 0, timeout=15, what="empty splice maps")

    def assert_data_path(self, allow_fallback=False):
        """The intended data path carried the connections that reached a backend."""
        spliced = self.metric("snisplice_spliced_connections_total", mode="sockmap")
        relayed = self.metric("snisplice_spliced_connections_total", mode="userspace")
        if SPLICE == "sockmap" and not allow_fallback:
            # Tests whose peers half-close or reset around the splice may legitimately fall
            # back per connection (a socket no longer ESTABLISHED); they set allow_fallback.
            if spliced + relayed > 0:
                assert spliced > 0, "splice: sockmap, but no connection was spliced in the kernel"
            assert relayed == 0, f"{relayed} connections fell back to the userspace relay"
        elif SPLICE == "userspace":
            assert spliced == 0, "splice: userspace, but connections were spliced in the kernel"

    def write_config(self, config):
        with open(self.config_path, "w") as f:
            f.write(to_yaml(config) + "\n")

    def reload(self, config=None):
        """SIGHUP, after writing `config` (a dict) over the file if given."""
        if config is not None:
            self.config = config
            self.write_config(config)
        self.proc.send_signal(signal.SIGHUP)

    def access_log(self):
        import json
        records = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records


def config(listeners, tables, backends=None, metrics_port=None, **top_level):
    """A config document (a dict, written as YAML by Proxy) in this run's splice mode, on
    config_builder.DEFAULTS; top-level keys as given (a dict merges into the default)."""
    return proxy_config(listeners, tables, backends, metrics_port, **{"splice": SPLICE, **top_level})


def one_route_config(port, backend_address, metrics_port, listener_options=None, **top_level):
    """A TLS listener on 127.0.0.1:port (with `listener_options`) sending every name to one backend."""
    return config([listener("tls", f"127.0.0.1:{port}", "t", protocol="tls", **(listener_options or {}))],
                  {"t": [route("*", backend="b")]}, {"b": servers(backend_address)}, metrics_port, **top_level)


class ProxyTest(unittest.TestCase):
    """Base: a temp dir, and cleanup of every process and backend a test starts."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="snisplice-e2e-")
        self._teardown = []

    def tearDown(self):
        try:
            self.check_proxies()
        finally:
            self._cleanup_all()

    def _cleanup_all(self):
        for fn in reversed(self._teardown):
            with contextlib.suppress(Exception):
                fn()
        if os.environ.get("SNISPLICE_KEEP"):
            print(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def later(self, fn):
        self._teardown.append(fn)

    def backend(self, handler, host="127.0.0.1"):
        b = TcpBackend(handler, host)
        self.later(b.close)
        return b

    def proxy(self, document, **kwargs):
        """A Proxy on `document` (see config()), stopped and checked after the test."""
        p = Proxy(self.dir, document, **kwargs)
        self.later(p.stop)
        self.proxies.append(p)
        return p

    def run(self, result=None):
        # After a passing test body, every proxy it started must have left nothing behind and
        # carried its connections on the intended data path.
        self.proxies = []
        return super().run(result)

    def check_proxies(self):
        for p in self.proxies:
            if p.proc.poll() is None and p.baseline_fds is not None:
                p.assert_data_path(p.allow_fallback)
                p.assert_nothing_left_behind(p.baseline_fds)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def pattern(seed, n):
    """Deterministic pseudo-random bytes, so each side can recompute what the other sent."""
    out = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


class EchoServer:
    """An echo backend on one epoll loop in one thread: holds thousands of connections cheaply
    (TcpBackend spends a thread on each)."""

    def __init__(self, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(4096)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.address = f"[{host}]:{self.port}" if family == socket.AF_INET6 else f"{host}:{self.port}"
        self.accepted = 0
        self.open = 0
        self.errors = []
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.sock, selectors.EVENT_READ)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        pending = {}   # socket -> bytes not yet echoed (kept only while the peer's window is full)
        while not self._stop.is_set():
            for key, events in self._selector.select(timeout=0.1):
                conn = key.fileobj
                if conn is self.sock:
                    self._accept_all()
                    continue
                try:
                    if events & selectors.EVENT_READ:
                        data = conn.recv(65536)
                        if not data:
                            self._drop(conn, pending)
                            continue
                        pending[conn] = pending.get(conn, b"") + data
                    if pending.get(conn):
                        try:
                            sent = conn.send(pending[conn])
                        except (BlockingIOError, InterruptedError):   # the peer's window is full
                            sent = 0
                        pending[conn] = pending[conn][sent:]
                    wanted = selectors.EVENT_READ
                    if pending.get(conn):
                        wanted |= selectors.EVENT_WRITE
                    else:
                        pending.pop(conn, None)
                    if key.events != wanted:
                        self._selector.modify(conn, wanted)
                except (BlockingIOError, InterruptedError):   # a wakeup with nothing to read
                    continue
                except OSError as e:   # a reset from the proxy's side ends that connection only
                    if not isinstance(e, ConnectionResetError):
                        self.errors.append(repr(e))
                    self._drop(conn, pending)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()
        self._selector.close()

    def _accept_all(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:   # EMFILE: leave it queued, retry on the next wakeup
                self.errors.append(repr(e))
                return
            conn.setblocking(False)
            self._selector.register(conn, selectors.EVENT_READ)
            self.accepted += 1
            self.open += 1

    def _drop(self, conn, pending):
        pending.pop(conn, None)
        self._selector.unregister(conn)
        conn.close()
        self.open -= 1

    def close(self):
        self._stop.set()
        self.thread.join(10)


def open_echoed_connections(address, count, payload, timeout=60.0, in_flight=256):
    """`count` connections to address (host, port), each sending `payload` and waiting for it
    echoed back, all from this thread on non-blocking sockets (at most `in_flight` unanswered at
    once, so the listen backlog never overflows). Returns the open sockets, blocking again."""
    selector = selectors.DefaultSelector()
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    done, received, started = [], {}, 0
    deadline = time.monotonic() + timeout
    try:
        while len(done) < count:
            while started < count and len(received) < in_flight:
                s = socket.socket(family, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex(address)
                if err not in (0, errno.EINPROGRESS):
                    s.close()
                    raise OSError(err, f"connect to {address}: {os.strerror(err)}")
                selector.register(s, selectors.EVENT_WRITE)
                received[s] = None   # None: connecting
                started += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(done)} of {count} connections answered after {timeout}s")
            for key, _ in selector.select(timeout=1.0):
                s = key.fileobj
                if received[s] is None:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, f"connect to {address}: {os.strerror(err)}")
                    s.sendall(payload)   # small: fits in a fresh socket's send buffer
                    received[s] = b""
                    selector.modify(s, selectors.EVENT_READ)
                    continue
                chunk = s.recv(len(payload) - len(received[s]))
                if not chunk:
                    raise AssertionError(f"connection closed after {len(received[s])} of {len(payload)} echoed bytes")
                received[s] += chunk
                if len(received[s]) == len(payload):
                    if received[s] != payload:
                        raise AssertionError("echoed bytes differ from those sent")
                    selector.unregister(s)
                    del received[s]
                    s.setblocking(True)
                    done.append(s)
        return done
    except BaseException:
        for s in done + list(received):
            s.close()
        raise
    finally:
        selector.close()


def exchange_latencies(address, hello, count, size=16384):
    """Seconds each of `count` fresh connections to an echo backend takes to connect, send the
    hello and get it back (as a TLS client waits for the server's answer), then send `size`
    random bytes and get them back intact (checksum compared)."""
    times = []
    for _ in range(count):
        payload = os.urandom(size)
        start = time.monotonic()
        with socket.create_connection(address, timeout=10) as c:
            c.sendall(hello)
            answer = recv_exact(c, len(hello))
            c.sendall(payload)
            echoed = recv_exact(c, size)
        times.append(time.monotonic() - start)
        if answer != hello or sha256(echoed) != sha256(payload):
            raise AssertionError("echoed bytes differ from those sent")
    return times


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def rss_kib(pids):
    """Resident set size summed over processes, in KiB (VmRSS: anonymous, file and shared memory)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))
    return total
