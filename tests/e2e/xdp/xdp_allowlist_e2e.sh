#!/usr/bin/env bash
# End-to-end test of the XDP allowlist on a veth pair between two network namespaces:
#   client ns (198.51.100.2 allowed, .3 denied; 2001:db8:51::2 allowed, ::3 denied)
#     <-- veth -->  server ns (198.51.100.1, 2001:db8:51::1; XDP on its veth)
# A filtered port (8443) and an unfiltered "SSH-like" port (2222) each have a TCP server.
# Checks: allowed sources connect; denied SYNs are dropped before the server sees them and
# the drop counter rises; `bpftool map update` on the pinned trie admits a source at once and
# `bpftool map delete` shuts it out again; the unfiltered port always passes.
# Usage: xdp_allowlist_e2e.sh XDP_ALLOWLIST_TOOL ALLOWLIST_KEY_SCRIPT XDP_ABI_HEADER [MODE]
#   MODE: native | generic | auto (default auto; the tool must report the mode asked for)
# Exits 77 (skipped) with a reason when root, namespaces, bpftool or python3 are missing.
set -euo pipefail

USAGE="usage: $0 XDP_ALLOWLIST_TOOL ALLOWLIST_KEY_SCRIPT XDP_ABI_HEADER [native|generic|auto]"
TOOL=${1:?$USAGE}
KEY_SCRIPT=${2:?$USAGE}
ABI_HEADER=${3:?$USAGE}
MODE=${4:-auto}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "--- $*"; }

[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, XDP, bpffs)"
for cmd in ip bpftool nsenter python3 timeout; do
  command -v "$cmd" >/dev/null || skip "$cmd not installed"
done

ID=$$
SRV=snxdp-srv-$ID
CLI=snxdp-cli-$ID
SRV_IF=xs$ID
CLI_IF=xc$ID
PIN=/sys/fs/bpf/snisplice-e2e-xdp-$ID
WORK=$(mktemp -d /tmp/snisplice-e2e-xdp.XXXXXX)
NET4=198.51.100
NET6=2001:db8:51
FILTERED=8443
UNFILTERED=2222
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
  rm -rf "$PIN" "$WORK"
}
trap cleanup EXIT

# RFC 5737 TEST-NET-2 must not be routed on this host already, or the result would mean
# nothing (and traffic might leave the namespaces).
# (grep without -q reads all its input: under pipefail, a quiet grep that exits at the first match
# can kill the command feeding it with SIGPIPE and fail the pipeline.)
if ip route show | grep "^$NET4\." >/dev/null || ip -6 route show | grep "^$NET6:" >/dev/null; then
  skip "$NET4.0/24 or $NET6::/48 is already routed on this host"
fi

in_srv() { nsenter --net="/run/netns/$SRV" "$@"; }
in_cli() { nsenter --net="/run/netns/$CLI" "$@"; }

ip netns add "$SRV" 2>/dev/null || skip "cannot create network namespaces"
ip netns add "$CLI"
ip link add "$SRV_IF" netns "$SRV" type veth peer name "$CLI_IF" netns "$CLI"
in_srv ip link set lo up
in_cli ip link set lo up
in_srv ip addr add "$NET4.1/24" dev "$SRV_IF"
in_srv ip addr add "$NET6::1/64" dev "$SRV_IF" nodad
in_cli ip addr add "$NET4.2/24" dev "$CLI_IF"
in_cli ip addr add "$NET4.3/24" dev "$CLI_IF"
in_cli ip addr add "$NET6::2/64" dev "$CLI_IF" nodad
in_cli ip addr add "$NET6::3/64" dev "$CLI_IF" nodad
in_srv ip link set "$SRV_IF" up
in_cli ip link set "$CLI_IF" up

for source in "$NET4.3" "$NET6::3"; do
  dest=$NET4.1; [[ $source == *:* ]] && dest=$NET6::1
  route=$(in_cli ip route get "$dest" from "$source")
  [[ $route == *"dev $CLI_IF"* ]] || fail "traffic to $dest would not leave through $CLI_IF: $route"
done

# TCP servers in the server namespace: answer "ok", log each peer address.
cat >"$WORK/server.py" <<'PY'
import socket, sys, threading, time
log_path, ready_path, ports = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]
lock = threading.Lock()
def serve(listener, port):
    while True:
        conn, peer = listener.accept()
        with lock, open(log_path, "a") as log:
            log.write(f"{port} {peer[0]}\n")
        try:
            conn.sendall(b"ok\n")
        finally:
            conn.close()
for port in ports:
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.bind(("::", port))
    listener.listen(16)
    threading.Thread(target=serve, args=(listener, port), daemon=True).start()
open(ready_path, "w").close()
time.sleep(600)  # bounded: the test kills it long before
PY
: >"$WORK/accepted.log"
# Started without the in_srv function, so that $! is the server itself (nsenter execs it),
# not a subshell the trap's kill would leave its child behind.
nsenter --net="/run/netns/$SRV" python3 "$WORK/server.py" "$WORK/accepted.log" "$WORK/server.ready" "$FILTERED" "$UNFILTERED" &
PIDS+=($!)

