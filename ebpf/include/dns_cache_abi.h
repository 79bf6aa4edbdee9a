#pragma once
/* ABI of the pinned DNS answer cache (ebpf/dns_cache.bpf.c), shared with the C++ owner
 * (proxy/bpf/dns_cache_map.*). The map is an LRU hash named "dns_cache" under bpf_pin_path;
 * bpftool prints its entries with field names thanks to BTF. */
#include <linux/types.h>

#ifdef __cplusplus
#define DNS_CACHE_ABI_ASSERT(expr, msg) static_assert(expr, msg)
#else
#define DNS_CACHE_ABI_ASSERT(expr, msg) _Static_assert(expr, msg)
#endif

#define DNS_CACHE_MAP_NAME "dns_cache"
#define DNS_CACHE_NAME_SIZE 256 /* a DNS name is at most 253 characters: the key always ends in 0 */
#define DNS_CACHE_MAX_ADDRESSES 8

/* The lower-case host name without a trailing dot, zero-filled, so equal names hash equally. */
struct dns_cache_key {
  char name[DNS_CACHE_NAME_SIZE];
};

/* An enum (4 bytes) rather than a byte so bpftool prints the family by name. */
enum dns_cache_family {
  DNS_CACHE_EMPTY = 0,
  DNS_CACHE_IPV4 = 4,
  DNS_CACHE_IPV6 = 6,
};

struct dns_cache_address {
  enum dns_cache_family family;
  __u8 addr[16];  /* network order; IPv4 uses the first 4 bytes, the rest is zero */
};

#define DNS_CACHE_FLAG_NEGATIVE 1u /* the name does not resolve (NXDOMAIN / no addresses) */

struct dns_cache_value {
  /* CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns in BPF): shared by every process of
   * one boot, never stepped by NTP, and a pin cannot outlive the boot it was made in. */
  __u64 expires_boot_ns;
  __u64 sequence; /* increases with every store, across daemon restarts */
  __u32 flags;    /* DNS_CACHE_FLAG_* */
  __u32 count;    /* addresses in use, at most DNS_CACHE_MAX_ADDRESSES */
  struct dns_cache_address addresses[DNS_CACHE_MAX_ADDRESSES];
};
DNS_CACHE_ABI_ASSERT(sizeof(struct dns_cache_key) == 256, "dns_cache key layout");
DNS_CACHE_ABI_ASSERT(sizeof(struct dns_cache_address) == 20, "dns_cache address layout");
DNS_CACHE_ABI_ASSERT(sizeof(struct dns_cache_value) == 24 + 8 * 20, "dns_cache value layout");

#undef DNS_CACHE_ABI_ASSERT
