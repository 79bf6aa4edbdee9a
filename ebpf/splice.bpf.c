// SPDX-License-Identifier: GPL-2.0
/* In-kernel splice: bytes received on a spliced socket leave through its peer's egress.
 * Attached to splice_peers as BPF_SK_SKB_STREAM_VERDICT by proxy/bpf/splice_engine.cpp.
 * Layout and meaning of the maps: include/splice_abi.h. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "splice_abi.h"

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, SPLICE_DEFAULT_MAX_SOCKETS);
  __type(key, __u64);
  __type(value, __u64);
} splice_peers SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SPLICE_DEFAULT_MAX_SOCKETS);
  __type(key, __u64);
  __type(value, struct splice_sock_stats);
} splice_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SPLICE_DEFAULT_MAX_SOCKETS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u64);
  __type(value, struct splice_control);
} splice_control SEC(".maps");

/* libbpf 1.1 does not know "sk_skb/verdict"; userspace attaches with bpf_prog_attach. */
SEC("sk_skb/stream_verdict")
int splice_verdict(struct __sk_buff *skb)
{
  __u64 self = bpf_get_socket_cookie(skb);
  struct splice_sock_stats *stats = bpf_map_lookup_elem(&splice_stats, &self);
  __u32 len = skb->len;

  /* A pure FIN arrives as a zero-length skb; redirecting it sets EPIPE on the peer. */
  if (len == 0) {
    if (stats)
      stats->fin_seen = 1;
    return SK_DROP;
  }
  /* Once userspace owns this direction, keep it: redirecting now would overtake the bytes
   * waiting to be read. */
  if (stats && stats->passed_bytes) {
    __sync_fetch_and_add(&stats->passed_bytes, len);
    return SK_PASS;
  }
  /* Held back by userspace, or held bytes still on their way to the peer through userspace:
   * redirecting now would overtake them. One lookup gives one consistent value. */
  struct splice_control *control = bpf_map_lookup_elem(&splice_control, &self);
  if (stats && control && (control->hold || stats->held_bytes != control->relayed_bytes)) {
    __sync_fetch_and_add(&stats->held_bytes, len);
    return SK_PASS;
  }
  if (bpf_sk_redirect_hash(skb, &splice_peers, &self, 0) == SK_PASS) {
    if (stats) {
      __sync_fetch_and_add(&stats->redirected_bytes, len);
      __sync_fetch_and_add(&stats->redirected_skbs, 1);
    }
    return SK_PASS;
  }
  /* No peer: SK_DROP would discard bytes TCP has already acknowledged. Leave them to
   * userspace. */
  if (stats)
    __sync_fetch_and_add(&stats->passed_bytes, len);
  return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
