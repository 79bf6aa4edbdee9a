"""A run's results: the machine it ran on, every raw sample, the per-path summary and its ratios
to direct, as one JSON file per run in bench/results/."""
import datetime
import json
import os
import platform
import statistics
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS_DIR = os.path.join(REPO, "bench", "results")
FORMAT = 2

# key -> (label, unit, higher is better)
METRICS = {
    "up_gbit": ("bulk up", "Gbit/s", True),
    "down_gbit": ("bulk down", "Gbit/s", True),
    "p50_us": ("round trip p50", "us", False),
    "p99_us": ("round trip p99", "us", False),
    "conn_per_s": ("connections/s", "1/s", True),
    "own_cpu_s_per_gb": ("CPU per GB, attributed", "s/GB", False),
    "cpu_s_per_gb": ("CPU per GB, system-wide", "s/GB", False),
    "paced_own_cpu_s_per_gb": ("CPU per GB at the paced rate, attributed", "s/GB", False),
    "paced_cpu_s_per_gb": ("CPU per GB at the paced rate, system-wide", "s/GB", False),
}


def _git(*args):
    out = subprocess.run(["git", "-C", REPO] + list(args), capture_output=True, text=True, timeout=30)
    return out.stdout.strip() if out.returncode == 0 else None


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def machine():
    """Where and from what a run was made: commit, kernel, CPU."""
    cpu_model = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": _git("rev-parse", "--short=12", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        "kernel": platform.release(),
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
    }


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _cpu_per_gb(runs, key):
    """CPU per GB per round (both bulk directions); the least of the rounds, because other work
    on a shared machine can only add CPU time, never remove it."""
    per_round = []
    for rnd in sorted({r["round"] for r in runs}):
        in_round = [r for r in runs if r["round"] == rnd]
        gbytes = sum(r.get("up_bytes", 0) + r.get("down_bytes", 0) for r in in_round) / 1e9
        if gbytes:
            per_round.append(sum(r[key] for r in in_round) / gbytes)
    return min(per_round) if per_round else None


def summarize_path(name, by_workload):
    ok = {w: [r for r in rs if "failed" not in r] for w, rs in by_workload.items()}
    bulk = [r for w in ("up", "down", "paced-up", "paced-down") for r in by_workload.get(w, [])]
    data_path = None
    if name.startswith("snisplice"):
        data_path = {
            "bulk_runs_in_kernel": sum(1 for r in bulk if "failed" not in r and r.get("sockmap_connections")
                                       and not r.get("userspace_connections")),
            "bulk_runs_relayed": sum(1 for r in bulk if "failed" not in r and r.get("userspace_connections")),
            "budget_aborted_runs": sum(1 for r in bulk if r.get("budget_aborts")),
        }
        carried = sum(r.get("carried_bytes", 0) for r in bulk if "failed" not in r)
        if carried and any("held_bytes" in r for r in bulk):
            # Of the bulk runs' bytes, the share a pause held for the proxy to move (relay_held).
            data_path["held_share"] = sum(r.get("held_bytes", 0) for r in bulk if "failed" not in r) / carried
        if name == "snisplice sockmap":
            # A bulk run counts for the sockmap path only if every connection was spliced in the kernel.
            for w in ("up", "down", "paced-up", "paced-down"):
                ok[w] = [r for r in ok.get(w, []) if not r.get("userspace_connections")]
    get = lambda w: ok.get(w, [])
    return {
        "up_gbit": median_or_none([r.get("up_gbit_per_s") for r in get("up")]),
        "down_gbit": median_or_none([r.get("down_gbit_per_s") for r in get("down")]),
        "p50_us": median_or_none([r.get("p50_us") for r in get("pingpong")]),
        "p99_us": median_or_none([r.get("p99_us") for r in get("pingpong")]),
        "conn_per_s": median_or_none([r.get("connections_per_s") for r in get("reconnect")]),
        "cpu_s_per_gb": _cpu_per_gb(get("up") + get("down"), "cpu_busy_seconds"),
        "own_cpu_s_per_gb": _cpu_per_gb(get("up") + get("down"), "cpu_attributed_seconds"),
        "paced_cpu_s_per_gb": _cpu_per_gb(get("paced-up") + get("paced-down"), "cpu_busy_seconds"),
        "paced_own_cpu_s_per_gb": _cpu_per_gb(get("paced-up") + get("paced-down"), "cpu_attributed_seconds"),
        "failures": sum(1 for rs in by_workload.values() for r in rs if "failed" in r),
        "data_path": data_path,
    }


