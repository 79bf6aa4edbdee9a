"""Two runs side by side: per topology, path and metric, the change in the ratio to direct, and
whether it is beyond the noise measured between repeated identical runs (bench/noise.json).

Noise, as bench/measure-noise records it: for each topology, metric and path, the largest relative
change of the ratio to direct between any two of N identical runs (max/min - 1). A change in a
comparison is beyond the noise when its size exceeds that figure."""
import itertools
import json
import os

from .results import METRICS, REPO

NOISE_FILE = os.path.join(REPO, "bench", "noise.json")
IDLE_METRICS = {
    # key -> (label, unit, higher is better)
    "kib_per_idle": ("process memory per idle connection", "KiB", False),
}


def pairwise_spread(values):
    """The largest relative change between any two of `values` (max/min - 1); None if fewer than two."""
    values = [v for v in values if v is not None and v > 0]
    if len(values) < 2:
        return None
    return max(b / a - 1 for a, b in itertools.permutations(values, 2))


def measure_noise(runs):
    """runs: loaded peers results of identical runs -> topology -> metric -> path -> spread."""
    noise = {}
    for topo in sorted({t for run in runs for t in run["topologies"]}):
        per_run = [run["topologies"][topo]["ratios"] for run in runs if topo in run["topologies"]]
        noise[topo] = {}
        for metric in METRICS:
            noise[topo][metric] = {}
            for path in sorted({p for r in per_run for p in r if p != "direct"}):
                spread = pairwise_spread([r.get(path, {}).get(metric) for r in per_run])
                if spread is not None:   # unrounded: a change between these very runs must stay inside
                    noise[topo][metric][path] = spread
    return noise


def measure_idle_noise(runs):
    """runs: identical idle-memory runs -> path -> scenario -> figure -> spread."""
    noise = {}
    for path, scenarios in runs[0]["summary"].items():
        for scenario, values in scenarios.items():
            for metric in values:
                spread = pairwise_spread([r["summary"].get(path, {}).get(scenario, {}).get(metric) for r in runs])
                if spread is not None:
                    noise.setdefault(path, {}).setdefault(scenario, {})[metric] = spread
    return noise


def load_noise(path=NOISE_FILE):
    """The noise file's content, or None when there is none yet."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def noise_for(noise, topo, metric, path):
    if not noise:
        return None
    return noise.get("noise", {}).get(topo, {}).get(metric, {}).get(path)


def verdict(change, limit, higher_is_better):
    """'worse'/'better' beyond the noise, 'within noise', or 'noise unknown'."""
    if change is None:
        return "n/a"
    if limit is None:
        return "noise unknown"
    if abs(change) <= limit:
        return "within noise"
    improved = change > 0 if higher_is_better else change < 0
    return "BETTER" if improved else "WORSE"


def compare(old, new, noise):
    """Rows (topology, path, metric, old ratio, new ratio, relative change, noise, verdict) for
    every path and metric both runs have."""
    rows = []
    for topo in new["topologies"]:
        if topo not in old["topologies"]:
            continue
        old_ratios, new_ratios = old["topologies"][topo]["ratios"], new["topologies"][topo]["ratios"]
        for path in new_ratios:
            if path == "direct" or path not in old_ratios:
                continue
            for metric, (_, _, higher_is_better) in METRICS.items():
                a, b = old_ratios[path].get(metric), new_ratios[path].get(metric)
                if a is None or b is None:
                    continue
                change = b / a - 1 if a else None
                limit = noise_for(noise, topo, metric, path)
                rows.append({"topology": topo, "path": path, "metric": metric, "old": a, "new": b,
                             "change": change, "noise": limit,
                             "verdict": verdict(change, limit, higher_is_better)})
    return rows


def direct_drift(old, new):
    """How the direct baseline itself moved, per topology and metric: the machine, not the proxies."""
    drift = {}
    for topo in new["topologies"]:
        if topo in old["topologies"]:
            a = old["topologies"][topo]["summary"].get("direct", {})
            b = new["topologies"][topo]["summary"].get("direct", {})
            drift[topo] = {m: b[m] / a[m] - 1 for m in METRICS if a.get(m) and b.get(m) is not None}
    return drift


def compare_idle(old, new, noise):
    """Idle-memory runs: per proxy and scenario, the relative change of its KiB per connection."""
    rows = []
    limits = (noise or {}).get("idle", {})
    for path, scenarios in new["summary"].items():
        for scenario, values in scenarios.items():
            before = old["summary"].get(path, {}).get(scenario, {})
            for metric in values:
                a, b = before.get(metric), values[metric]
                if a is None or b is None or a <= 0:
                    continue
                change = b / a - 1
                limit = limits.get(path, {}).get(scenario, {}).get(metric)
                rows.append({"topology": scenario, "path": path, "metric": metric, "old": a, "new": b,
                             "change": change, "noise": limit, "verdict": verdict(change, limit, False)})
    return rows


def invalid_lines(run):
    """One line per figure results.drop_invalid dropped from a peers run."""
    return [f"{topo} | {path} | {metric} = {value:.3f} (below zero: the attributed CPU accounting bug of "
            f"runs before it was made per process)"
            for topo, t in run.get("topologies", {}).items()
            for path, bad in t.get("invalid", {}).items() for metric, value in bad.items()]


def format_rows(rows, ratio_label="ratio to direct"):
    lines = [f"| topology | path | metric | old {ratio_label} | new | change | noise | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        noise = "?" if r["noise"] is None else f"±{r['noise'] * 100:.1f}%"
        lines.append(f"| {r['topology']} | {r['path']} | {r['metric']} | {r['old']:.3f} | {r['new']:.3f} "
                     f"| {r['change'] * 100:+.1f}% | {noise} | {r['verdict']} |")
    return "\n".join(lines)
