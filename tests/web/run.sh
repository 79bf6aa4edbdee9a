#!/usr/bin/env bash
# ctest entry: installs playwright-core, then runs status_page_test.mjs against the real binary.
# usage: run.sh NODE_DIR  (SNISPLICE_BIN, SNISPLICE_LOAD in the environment)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
node_dir=$1
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "skipped: $tool is not installed"; exit 77; }
done
[ -x /usr/bin/chromium ] || { echo "skipped: Debian's chromium is not installed (apt-get install chromium)"; exit 77; }
"$here/install.sh" "$node_dir"
NODE_DIR=$node_dir exec timeout 300 node "$here/status_page_test.mjs"