def ratios(summary):
    """path -> metric -> value / direct's value (None where either is missing)."""
    base = summary.get("direct", {})
    out = {}
    for name, s in summary.items():
        out[name] = {}
        for key in METRICS:
            value, reference = s.get(key), base.get(key)
            out[name][key] = value / reference if value is not None and reference else None
    return out


def summarize(raw):
    summary = {name: summarize_path(name, by_workload) for name, by_workload in raw.items()}
    return summary, ratios(summary)


def load(path):
    with open(path) as f:
        return normalize(json.load(f))


def invalid_figures(summary):
    """path -> {metric: value} for figures no run can produce: below zero. Runs before the
    attributed CPU accounting was made per process have some (a kernel thread that ended during a
    measurement took its whole past CPU time out of the sum: docs/benchmarks.md)."""
    invalid = {}
    for path, s in summary.items():
        bad = {m: s[m] for m in METRICS if isinstance(s.get(m), (int, float)) and s[m] < 0}
        if bad:
            invalid[path] = bad
    return invalid


def drop_invalid(topo):
    """Removes a topology's invalid figures from its summary (recording them under `invalid`) and
    recomputes its ratios, so compare and chart never use them: a path's ratio is void where its
    own figure or direct's is."""
    invalid = invalid_figures(topo["summary"])
    if not invalid:
        return topo
    topo = dict(topo, summary={p: dict(s) for p, s in topo["summary"].items()}, invalid=invalid)
    for path, bad in invalid.items():
        for metric in bad:
            topo["summary"][path][metric] = None
    topo["ratios"] = ratios(topo["summary"])
    return topo


def normalize(data):
    """A results file's content; the first format (one loopback run, no topologies) is read as
    loopback; figures below zero are dropped (drop_invalid); idle-memory runs are returned as
    they are."""
    if "kind" not in data and "summary" in data:
        args = data.get("args", {})
        data = {
            "kind": "peers", "format": 1,
            "meta": {"started": None, "machine": {}, "args": args,
                     "loadavg": {k: [float(x) for x in v] for k, v in args.get("loadavg", {}).items()}},
            "topologies": {"loopback": {"summary": data["summary"], "ratios": ratios(data["summary"])}},
        }
    if data.get("kind") == "peers":
        data = dict(data, topologies={name: drop_invalid(t) for name, t in data["topologies"].items()})
    return data


def write(data, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")


def default_path(started, kind="peers"):
    suffix = "" if kind == "peers" else f"-{kind}"
    return os.path.join(RESULTS_DIR, f"{started:%Y-%m-%dT%H%MZ}{suffix}.json")


def caption(data):
    """One line naming the run: date, commit, kernel, load average."""
    meta = data.get("meta", {})
    m = meta.get("machine", {})
    avg = meta.get("loadavg", {})
    load_text = " / ".join(" ".join(f"{x:.2f}" for x in avg[k]) for k in ("before", "after") if k in avg)
    commit = (m.get("commit") or "?") + ("+dirty" if m.get("dirty") else "")
    return (f"{meta.get('started') or '?'}, commit {commit}, kernel {m.get('kernel') or '?'}, "
            f"{m.get('cpus') or '?'} CPUs, load average before/after {load_text or '?'}")
