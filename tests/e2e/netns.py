"""Two network namespaces made for one test, joined by a veth pair on 198.51.100.0/24 (a
documentation range; nothing leaves the two namespaces), and the programs the e2e tests run
inside them: a backend that answers each hello with "ready\\n", a client that sends a hello,
and any command (the proxy itself) through nsenter."""
import os
import shutil
import subprocess

NET = "198.51.100"
SERVER = f"{NET}.1"


def sh(*argv, check=True, **kwargs):
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kwargs)


def why_no_namespaces(needs, tools):
    """Why the namespaces cannot be made here (`needs` names what root is for), or None."""
    if os.geteuid() != 0:
        return f"needs root ({needs})"
    for tool in ("ip", "nsenter", *tools):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if NET + "." in sh("ip", "route", "show").stdout:
        return f"{NET}.0/24 is already routed on this host"
    return None


# Answers each connection's first read with "ready\n", then closes after one more byte or EOF.
_READY_BACKEND = """import socket, sys, threading
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1]))); l.listen(64)
def answer(c):
    c.recv(65536); c.sendall(b"ready\\n"); c.recv(1); c.close()
while True:
    c, _ = l.accept(); threading.Thread(target=answer, args=(c,), daemon=True).start()
"""

# Prints "ok" when the answer is "ready\n", "closed" for anything else, or the error's name.
_HELLO_CLIENT = """import socket, sys
destination, port, source, timeout, hello = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
s = socket.socket(); s.settimeout(timeout)
try:
    if source:
        s.bind((source, 0))
    s.connect((destination, port)); s.sendall(bytes.fromhex(hello)); d = s.recv(6)
    print("ok" if d == b"ready\\n" else "closed")
except OSError as e:
    print(type(e).__name__)
"""


class NamespacePair:
    """A server and a client namespace (names from `prefix` and this process's pid), each with
    lo up, joined by a veth: the server side is 198.51.100.1/24 on `server_if`, the client side
    holds `client_addresses` (default .2) on `client_if`. Removed by the test's cleanup."""

    def __init__(self, test, prefix, client_addresses=(f"{NET}.2",)):
        tag = f"{os.getpid() % 100000}"
        self.server, self.client = f"{prefix}s{tag}", f"{prefix}c{tag}"
        self.server_if, self.client_if = f"{prefix}vs{tag}", f"{prefix}vc{tag}"
        for ns in (self.server, self.client):
            sh("ip", "netns", "add", ns)
            test.later(lambda ns=ns: sh("ip", "netns", "del", ns, check=False))
        sh("ip", "link", "add", self.server_if, "netns", self.server, "type", "veth",
           "peer", "name", self.client_if, "netns", self.client)
        self.run(self.server, "ip", "addr", "add", f"{SERVER}/24", "dev", self.server_if)
        for address in client_addresses:
            self.run(self.client, "ip", "addr", "add", f"{address}/24", "dev", self.client_if)
        for ns, dev in ((self.server, self.server_if), (self.client, self.client_if)):
            self.run(ns, "ip", "link", "set", "lo", "up")
            self.run(ns, "ip", "link", "set", dev, "up")

    @staticmethod
    def inside(ns, *argv):
        """argv run inside namespace `ns` (for Process)."""
        return ["nsenter", f"--net=/run/netns/{ns}", *argv]

    def run(self, ns, *argv, check=True, **kwargs):
        return sh(*self.inside(ns, *argv), check=check, **kwargs)

    def ready_backend_argv(self, port):
        """A backend in the server namespace on 127.0.0.1:port that answers "ready\\n"."""
        return self.inside(self.server, "python3", "-c", _READY_BACKEND, str(port))

    def hello_from_client(self, destination, port, hello, source="", timeout=5.0):
        """Sends `hello` from the client namespace: "ok" when the backend answered through the
        proxy, "closed" when the connection closed first, else the error's name (TimeoutError)."""
        return self.run(self.client, "python3", "-c", _HELLO_CLIENT, destination, str(port), source, str(timeout),
                        hello.hex(), check=False).stdout.strip()
