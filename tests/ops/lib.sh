# The ops test scripts' shared prologue, sourced first: strict mode, the test's name for its
# skip lines, and the checks that skip (exit 77, ctest's SKIP_RETURN_CODE) with a printed reason.
#   source "$(dirname "$0")/lib.sh" TEST_NAME
set -euo pipefail
ops_test=$1

skip() { echo "$ops_test: skipped: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
need_tools() { # tool...
  local tool
  for tool; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/setup-deps installs it)"
  done
}
need_python_yaml() { python3 -c 'import yaml' 2>/dev/null || skip "python3-yaml is not installed"; }
need_built() { [[ -x $1 ]] || skip "$1 is not built"; }
