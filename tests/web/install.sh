#!/usr/bin/env bash
# Installs playwright-core (the driver alone: it downloads no browser; the test drives Debian's
# Chromium) into NODE_DIR with `npm ci` from the committed lock file, once per lock file.
# Exits 77 (ctest: skipped) with the reason when npm cannot install.
# usage: install.sh NODE_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
node_dir=$1
if ! command -v npm >/dev/null 2>&1; then
  echo "skipped: npm is not installed"; exit 77
fi
mkdir -p "$node_dir"
cp "$here"/{package.json,package-lock.json} "$node_dir/"
if ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.package-lock.json.installed" 2>/dev/null; then
  if ! (cd "$node_dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
    echo "skipped: npm ci failed (is the npm registry reachable?):"; cat "$node_dir/npm.log"; exit 77
  fi
  cp "$node_dir/package-lock.json" "$node_dir/node_modules/.package-lock.json.installed"
fi
