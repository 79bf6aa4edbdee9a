// SPDX-License-Identifier: GPL-2.0
/* XDP source allowlist: drops TCP packets to the proxy's filtered ports whose source is in
 * neither LPM trie. Everything else passes (ARP, ICMP, NDP, other ports so SSH can never be
 * locked out, non-first fragments, anything it cannot parse). Operators edit the tries live
 * with bpftool; see docs/allowlist.md. */
#include "parse_l3.h"
#include "xdp_abi.h"

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __type(key, struct allow_v4_key);
  __type(value, __u32);
  __uint(max_entries, ALLOWLIST_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
} allow_v4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __type(key, struct allow_v6_key);
  __type(value, __u32);
  __uint(max_entries, ALLOWLIST_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} allow_v6 SEC(".maps");

/* Filtered TCP destination ports, host order; the value is unused. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __u16);
  __type(value, __u8);
  __uint(max_entries, ALLOWLIST_PORTS_MAX_ENTRIES);
} xdp_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, struct allowlist_settings);
  __uint(max_entries, 1);
} xdp_settings SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32); /* enum allowlist_verdict */
  __type(value, __u64);
  __uint(max_entries, ALLOWLIST_VERDICT_COUNT);
} xdp_verdicts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32); /* enum allowlist_reason */
  __type(value, __u64);
  __uint(max_entries, ALLOWLIST_REASON_COUNT);
} xdp_reasons SEC(".maps");

static __always_inline int finish(enum allowlist_verdict verdict, int reason) {
  __u32 key = verdict;
  __u64 *count = bpf_map_lookup_elem(&xdp_verdicts, &key);
  if (count) *count += 1;
  key = reason;
  count = bpf_map_lookup_elem(&xdp_reasons, &key);
  if (count) *count += 1;
  return verdict == ALLOWLIST_VERDICT_DROP ? XDP_DROP : XDP_PASS;
}

static __always_inline int source_allowed(const struct parse_tcp_target *target) {
  if (target->family == 4) {
    struct allow_v4_key key = {.prefixlen = 32};
    __builtin_memcpy(key.addr, target->source, 4);
    return bpf_map_lookup_elem(&allow_v4, &key) != 0;
  }
  struct allow_v6_key key = {.prefixlen = 128};
  __builtin_memcpy(key.addr, target->source, 16);
  return bpf_map_lookup_elem(&allow_v6, &key) != 0;
}

SEC("xdp")
int xdp_allowlist_filter(struct xdp_md *ctx) {
  __u32 zero = 0;
  struct allowlist_settings *settings = bpf_map_lookup_elem(&xdp_settings, &zero);
  __u32 policy = settings ? settings->policy : ALLOWLIST_POLICY_OFF;
  if (policy != ALLOWLIST_POLICY_MONITOR && policy != ALLOWLIST_POLICY_ENFORCE)
    return finish(ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_POLICY_OFF);

  struct parse_tcp_target target = {};
  int reason = parse_frame(ctx, &target);
  if (reason != PARSE_TCP_FOUND) return finish(ALLOWLIST_VERDICT_PASS, reason);

  if (!bpf_map_lookup_elem(&xdp_ports, &target.dest_port))
    return finish(ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_OTHER_PORT);
  if (source_allowed(&target)) return finish(ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_ALLOWED);
  return finish(policy == ALLOWLIST_POLICY_ENFORCE ? ALLOWLIST_VERDICT_DROP
                                                   : ALLOWLIST_VERDICT_WOULD_DROP,
                ALLOWLIST_REASON_DENIED);
}

char LICENSE[] SEC("license") = "GPL";
