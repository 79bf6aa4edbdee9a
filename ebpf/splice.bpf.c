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

/* The kernel's sk_buff, for the TCP sequence number in its control block (CO-RE). */
struct sk_buff___splice {
  char cb[48];
} __attribute__((preserve_access_index));
extern void *bpf_cast_to_kern_ctx(void *ctx) __ksym;

static __always_inline __u32 tcp_seq_of(struct __sk_buff *skb)
{
  const struct sk_buff___splice *k = bpf_cast_to_kern_ctx(skb);
  /* Byte loads: the verifier allows them anywhere in the char array. */
  return (__u32)(unsigned char)k->cb[0] | (__u32)(unsigned char)k->cb[1] << 8 |
         (__u32)(unsigned char)k->cb[2] << 16 | (__u32)(unsigned char)k->cb[3] << 24;
}

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
  /* Bytes at the head of this skb that an earlier verdict already took: the kernel handed a
   * held skb over again with more segments behind it (its first copy is readable already). */
  __u32 repeat = 0;
  if (stats) {
    const __u32 seq = tcp_seq_of(skb);
    const __u32 data_end = seq + len;
    const __u32 next = stats->next_seq;
    if (next && (int)(seq - next) < 0)
      repeat = (int)(data_end - next) > 0 ? next - seq : len;
    if (!next || (int)(data_end - next) > 0)
      stats->next_seq = data_end;
  }
  /* Once userspace owns this direction, keep it: redirecting now would overtake the bytes
   * waiting to be read. A repeat here cannot be cut out of what the relay reads. */
  if (stats && stats->passed_bytes) {
    if (repeat)
      __sync_fetch_and_add(&stats->unplaced_repeats, 1);
    __sync_fetch_and_add(&stats->passed_bytes, len);
    return SK_PASS;
  }
  /* Held back by userspace, or held bytes still on their way to the peer through userspace:
   * redirecting now would overtake them. */
  struct splice_control *control = bpf_map_lookup_elem(&splice_control, &self);
  __u64 relayed = 0;
  __u32 hold = 0;
  if (control) {
    bpf_spin_lock(&control->lock);
    relayed = control->relayed_bytes;
    hold = control->hold;
    bpf_spin_unlock(&control->lock);
  }
  if (stats && (repeat || hold || stats->held_bytes != relayed)) {
    if (repeat) {
      /* The slot first (its number before its contents), then the count, then held_bytes:
       * a reader that sees a count or a held total sees the slots behind it. */
      const __u32 number = stats->repeats + 1;
      struct splice_repeat *slot = &stats->repeat[(number - 1) % SPLICE_REPEAT_SLOTS];
      slot->number = number;
      asm volatile("" ::: "memory");
      slot->at = stats->held_bytes;
      slot->len = repeat;
      __sync_fetch_and_add(&stats->repeated_bytes, repeat);
      __sync_fetch_and_add(&stats->repeats, 1);
    }
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
