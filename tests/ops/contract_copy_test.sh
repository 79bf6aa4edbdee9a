#!/usr/bin/env bash
# The repository keeps its own copy of the user-facing contract (conf/reference.yaml,
# docs/INTERFACE.md). Where the upstream contract sits beside the clone (../shared/contract, as in
# the project's CI), the copies must match it; a lone clone has nothing to compare, and skips.
#   contract_copy_test.sh SOURCE_DIR
source "$(dirname "$0")/lib.sh" ops_contract_copy
src=$1
upstream=$src/../shared/contract
[ -d "$upstream" ] || skip "no upstream contract at $upstream to compare the repository's copies with"
status=0
for pair in "snisplice.yaml:conf/reference.yaml" "INTERFACE.md:docs/INTERFACE.md"; do
  if ! diff -u "$upstream/${pair%%:*}" "$src/${pair#*:}"; then
    echo "FAIL: ${pair#*:} differs from the contract's ${pair%%:*}: copy it over"
    status=1
  fi
done
[ $status = 0 ] && echo "ok: conf/reference.yaml and docs/INTERFACE.md match the contract"
exit $status
