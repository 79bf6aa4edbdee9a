#!/usr/bin/env bash
# The Kubernetes manifests in deploy/kubernetes, offline: every object against the API
# schemas of the npm package kubernetes-models (installed with `npm ci` from the committed
# lock file into the build dir), unknown fields refused; the ConfigMap's configuration
# passes `snisplice --check`; the DaemonSet's capabilities match the systemd unit's and its
# probes and scrape annotation use the port metrics.listen binds; the kustomization builds with
# the real kubectl (installed beside the validator, tests/ops/node/install_tools.sh).
# usage: kubernetes_test.sh SOURCE_DIR SNISPLICE_BINARY WORK_DIR
source "$(dirname "$0")/lib.sh" ops_kubernetes
source_dir=$1 binary=$2 work_dir=$3
need_tools node npm python3
need_python_yaml
need_built "$binary"
manifests=$source_dir/deploy/kubernetes

node_dir=$work_dir/ops-node
"$source_dir/tests/ops/node/install_tools.sh" "$source_dir" "$node_dir" ops_kubernetes
node "$node_dir/validate_manifests.mjs" "$manifests"
echo "ok: manifests match the Kubernetes API schemas"

config=$(mktemp --suffix=.yaml); trap 'rm -f "$config"' EXIT
python3 - "$manifests" "$source_dir/systemd/snisplice.service" "$config" <<'PY'
import re, sys, yaml
manifests, unit, config_out = sys.argv[1:]
configmap = yaml.safe_load(open(f"{manifests}/configmap.yaml"))
daemonset = yaml.safe_load(open(f"{manifests}/daemonset.yaml"))
text = configmap["data"]["snisplice.yaml"]
open(config_out, "w").write(text)
config = yaml.safe_load(text)
pod = daemonset["spec"]["template"]
problems = []
metrics_port = int(config["metrics"]["listen"].rsplit(":", 1)[1])
daemon = next(c for c in pod["spec"]["containers"] if c["name"] == "snisplice")
for probe in ("readinessProbe", "livenessProbe"):
    get = daemon[probe]["httpGet"]
    if get["port"] != metrics_port or get["path"] != "/metrics":
        problems.append(f"{probe} {get} does not hit GET /metrics on {metrics_port}")
if pod["metadata"]["annotations"].get("prometheus.io/port") != str(metrics_port):
    problems.append("prometheus.io/port annotation differs from metrics.listen")
unit_caps = re.search(r"^CapabilityBoundingSet=(.*)$", open(unit).read(), re.M).group(1).split()
pod_caps = ["CAP_" + c for c in daemon["securityContext"]["capabilities"]["add"]]
if sorted(unit_caps) != sorted(pod_caps) or daemon["securityContext"]["capabilities"]["drop"] != ["ALL"]:
    problems.append(f"container capabilities {pod_caps} differ from the unit's {unit_caps} (or not all dropped)")
mounts = {m["name"]: m["mountPath"] for m in daemon["volumeMounts"]}
volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
if mounts.get("bpffs") != "/sys/fs/bpf" or volumes["bpffs"]["hostPath"]["path"] != "/sys/fs/bpf":
    problems.append("the host's /sys/fs/bpf is not mounted at /sys/fs/bpf")
if config.get("bpf_pin_path", "/sys/fs/bpf/snisplice").rsplit("/", 1)[0] != "/sys/fs/bpf":
    problems.append("bpf_pin_path is not on the mounted bpffs")
if not pod["spec"].get("hostNetwork") or not pod["spec"].get("shareProcessNamespace"):
    problems.append("the pod needs hostNetwork and shareProcessNamespace (the reloader signals snisplice)")
for p in problems:
    print(f"FAIL: {p}")
sys.exit(1 if problems else 0)
PY
echo "ok: probes, scrape port, capabilities and mounts agree with the config and the unit"
"$binary" -c "$config" --check
echo "ok: the ConfigMap's configuration passes --check"

"$node_dir/bin/kubectl" kustomize "$manifests" >/dev/null
echo "ok: kubectl kustomize builds deploy/kubernetes"
