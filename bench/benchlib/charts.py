"""Charts of one run: one per workload metric, every path side by side, one bar per topology,
the ratio to direct on the axis; the run's date, commit, kernel and load average in the caption.

`specs` turns a run into what to draw (pure, unit-tested); `draw` draws it with matplotlib."""
import os

from .results import METRICS, caption

# chart file name -> metric key
CHARTS = {
    "bulk-up": "up_gbit",
    "bulk-down": "down_gbit",
    "rtt-p50": "p50_us",
    "rtt-p99": "p99_us",
    "connections-per-second": "conn_per_s",
    "cpu-per-gb": "own_cpu_s_per_gb",
    "cpu-per-gb-paced": "paced_own_cpu_s_per_gb",
}
IDLE_CHART = "idle-memory"


def _direct_line(data, metric):
    unit = METRICS[metric][1]
    parts = []
    for topo, t in data["topologies"].items():
        value = t["summary"].get("direct", {}).get(metric)
        parts.append(f"{topo} {value:.3g} {unit}" if value is not None else f"{topo} n/a")
    return "direct = 1.0: " + ", ".join(parts)


def specs(data):
    """A peers run -> list of chart specs: name, title, y label, categories (paths), series
    (topology -> values aligned with categories, None where missing), invalid (topology -> True
    where the run's figure was invalid and dropped: results.drop_invalid), caption lines."""
    topologies = list(data["topologies"])
    paths = []
    for t in data["topologies"].values():
        paths += [p for p in t["ratios"] if p != "direct" and p not in paths]
    out = []
    for name, metric in CHARTS.items():
        label, unit, higher_is_better = METRICS[metric]
        series = {topo: [data["topologies"][topo]["ratios"].get(p, {}).get(metric) for p in paths]
                  for topo in topologies}
        invalid = {topo: [metric in data["topologies"][topo].get("invalid", {}).get(p, {}) for p in paths]
                   for topo in topologies}
        if not any(v is not None for values in series.values() for v in values):
            continue
        out.append({
            "name": name,
            "title": f"{label} ({'higher' if higher_is_better else 'lower'} is better)",
            "ylabel": "ratio to direct (direct = 1.0)",
            "categories": paths,
            "series": series,
            "invalid": invalid,
            "reference": 1.0,
            "caption": [caption(data), _direct_line(data, metric)],
        })
    return out


def idle_spec(data):
    """An idle-memory run -> one chart spec: KiB per idle connection, per proxy and scenario
    (absolute: there is no direct path to hold connections)."""
    paths = list(data["summary"])
    scenarios = list(dict.fromkeys(s for values in data["summary"].values() for s in values))
    series = {}
    for scenario in scenarios:
        for metric, label in (("kib_per_idle", "process"), ("kernel_kib_per_idle", "kernel slab")):
            values = [data["summary"][p].get(scenario, {}).get(metric) for p in paths]
            if any(v is not None for v in values):
                series[f"{scenario}, {label}"] = values
    meta = data.get("meta", {})
    return {
        "name": IDLE_CHART,
        "title": f"memory per idle connection, {meta.get('args', {}).get('connections', '?')} connections (lower is better)",
        "ylabel": "KiB per connection",
        "categories": paths,
        "series": series,
        "reference": None,
        "caption": [caption(data)],
    }


def draw(spec, outdir):
    """Writes outdir/<name>.png; returns its path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories, series = spec["categories"], spec["series"]
    invalid = spec.get("invalid", {})
    fig, ax = plt.subplots(figsize=(10, 5.2))
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [c + (i - (len(series) - 1) / 2) * width for c in range(len(categories))]
        heights = [v if v is not None else 0 for v in values]
        bars = ax.bar(xs, heights, width, label=label)
        flags = invalid.get(label, [False] * len(values))
        for bar, v, bad in zip(bars, values, flags):
            text = "invalid" if bad else "n/a" if v is None else f"{v:.2f}"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    if spec["reference"] is not None:
        ax.axhline(spec["reference"], color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(categories, fontsize=8)
    ax.set_ylabel(spec["ylabel"])
    ax.set_title(spec["title"])
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, "\n".join(spec["caption"]), fontsize=7, va="bottom")
    fig.subplots_adjust(bottom=0.2)
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, f"{spec['name']}.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
