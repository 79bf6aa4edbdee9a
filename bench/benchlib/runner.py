"""One topology's part of a run: start the backend and every proxy in their hosts, check that each
path routes the hello, then measure every workload through every path in interleaved rounds."""
import json
import os
import shutil
import sys
import tempfile

from . import peers, topology as topologies, workloads


def start_paths(topo, procs, paths, snisplice, load, workdir):
    """Starts the backend and the proxies of `paths`; returns path -> (target, metrics address)."""
    backend = f"{topo.backend_host}:{peers.BACKEND_PORT}"
    with topo.inside("backend"):
        proc = procs.start("backend", [load, "serve", "--listen", backend, "--max-seconds", "3600",
                                       "--max-connections", "4000"])
        peers.wait_listening(backend, proc, "load backend")
    targets = {}
    commands = peers.peer_commands(workdir)
    with topo.inside("proxy"):
        for name in paths:
            port, metrics_port = peers.PATHS[name]
            listen = f"{topo.proxy_host}:{port}"
            metrics = f"127.0.0.1:{metrics_port}" if metrics_port else None
            if name == "direct":
                targets[name] = (backend, None)
                continue
            if name in peers.SNISPLICE_MODES:
                mode = peers.SNISPLICE_MODES[name]
                conf = os.path.join(workdir, f"snisplice-{mode}.yaml")
                text = peers.snisplice_config(listen, metrics, mode, backend)
                argv = [snisplice, "-c", conf]
            else:
                file_name, writer, make_argv = commands[name]
                conf = os.path.join(workdir, file_name)
                text = writer(listen, backend, workdir)
                argv = make_argv(conf)
            with open(conf, "w") as f:
                f.write(text)
            proc = procs.start(name.replace(" ", "-"), argv)
            peers.wait_listening(listen, proc, name)
            if metrics:
                peers.wait_listening(metrics, proc, f"{name}'s metrics")
            targets[name] = (listen, metrics)
    return targets


def check_paths(topo, load, targets):
    """Every path must route the hello to the backend before anything is measured."""
    with topo.inside("client"):
        for name, (address, _) in targets.items():
            check = workloads.run_load(load, ["pingpong", "--target", address, "--sni", peers.SNI,
                                              "--seconds", "2", "--count", "5"])
            if "failed" in check or check.get("exchanges", 0) < 1:
                sys.exit(f"{name} does not pass traffic in the {topo.name} topology: {check}")


def run_topology(name, args, paths, chosen_workloads):
    """Sets up the topology, measures, tears everything down (also on failure); the raw samples."""
    topo = topologies.make(name)
    workdir = tempfile.mkdtemp(prefix=f"snisplice-bench-{name}-")
    procs = peers.Processes(workdir)
    wargs = workloads.arguments(args.seconds, args.connections, args.paced_mbit, args.reconnect_concurrency)
    raw = {path: {w: [] for w in chosen_workloads} for path in paths}
    try:
        topo.setup()
        targets = start_paths(topo, procs, paths, args.snisplice, args.load, workdir)
        check_paths(topo, args.load, targets)
        interfaces_start = topo.interface_bytes()
        for rnd in range(args.rounds):
            for workload in chosen_workloads:
                for path, (target, metrics) in targets.items():
                    before = topo.interface_bytes()
                    result = workloads.measure(topo, args.load, wargs[workload], target, metrics, procs.sessions())
                    result["round"] = rnd
                    if before:
                        result["interfaces"] = topologies.interface_delta(before, topo.interface_bytes())
                    raw[path][workload].append(result)
                    note = f" FAILED: {result['failed']}" if "failed" in result else ""
                    shown = {k: v for k, v in result.items() if k not in ("mode", "failed", "interfaces")}
                    print(f"# {name} round {rnd + 1}/{args.rounds} {workload:10} {path:20} {json.dumps(shown)}{note}",
                          file=sys.stderr, flush=True)
        interfaces = topologies.interface_delta(interfaces_start, topo.interface_bytes()) if interfaces_start else None
    finally:
        stopped = procs.stop_all()
        topo.close()
        if args.keep_workdir:
            print(f"# {name}: logs and configs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return {"topology": topo.describe(), "raw": raw, "interfaces": interfaces, "stopped": stopped}
