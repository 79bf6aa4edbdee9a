#!/usr/bin/env bash
# Installs the manifest validator (validate_manifests.mjs and its npm packages, `npm ci` from the
# committed lock file) into NODE_DIR, once per lock file. ops_kubernetes and ops_helm share
# NODE_DIR under a ctest RESOURCE_LOCK. Exits 77 (ctest: skipped) when npm cannot install.
# usage: install_validator.sh SOURCE_DIR NODE_DIR TEST_NAME
set -euo pipefail
source_dir=$1 node_dir=$2 test_name=$3
mkdir -p "$node_dir"
cp "$source_dir"/tests/ops/node/{package.json,package-lock.json,validate_manifests.mjs} "$node_dir/"
if ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.package-lock.json.installed" 2>/dev/null; then
  if ! (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
    echo "$test_name: skipped: npm ci failed (is the npm registry reachable?):"; cat "$node_dir/npm.log"; exit 77
  fi
  cp "$node_dir/package-lock.json" "$node_dir/node_modules/.package-lock.json.installed"
fi
