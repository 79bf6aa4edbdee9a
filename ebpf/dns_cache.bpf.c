// SPDX-License-Identifier: GPL-2.0
/* The DNS answer cache: only a map, no program. Built as a skeleton so the C++ owner
 * (proxy/bpf/dns_cache_map.*) creates it with BTF (bpftool prints names and addresses) and
 * pins it. A shared LRU (no BPF_F_NO_COMMON_LRU): one cache for every CPU; spin locks are not
 * allowed in LRU maps, so there is one writer per name at a time and readers check the TTL. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "dns_cache_abi.h"

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __type(key, struct dns_cache_key);
  __type(value, struct dns_cache_value);
  __uint(max_entries, 65536); /* replaced by the config's dns.cache_size before load */
} dns_cache SEC(".maps");

char LICENSE[] SEC("license") = "GPL";
