#!/usr/bin/env bash
# The systemd unit, sysusers and tmpfiles snippets: systemd-analyze verify (with the man pages
# the unit's Documentation= names), an offline security score that stays at "OK" or better,
# and sysusers + tmpfiles applied to a scratch root.
# usage: unit_test.sh SOURCE_DIR SNISPLICE_BINARY
source "$(dirname "$0")/lib.sh" ops_unit
source_dir=$1 binary=$2
need_tools systemd-analyze systemd-sysusers systemd-tmpfiles man
need_built "$binary"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# verify checks that ExecStart's binary exists: point it at the build output.
sed "s#/usr/sbin/snisplice#$binary#g" "$source_dir/systemd/snisplice.service" >"$work/snisplice.service"
mkdir -p "$work/man/man8" "$work/man/man5"
cp "$source_dir/docs/man/snisplice.8" "$work/man/man8/"
cp "$source_dir/docs/man/snisplice.yaml.5" "$work/man/man5/"
if ! out=$(cd "$work" && MANPATH="$work/man" systemd-analyze verify ./snisplice.service 2>&1) || [[ -n $out ]]; then
  echo "FAIL: systemd-analyze verify:"; echo "$out"; exit 1
fi
echo "ok: systemd-analyze verify is clean"

score=$(cd "$work" && systemd-analyze security --offline=true ./snisplice.service 2>&1 |
  sed -n 's/.*Overall exposure level for snisplice.service: \([0-9.]*\).*/\1/p')
[[ -n $score ]] || fail "no exposure score from systemd-analyze security"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score > 2.0"
echo "ok: exposure level $score"

# Exactly the capabilities the daemon needs, bounded and ambient alike.
want="CAP_BPF CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_PERFMON"
for key in CapabilityBoundingSet AmbientCapabilities; do
  got=$(sed -n "s/^$key=//p" "$source_dir/systemd/snisplice.service")
  [[ $got == "$want" ]] || fail "$key=$got, want $want"
done
echo "ok: capabilities are $want"

root="$work/root"
mkdir -p "$root/etc" "$root/sys/fs/bpf"
systemd-sysusers --root="$root" "$source_dir/systemd/snisplice.sysusers" >/dev/null
grep -q '^snisplice:x:[0-9]*:[0-9]*:.*:/nonexistent:/usr/sbin/nologin$' "$root/etc/passwd" ||
  { echo "FAIL: sysusers did not create the snisplice system user"; cat "$root/etc/passwd"; exit 1; }
uid=$(awk -F: '$1 == "snisplice" { print $3 }' "$root/etc/passwd")
(( uid < 1000 )) || fail "snisplice uid $uid is not a system uid"
echo "ok: sysusers creates system user snisplice ($uid)"

systemd-tmpfiles --root="$root" --create "$source_dir/systemd/snisplice.tmpfiles"
gid=$(awk -F: '$1 == "snisplice" { print $3 }' "$root/etc/group")
got=$(stat -c '%a %u %g' "$root/sys/fs/bpf/snisplice")
[[ $got == "700 $uid $gid" ]] || fail "pin dir is '$got', want '700 $uid $gid'"
got=$(stat -c '%a' "$root/sys/fs/bpf")
[[ $got == "1711" ]] || fail "/sys/fs/bpf mode is $got, want 1711"
echo "ok: tmpfiles creates the pin directory 0700 snisplice and opens /sys/fs/bpf for traversal"
