#!/usr/bin/env bash
# The repository is the home of its own user-facing contract: conf/reference.yaml (the
# contract's snisplice.yaml) and docs/INTERFACE.md. Checked here, in the repository alone:
# the reference configuration passes `snisplice --check`; every metric docs/INTERFACE.md names
# is one the daemon declares (proxy/metrics/metrics.cpp); every metric it declares is in the
# metrics table of docs/operations.md (INTERFACE.md lists the stable ones, not all).
# With SNISPLICE_UPSTREAM_CONTRACT naming an upstream contract directory (snisplice.yaml,
# INTERFACE.md), the repository's copies must also match it; without it, that comparison is
# skipped and the test says so.
#   [SNISPLICE_UPSTREAM_CONTRACT=DIR] contract_copy_test.sh SOURCE_DIR SNISPLICE_BINARY
source "$(dirname "$0")/lib.sh" ops_contract_copy
src=$1
bin=$2
need_built "$bin"
status=0
failed() { echo "FAIL: $*"; status=1; }

for file in conf/reference.yaml docs/INTERFACE.md docs/operations.md proxy/metrics/metrics.cpp; do
  [[ -f $src/$file ]] || fail "$file is missing"
done

if ! out=$("$bin" -c "$src/conf/reference.yaml" --check 2>&1); then
  failed "conf/reference.yaml does not pass snisplice --check:"
  echo "$out"
fi

# Names only: the declaration is `counter(*registry_, "snisplice_...", ...)` (likewise gauge,
# histogram), the docs write them in backquotes.
declared=$(grep -oE '(counter|gauge|histogram)\(\*registry_, "snisplice_[a-z0-9_]+"' \
             "$src/proxy/metrics/metrics.cpp" | grep -oE 'snisplice_[a-z0-9_]+' | sort -u || true)
[[ -n $declared ]] || fail "no metric declarations found in proxy/metrics/metrics.cpp"
promised=$(grep -oE '`snisplice_[a-z0-9_]+' "$src/docs/INTERFACE.md" | tr -d '`' | sort -u || true)
[[ -n $promised ]] || failed "docs/INTERFACE.md names no metric"
documented=$(grep -oE '^\| `snisplice_[a-z0-9_]+`' "$src/docs/operations.md" | grep -oE 'snisplice_[a-z0-9_]+' | sort -u || true)
for name in $(comm -23 <(echo "$promised") <(echo "$declared")); do
  failed "docs/INTERFACE.md promises $name, which the daemon does not declare"
done
for name in $(comm -23 <(echo "$declared") <(echo "$documented")); do
  failed "the daemon declares $name, which the metrics table of docs/operations.md does not describe"
done

upstream=${SNISPLICE_UPSTREAM_CONTRACT:-}
if [[ -z $upstream ]]; then
  echo "$ops_test: skipped the comparison with the upstream contract (set SNISPLICE_UPSTREAM_CONTRACT to its directory)"
elif [[ ! -d $upstream ]]; then
  failed "SNISPLICE_UPSTREAM_CONTRACT=$upstream is not a directory"
else
  for pair in "snisplice.yaml:conf/reference.yaml" "INTERFACE.md:docs/INTERFACE.md"; do
    if ! diff -u "$upstream/${pair%%:*}" "$src/${pair#*:}"; then
      failed "${pair#*:} differs from the upstream contract's ${pair%%:*}: copy it over"
    fi
  done
fi
[[ $status == 0 ]] && echo "ok: the repository's contract holds ($(wc -w <<<"$declared") metrics)"
exit $status
