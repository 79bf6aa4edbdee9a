#pragma once
/* The source-prefix tries of ebpf/xdp_allowlist.bpf.c (allow_v4/v6, rate_exempt_v4/v6), all
 * of one layout: an LPM trie keyed by struct allow_v4_key or allow_v6_key with an unused __u32
 * value. Their layout is part of the pinned interface (docs/INTERFACE.md). BPF C only. */
#include "xdp_abi.h"

/* BPF_F_NO_PREALLOC is required for LPM tries. */
#define XDP_PREFIX_TRIE(name, key_type)              \
  struct {                                           \
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);             \
    __type(key, key_type);                           \
    __type(value, __u32);                            \
    __uint(max_entries, ALLOWLIST_MAX_ENTRIES);      \
    __uint(map_flags, BPF_F_NO_PREALLOC);            \
  } name SEC(".maps")
