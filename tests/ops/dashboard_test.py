#!/usr/bin/env python3
"""The Grafana dashboard and the Prometheus files query only what the daemon exports.

Exported names come from proxy/metrics/metrics.cpp (every family, with its type); a live
scrape of the built daemon on loopback confirms that list (each family it shows is in it,
with the same type). Every snisplice_* name in the dashboard's and the alert rules' queries
must be one of them (histograms only through _bucket/_sum/_count), every label they group
or filter by must be one the daemon sets, and the dashboard must cover connections by
result, throughput, splice modes, hello sizes, the DNS cache and XDP drops.

usage: dashboard_test.py SOURCE_DIR SNISPLICE_BINARY
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops_support import missing_prerequisite, skipped, write_reject_all_config  # noqa: E402

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels the daemon sets (INTERFACE.md), plus the ones Prometheus adds and "le".
KNOWN_LABELS = {"listener", "route", "result", "direction", "mode", "verdict", "interface", "backend",
                "server", "instance", "job", "le"}
REQUIRED_COVERAGE = {
    "connections by result": r"snisplice_connections_total.*by \(result\)|by \(result\).*snisplice_connections_total",
    "throughput": r"snisplice_bytes_total",
    "splice mode": r"by \(mode\).*snisplice_spliced_connections_total",
    "hello sizes": r"snisplice_client_hello_bytes_bucket",
    "DNS cache": r"snisplice_dns_lookups_total.*cache_hit",
    "XDP drops": r"snisplice_xdp_packets_total",
}


def declared_families(source_dir):
    with open(os.path.join(source_dir, "proxy", "metrics", "metrics.cpp")) as f:
        text = f.read()
    found = re.findall(r'\b(counter|gauge|histogram)\(\s*\*registry_,\s*"(snisplice_\w+)"', text)
    return {name: kind for kind, name in found}


def scraped_families(binary):
    """{name: type} from a live scrape, after one connection so labelled families appear."""
    with tempfile.TemporaryDirectory(prefix="snisplice-dash-") as tmp:
        config, listen_port, metrics_port, _ = write_reject_all_config(tmp, "dash", splice="userspace",
                                                                       access_log='"off"')
        proc = subprocess.Popen([binary, "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            body = None
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", listen_port), timeout=2) as s:
                        s.sendall(b"\x16\x03\x01\x00\x05hello")  # a broken hello: a counted connection
                        s.settimeout(2)
                        try:
                            s.recv(64)
                        except OSError:
                            pass
                    time.sleep(0.2)
                    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as r:
                        body = r.read().decode()
                    break
                except OSError:
                    time.sleep(0.1)
            if body is None:
                raise AssertionError(f"no scrape from the daemon: {proc.stderr.read() if proc.poll() is not None else ''}")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    return dict(re.findall(r"^# TYPE (snisplice_\w+) (\w+)$", body, re.M))


def exprs_of_dashboard(dashboard):
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append((f"panel {panel['id']} {panel['title']!r}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if isinstance(variable.get("query"), dict):
            exprs.append((f"variable {variable['name']}", variable["query"]["query"]))
    return exprs


def check_expr(where, expr, families, problems):
    for name in set(re.findall(r"\bsnisplice_\w+", expr)):
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s) and name[: -len(s)] in families), None)
        if base is not None:
            if families[base] != "histogram":
                problems.append(f"{where}: {name}: {base} is a {families[base]}, not a histogram")
        elif name not in families:
            problems.append(f"{where}: {name} is not exported by the daemon")
        elif families[name] == "histogram":
            problems.append(f"{where}: {name} is a histogram: query _bucket/_sum/_count")
    labels = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    for selector in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector))
    labels -= {"le"} if "histogram_quantile" in expr or "_bucket" in expr else set()
    for label in sorted(labels - KNOWN_LABELS):
        problems.append(f"{where}: label {label!r} is not set by the daemon")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    source_dir, binary = sys.argv[1], sys.argv[2]
    reason = missing_prerequisite(python_yaml=True)
    if reason:
        return skipped("ops_dashboard", reason)
    import yaml
    problems = []
    families = declared_families(source_dir)
    if len(families) < 10:
        print(f"FAIL: only {len(families)} metric families parsed from metrics.cpp: the parse is stale")
        return 1
    if os.access(binary, os.X_OK):
        try:
            live = scraped_families(binary)
        except AssertionError as e:
            print(f"FAIL: {e}")
            return 1
        for name, kind in sorted(live.items()):
            if families.get(name) != kind:
                problems.append(f"the daemon exports {name} ({kind}), metrics.cpp parse says {families.get(name)}")
        print(f"ok: a live scrape shows {len(live)} families, all as parsed from metrics.cpp ({len(families)})")
    else:
        print(f"note: {binary} is not built: names are checked against metrics.cpp only")

    with open(os.path.join(source_dir, "deploy", "grafana", "snisplice-dashboard.json")) as f:
        dashboard = json.load(f)
    ids = [panel["id"] for panel in dashboard["panels"]]
    if len(ids) != len(set(ids)):
        problems.append("dashboard: duplicate panel ids")
    exprs = exprs_of_dashboard(dashboard)
    for where, expr in exprs:
        check_expr(f"dashboard {where}", expr, families, problems)
    joined = "\n".join(expr for _, expr in exprs)
    for topic, pattern in REQUIRED_COVERAGE.items():
        if not re.search(pattern, joined):
            problems.append(f"dashboard: no panel shows {topic}")
    print(f"checked {len(exprs)} dashboard queries")

    prometheus_dir = os.path.join(source_dir, "deploy", "prometheus")
    with open(os.path.join(prometheus_dir, "scrape.yaml")) as f:
        scrape = yaml.safe_load(f)
    jobs = [job["job_name"] for job in scrape["scrape_configs"]]
    if len(jobs) != len(set(jobs)):
        problems.append("scrape.yaml: duplicate job_name")
    for rule_file in scrape.get("rule_files", []):
        if not os.path.exists(os.path.join(prometheus_dir, rule_file)):
            problems.append(f"scrape.yaml: rule file {rule_file} does not exist")
    with open(os.path.join(prometheus_dir, "alerts.yaml")) as f:
        alerts = yaml.safe_load(f)
    rules = [rule for group in alerts["groups"] for rule in group["rules"]]
    for rule in rules:
        if not rule.get("alert") or not rule.get("expr"):
            problems.append(f"alerts.yaml: a rule without alert/expr: {rule}")
            continue
        check_expr(f"alert {rule['alert']}", rule["expr"], families, problems)
    print(f"checked {len(rules)} alert rules and {len(jobs)} scrape jobs")

    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
