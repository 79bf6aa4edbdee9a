"""A run's summary as markdown: one table per topology, values with their ratio to direct."""
from .results import caption


def _num(value, spec):
    return "n/a" if value is None else format(value, spec)


def _cell(s, base, key, spec, is_direct, added=False):
    value = s.get(key)
    if is_direct or value is None or not base.get(key):
        return _num(value, spec)
    if added:
        return f"{_num(value, spec)} ({_num(value - base[key], '+' + spec)})"
    return f"{_num(value, spec)} ({value / base[key]:.2f}x)"


def topology_table(name, topo, args):
    summary = topo["summary"]
    base = summary.get("direct", {})
    lines = [f"### {name}: {topo.get('topology', {}).get('description', '')}", ""]
    lines.append("| path | bulk up Gbit/s | bulk down Gbit/s | p50 RTT us (added) | p99 RTT us (added) "
                 "| connections/s | CPU s/GB attributed | CPU s/GB system-wide "
                 f"| CPU s/GB at {args['paced_mbit']} Mbit/s, attributed | failed runs |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for path, s in summary.items():
        d = path == "direct"
        lines.append(
            f"| {path} | {_cell(s, base, 'up_gbit', '.2f', d)} | {_cell(s, base, 'down_gbit', '.2f', d)} "
            f"| {_cell(s, base, 'p50_us', '.1f', d, added=True)} | {_cell(s, base, 'p99_us', '.1f', d, added=True)} "
            f"| {_cell(s, base, 'conn_per_s', '.0f', d)} | {_cell(s, base, 'own_cpu_s_per_gb', '.3f', d)} "
            f"| {_cell(s, base, 'cpu_s_per_gb', '.3f', d)} | {_cell(s, base, 'paced_own_cpu_s_per_gb', '.3f', d)} "
            f"| {s.get('failures', 0)} |")
    lines.append("")
    for path, s in summary.items():
        dp = s.get("data_path")
        if dp:
            lines.append(f"- {path}: bulk runs {dp['bulk_runs_in_kernel']} spliced in the kernel, "
                         f"{dp['bulk_runs_relayed']} relayed in userspace, {dp['budget_aborted_runs']} budget-aborted"
                         + (f", {dp['held_share']:.0%} of their bytes held by a pause and moved by the proxy"
                            if dp.get("held_share") is not None else "")
                         + (" (only in-kernel runs count in its bulk columns)" if path == "snisplice sockmap" else ""))
    interfaces = topo.get("interfaces")
    if interfaces:
        moved = ", ".join(f"{dev} rx {c['rx_bytes'] / 1e9:.2f} GB" for dev, c in sorted(interfaces.items()))
        lines.append(f"- bytes received by the veth ends over the run: {moved}")
    forced = {name: how for name, how in topo.get("stopped", {}).items() if how != "SIGTERM"}
    if forced:
        lines.append("- not ended by the SIGTERM at the end: " + ", ".join(f"{name} ({how})" for name, how in forced.items()))
    lines.append("")
    return "\n".join(lines)


def markdown(data):
    args = data["meta"]["args"]
    head = (f"Run {caption(data)}. Rounds: {args['rounds']}, {args['seconds']:g} s per measurement, bulk "
            f"connections per direction: {args['connections']}, reconnect concurrency: "
            f"{args['reconnect_concurrency']}; medians over rounds; cells read value (ratio to direct; "
            f"added over direct for latency). CPU s/GB: CPU over both bulk runs of a round divided by the GB "
            f"received, least of the rounds; attributed = this run's processes, the load client and kernel "
            f"threads; system-wide = /proc/stat.\n")
    return head + "\n" + "\n".join(topology_table(name, topo, args) for name, topo in data["topologies"].items())
