"""The paths a benchmark compares, their configuration files and the processes that serve them.

Every path listens on the proxy host of a topology (127.0.0.1 on loopback, the proxy namespace's
address behind veth pairs) at a fixed port; `direct` is the load backend itself, the baseline."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

SNI = "bench.localhost"
BACKEND_PORT = 19101

# name -> (listen port, metrics port or None); metrics listen on 127.0.0.1 of the proxy's host.
PATHS = {
    "direct": (BACKEND_PORT, None),
    "snisplice sockmap": (19201, 19291),
    "snisplice userspace": (19202, 19292),
    "snisplice auto": (19206, 19296),
    "nginx ssl_preread": (19203, None),
    "haproxy splice-auto": (19204, None),
    "sniproxy": (19205, None),
}
SNISPLICE_MODES = {"snisplice sockmap": "sockmap", "snisplice userspace": "userspace", "snisplice auto": "auto"}


def split(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


def snisplice_config(listen, metrics, mode, backend):
    return f"""workers: auto
listeners:
  - name: tls
    listen: ["{listen}"]
    protocol: tls
    table: bench
tables:
  bench:
    - host: {SNI}
      backend: load
    - host: "*"
      action: reject
backends:
  load:
    servers: ["{backend}"]
splice: {mode}
bpf_pin_path: /sys/fs/bpf/snisplice-bench-{mode}-{os.getpid()}
metrics:
  listen: "{metrics}"
access_log: "off"
log_level: warn
timeouts:
  shutdown_grace: 2s   # stopped when the run is over: well inside Processes.TERM_SECONDS
"""


def nginx_config(listen, backend, workdir):
    return f"""load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
worker_processes auto;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 8192; }}
stream {{
  map $ssl_preread_server_name $bench_upstream {{
    {SNI} {backend};
    default 127.0.0.1:1;
  }}
  server {{
    listen {listen} reuseport;
    ssl_preread on;
    tcp_nodelay on;
    proxy_pass $bench_upstream;
  }}
}}
"""


def haproxy_config(listen, backend, workdir):
    return f"""global
  maxconn 4000  # HAProxy needs about 2.5 fds per connection; the hard fd limit here is 20000
  nbthread 2
defaults
  mode tcp
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  option splice-auto
frontend tls
  bind {listen}
  tcp-request inspect-delay 5s
  tcp-request content accept if {{ req.ssl_hello_type 1 }}
  use_backend load if {{ req.ssl_sni -i {SNI} }}
backend load
  server s1 {backend}
"""


def sniproxy_config(listen, backend, workdir):
    host, port = split(listen)
    return f"""user daemon
pidfile {workdir}/sniproxy.pid
error_log {{
  filename {workdir}/sniproxy-error.log
  priority notice
}}
listener {host}:{port} {{
  protocol tls
  table bench
}}
table bench {{
  ^bench\\.localhost$ {backend}
}}
"""


def peer_commands(workdir):
    """name -> (config file name, config writer, argv for a config path) for the non-snisplice peers."""
    return {
        "nginx ssl_preread": ("nginx.conf", nginx_config,
                              lambda c: ["nginx", "-c", c, "-p", workdir, "-e", f"{workdir}/nginx-error.log"]),
        "haproxy splice-auto": ("haproxy.conf", haproxy_config, lambda c: ["haproxy", "-db", "-f", c]),
        "sniproxy": ("sniproxy.conf", sniproxy_config, lambda c: ["sniproxy", "-f", "-c", c]),
    }


class Processes:
    """Every process a run starts, each in its own session (and process group), stopped by its own
    pid at the end: SIGTERM, a bounded wait, then SIGKILL to its process group. A process that
    outlives even that (stuck in the kernel) is reported and left, so the run never hangs on it."""

    TERM_SECONDS = 10   # for all of them together to exit after SIGTERM
    KILL_SECONDS = 5    # for each to go after SIGKILL

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, argv):
        log = open(os.path.join(self.workdir, f"{name}.log"), "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc, log))
        return proc

    def sessions(self):
        return {proc.pid for _, proc, _ in self.procs}

    def stop_all(self):
        """Stops every process; returns name -> how it ended: "exited" (before SIGTERM), "SIGTERM",
        "SIGKILL" (ignored SIGTERM), "stuck" (pid N still there after SIGKILL). All but the first
        two are also printed."""
        outcome = {}
        for name, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                outcome[name] = "SIGTERM"
            else:
                outcome[name] = "exited"
        deadline = time.monotonic() + self.TERM_SECONDS
        for name, proc, log in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                outcome[name] = self._kill(name, proc)
            log.close()
        self.procs = []
        return outcome

    def _kill(self, name, proc):
        print(f"# {name} (pid {proc.pid}) did not exit {self.TERM_SECONDS} s after SIGTERM; "
              f"sending SIGKILL to its process group", file=sys.stderr, flush=True)
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # its group is its own: started in a new session
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=self.KILL_SECONDS)
            return "SIGKILL"
        except subprocess.TimeoutExpired:
            print(f"# {name} (pid {proc.pid}) is still there {self.KILL_SECONDS} s after SIGKILL "
                  f"(stuck in the kernel?); left behind", file=sys.stderr, flush=True)
            return f"stuck (pid {proc.pid})"


def wait_listening(address, proc, what, timeout=10.0):
    """Waits until `address` accepts, in the caller's network namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited early with status {proc.returncode}; see its log")
        try:
            with socket.create_connection(split(address), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} is not listening on {address} after {timeout}s")


def scrape(metrics_address):
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
    return values


def metric_sum(values, prefix):
    return sum(v for k, v in values.items() if k == prefix or k.startswith(prefix + "{"))


def snisplice_counters(values):
    """Which data path snisplice's connections took, how many the splice budget cut, and how many
    of the bytes carried a pause held for the proxy to move itself."""
    return {
        "sockmap_connections": values.get('snisplice_spliced_connections_total{mode="sockmap"}', 0),
        "userspace_connections": values.get('snisplice_spliced_connections_total{mode="userspace"}', 0),
        "budget_aborts": metric_sum(values, "snisplice_splice_budget_aborts_total"),
        "carried_bytes": metric_sum(values, "snisplice_bytes_total"),
        "held_bytes": metric_sum(values, "snisplice_splice_held_bytes_total"),
    }
