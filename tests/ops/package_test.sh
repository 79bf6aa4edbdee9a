#!/usr/bin/env bash
# The Debian package: cpack builds it from the build dir, lintian finds no error or warning,
# its contents and control data are what Debian and systemd expect, and unpacked into a
# scratch root its binary accepts its own default configuration (`--check`) and its unit
# verifies against its own man pages.
# usage: package_test.sh SOURCE_DIR BUILD_DIR
source "$(dirname "$0")/lib.sh" ops_package
source_dir=$1 build_dir=$2
need_tools cpack dpkg-deb dpkg-shlibdeps systemd-analyze man
[[ -f $build_dir/CPackConfig.cmake ]] ||
  skip "$build_dir has no CPackConfig.cmake (include(Packaging) missing from CMakeLists.txt)"
cmake --build "$build_dir" --target snisplice >/dev/null
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

cpack --config "$build_dir/CPackConfig.cmake" -G DEB -B "$work/out" >"$work/cpack.log" 2>&1 ||
  { echo "FAIL: cpack"; cat "$work/cpack.log"; exit 1; }
debs=("$work"/out/snisplice_*.deb)
[[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || { echo "FAIL: no single snisplice_*.deb"; ls "$work/out"; exit 1; }
deb=${debs[0]}
echo "ok: built $(basename "$deb")"

expected="./etc/snisplice/snisplice.yaml
./lib/systemd/system/snisplice.service
./usr/lib/sysusers.d/snisplice.conf
./usr/lib/tmpfiles.d/snisplice.conf
./usr/sbin/snisplice
./usr/share/doc/snisplice/allowlist.md
./usr/share/doc/snisplice/changelog.Debian.gz
./usr/share/doc/snisplice/configuration.md
./usr/share/doc/snisplice/copyright
./usr/share/doc/snisplice/operations.md
./usr/share/lintian/overrides/snisplice
./usr/share/man/man5/snisplice.yaml.5.gz
./usr/share/man/man8/snisplice.8.gz"
got=$(dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -v '/$' | sort)
[[ $got == "$expected" ]] || { echo "FAIL: package files differ:"; diff <(echo "$expected") <(echo "$got"); exit 1; }
echo "ok: files are where Debian and systemd look for them"

[[ $(dpkg-deb --info "$deb" conffiles) == /etc/snisplice/snisplice.yaml ]] ||
  fail "/etc/snisplice/snisplice.yaml is not a conffile"
depends=$(dpkg-deb --field "$deb" Depends)
for lib in libc6 liburing2 libsystemd0; do
  [[ $depends == *"$lib"* ]] || fail "Depends lacks $lib (shlibdeps): $depends"
done
echo "ok: conffile and shlibdeps Depends: $depends"

root="$work/root"
dpkg-deb -x "$deb" "$root"
"$root/usr/sbin/snisplice" --version >/dev/null || fail "installed binary --version"
"$root/usr/sbin/snisplice" -c "$root/etc/snisplice/snisplice.yaml" --check ||
  fail "the installed binary refuses the installed default configuration"
echo "ok: installed binary accepts the installed configuration"

sed -e "s#/usr/sbin/snisplice#$root/usr/sbin/snisplice#g" -e "s#/etc/snisplice/#$root/etc/snisplice/#g" \
  "$root/lib/systemd/system/snisplice.service" >"$work/snisplice.service"
if ! out=$(cd "$work" && MANPATH="$root/usr/share/man" systemd-analyze verify ./snisplice.service 2>&1) || [[ -n $out ]]; then
  echo "FAIL: systemd-analyze verify of the installed unit:"; echo "$out"; exit 1
fi
for page in man8/snisplice.8.gz man5/snisplice.yaml.5.gz; do
  warnings=$(MANWIDTH=80 man --warnings -l "$root/usr/share/man/$page" 2>&1 >/dev/null)
  [[ -z $warnings ]] || { echo "FAIL: groff warnings in $page:"; echo "$warnings"; exit 1; }
done
echo "ok: installed unit verifies with the installed man pages; pages render without warnings"

command -v lintian >/dev/null || skip "lintian is not installed (apt-get install lintian); everything else passed"
if ! lintian --fail-on error,warning --info "$deb" >"$work/lintian.log" 2>&1; then
  echo "FAIL: lintian:"; cat "$work/lintian.log"; exit 1
fi
echo "ok: lintian finds no error or warning"
