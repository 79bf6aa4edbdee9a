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
    """Every process a run starts, each in its own session, stopped (SIGTERM, then SIGKILL) by its
    own pid at the end."""

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
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc, log in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"# {name} ignored SIGTERM; killing pid {proc.pid}", file=sys.stderr)
                proc.kill()
                proc.wait()
            log.close()
        self.procs = []


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
    """Which data path snisplice's connections took, and how many the splice budget cut."""
    return {
        "sockmap_connections": values.get('snisplice_spliced_connections_total{mode="sockmap"}', 0),
        "userspace_connections": values.get('snisplice_spliced_connections_total{mode="userspace"}', 0),
        "budget_aborts": metric_sum(values, "snisplice_splice_budget_aborts_total"),
    }
