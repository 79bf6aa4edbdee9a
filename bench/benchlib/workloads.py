"""The workloads, as snisplice_load arguments, and one measurement of one path."""
import json
import subprocess
import time

from . import cpu, peers

NAMES = ("up", "down", "paced-up", "paced-down", "pingpong", "reconnect")
BULK = ("up", "down", "paced-up", "paced-down")


def arguments(seconds, connections, paced_mbit, reconnect_concurrency):
    secs = f"{seconds:g}"
    stream = ["stream", "--connections", str(connections), "--seconds", secs]
    return {
        "up": stream + ["--direction", "up"],
        "down": stream + ["--direction", "down"],
        "paced-up": stream + ["--direction", "up", "--rate-mbit", str(paced_mbit)],
        "paced-down": stream + ["--direction", "down", "--rate-mbit", str(paced_mbit)],
        "pingpong": ["pingpong", "--size", "64", "--seconds", secs],
        "reconnect": ["reconnect", "--concurrency", str(reconnect_concurrency), "--size", "64", "--seconds", secs],
    }


def run_load(load, args, timeout=600):
    """Runs the load client in the caller's network namespace; its JSON line, plus `failed`."""
    try:
        out = subprocess.run([load] + args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"no result after {timeout} s"}
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    try:
        result = json.loads(line)
    except ValueError:
        result = {}
    if out.returncode != 0:
        result["failed"] = out.stderr.strip()[-400:] or f"exit {out.returncode}"
    return result


def measure(topology, load, argv, target, metrics, sessions):
    """One measurement: the load client in the client's host, CPU around it, and for snisplice the
    data path its connections took (from its metrics, read in the proxy's host)."""
    def counters():
        with topology.inside("proxy"):
            return peers.snisplice_counters(peers.scrape(metrics))

    counters0 = counters() if metrics else None
    cpu0, own0 = cpu.busy_seconds(), cpu.attributed_sample(sessions)
    with topology.inside("client"):
        result = run_load(load, argv + ["--target", target, "--sni", peers.SNI])
    result["cpu_busy_seconds"] = cpu.busy_seconds() - cpu0
    result["cpu_attributed_seconds"] = cpu.attributed_between(own0, cpu.attributed_sample(sessions))
    if metrics:
        counters1 = counters()
        result.update({k: counters1[k] - counters0[k] for k in counters0})
    time.sleep(0.3)  # let closing connections settle between paths
    return result
