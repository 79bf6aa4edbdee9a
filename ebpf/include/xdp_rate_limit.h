#pragma once
/* Per-source SYN rate limit for ebpf/xdp_allowlist.bpf.c: one token bucket per source prefix
 * in a shared LRU hash, sources in the rate_exempt tries never limited. BPF C only. */
#include "parse_l3.h"
#include "xdp_abi.h"
#include "xdp_prefix_trie.h"

/* Sources the rate limit never limits (docs/syn-flood.md). */
XDP_PREFIX_TRIE(rate_exempt_v4, struct allow_v4_key);
XDP_PREFIX_TRIE(rate_exempt_v6, struct allow_v6_key);

/* Why one shared LRU hash with a compare-and-swap, and not a per-CPU map: a per-CPU bucket
 * gives each CPU a whole budget, so a source whose SYNs the NIC spreads over N queues (every
 * new source port hashes anew) would get N times its limit. The bucket is a single u64
 * (GCRA's theoretical arrival time, see struct rate_bucket), so an update is one cmpxchg and
 * needs no lock (bpf_spin_lock is not allowed in LRU maps anyway). A CPU that loses the race
 * re-reads and retries; one that loses every retry is competing with other CPUs admitting SYNs
 * from the same source at that very moment, and treats its SYN as over the limit. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __type(key, struct rate_bucket_key);
  __type(value, struct rate_bucket);
  __uint(max_entries, RATE_BUCKETS_MAX_ENTRIES);
} rate_buckets SEC(".maps");

#define RATE_CAS_ATTEMPTS 4

static __always_inline int rate_exempt(const struct parse_tcp_target *target) {
  if (target->family == 4) {
    struct allow_v4_key key = {.prefixlen = 32};
    __builtin_memcpy(key.addr, target->source, 4);
    return bpf_map_lookup_elem(&rate_exempt_v4, &key) != 0;
  }
  struct allow_v6_key key = {.prefixlen = 128};
  __builtin_memcpy(key.addr, target->source, 16);
  return bpf_map_lookup_elem(&rate_exempt_v6, &key) != 0;
}

/* The source address with every bit past `prefixlen` cleared. */
static __always_inline void rate_key(const struct parse_tcp_target *target, __u32 prefixlen,
                                     struct rate_bucket_key *key) {
  const __u32 bytes = target->family == 4 ? 4 : 16;
  key->family = (__u8)target->family;
  key->prefixlen = (__u8)prefixlen;
#pragma unroll
  for (__u32 i = 0; i < 16; i++) {
    __u8 mask = 0;
    if (i < bytes && i * 8 < prefixlen)
      mask = prefixlen >= i * 8 + 8 ? 0xff : (__u8)(0xff << (8 - (prefixlen - i * 8)));
    key->addr[i] = target->source[i] & mask;
  }
}

/* 1: the SYN conforms (a token was taken); 0: over the limit (nothing taken). */
static __always_inline int rate_take_token(const struct parse_tcp_target *target,
                                           const struct allowlist_settings *settings, __u64 now) {
  struct rate_bucket_key key = {};
  rate_key(target, target->family == 4 ? settings->rate_prefix_v4 : settings->rate_prefix_v6,
           &key);
  const __u64 interval = settings->rate_interval_ns ? settings->rate_interval_ns : 1;
  struct rate_bucket *bucket = bpf_map_lookup_elem(&rate_buckets, &key);
  if (!bucket) {
    /* A new source starts with a full bucket, less this SYN's token. */
    struct rate_bucket fresh = {.tat_ns = now + interval};
    if (bpf_map_update_elem(&rate_buckets, &key, &fresh, BPF_NOEXIST) == 0) return 1;
    bucket = bpf_map_lookup_elem(&rate_buckets, &key); /* another CPU created it first */
    if (!bucket) return 1;
  }
#pragma unroll
  for (int attempt = 0; attempt < RATE_CAS_ATTEMPTS; attempt++) {
    const __u64 seen = *(volatile __u64 *)&bucket->tat_ns;
    const __u64 next = (seen > now ? seen : now) + interval;
    if (next - now > settings->rate_burst_ns) return 0;
    if (__sync_val_compare_and_swap(&bucket->tat_ns, seen, next) == seen) return 1;
  }
  return 0;
}