nsenter --net="/run/netns/$SRV" "$TOOL" --pin-path "$PIN" --interface "$SRV_IF" --mode "$MODE" --policy enforce \
  --port "$FILTERED" --allow "$NET4.2/32" --allow "$NET6::2/128" >"$WORK/tool.log" 2>&1 &
PIDS+=($!)

for _ in $(seq 50); do
  [[ -e $WORK/server.ready ]] && grep -q '^ready$' "$WORK/tool.log" && break
  sleep 0.1
done
[[ -e $WORK/server.ready ]] || fail "server did not start"
grep -q '^ready$' "$WORK/tool.log" || fail "XDP tool did not attach: $(cat "$WORK/tool.log")"
attached=$(grep '^attached' "$WORK/tool.log")
echo "$attached"
if [[ $MODE != auto && $attached != "attached $SRV_IF $MODE" ]]; then
  fail "asked for $MODE mode, got: $attached"
fi

# connect SOURCE DEST PORT: 0 when the server answered "ok" within 2 s.
connect() {
  in_cli timeout 5 python3 - "$@" <<'PY'
import socket, sys
source, dest, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    with socket.create_connection((dest, port), timeout=2, source_address=(source, 0)) as s:
        sys.exit(0 if s.recv(16) == b"ok\n" else 1)
except OSError:
    sys.exit(1)
PY
}
expect_connects() { connect "$@" || fail "$1 -> $2:$3 should connect"; }
expect_blocked() { if connect "$@"; then fail "$1 -> $2:$3 should be dropped"; fi; }

# counter MAP KEY: the per-CPU counter summed over CPUs.
counter() {
  bpftool -j map lookup pinned "$PIN/$1" key "$2" 0 0 0 |
    python3 -c '
import json, sys
values = json.load(sys.stdin)["values"]
print(sum(int.from_bytes(bytes(int(b, 16) for b in v["value"]), "little") for v in values))'
}
# Counter keys come from the ABI header's enums, never from numbers written here.
abi_value() {
  local value
  value=$(sed -n "s/^ *$1 = \([0-9]*\),.*/\1/p" "$ABI_HEADER")
  [[ -n $value ]] || fail "$1 not found in $ABI_HEADER"
  echo "$value"
}
DROP=$(abi_value ALLOWLIST_VERDICT_DROP)
DENIED=$(abi_value ALLOWLIST_REASON_DENIED)
OTHER_PORT=$(abi_value ALLOWLIST_REASON_OTHER_PORT)

seen() { grep -q "^$1 \(::ffff:\)\?$2\$" "$WORK/accepted.log"; }

for family in 4 6; do
  if [[ $family == 4 ]]; then
    allowed=$NET4.2; denied=$NET4.3; server=$NET4.1; cidr=$NET4.3/32
  else
    allowed=$NET6::2; denied=$NET6::3; server=$NET6::1; cidr=$NET6::3/128
  fi
  step "IPv$family: allowed source connects to the filtered port"
  expect_connects "$allowed" "$server" "$FILTERED"
  seen "$FILTERED" "$allowed" || fail "server did not log $allowed"

  step "IPv$family: denied source is dropped at XDP; counters rise; server never sees it"
  drops_before=$(counter xdp_verdicts $DROP)
  expect_blocked "$denied" "$server" "$FILTERED"
  drops_after=$(counter xdp_verdicts $DROP)
  (( drops_after > drops_before )) || fail "drop counter did not rise ($drops_before -> $drops_after)"
  (( $(counter xdp_reasons $DENIED) > 0 )) || fail "denied counter did not rise"
  if seen "$FILTERED" "$denied"; then fail "server accepted $denied"; fi

  step "IPv$family: the unfiltered port always passes"
  expect_connects "$denied" "$server" "$UNFILTERED"
  (( $(counter xdp_reasons $OTHER_PORT) > 0 )) || fail "other_port counter did not rise"

  step "IPv$family: bpftool map update admits the source at once"
  add=$("$KEY_SCRIPT" --pin-path "$PIN" "$cidr" | grep '^bpftool map update')
  echo "$add"
  eval "$add"
  expect_connects "$denied" "$server" "$FILTERED"
  seen "$FILTERED" "$denied" || fail "server did not log $denied after the update"

  step "IPv$family: bpftool map delete shuts it out again"
  del=$("$KEY_SCRIPT" --pin-path "$PIN" "$cidr" | grep '^bpftool map delete')
  echo "$del"
  eval "$del"
  drops_before=$(counter xdp_verdicts $DROP)
  expect_blocked "$denied" "$server" "$FILTERED"
  (( $(counter xdp_verdicts $DROP) > drops_before )) || fail "drop counter did not rise after delete"
  expect_connects "$denied" "$server" "$UNFILTERED"
done

step "bpftool map dump prints named key fields"
bpftool map dump pinned "$PIN/allow_v4" | grep '"prefixlen": 32' >/dev/null || fail "allow_v4 dump lacks named fields"

echo "PASS"
