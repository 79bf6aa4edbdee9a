#pragma once
/* ABI of the XDP source allowlist (ebpf/xdp_allowlist.bpf.c), shared with the C++ owner
 * (proxy/bpf/xdp_allowlist.*). Pinned map names and key layouts are part of the user
 * interface (INTERFACE.md): operators edit allow_v4 / allow_v6 with bpftool. */
#include <linux/types.h>

#ifdef __cplusplus
#define XDP_ABI_ASSERT(expr, msg) static_assert(expr, msg)
#else
#define XDP_ABI_ASSERT(expr, msg) _Static_assert(expr, msg)
#endif

/* Pinned map names under bpf_pin_path. */
#define ALLOWLIST_MAP_V4 "allow_v4"
#define ALLOWLIST_MAP_V6 "allow_v6"

/* Capacity of each trie. Part of the pinned layout: changing it makes an existing pin
 * incompatible (libbpf reuses a pin only when type, sizes, max_entries and flags match). */
#define ALLOWLIST_MAX_ENTRIES 65536
#define ALLOWLIST_PORTS_MAX_ENTRIES 1024

/* LPM trie keys, exactly as INTERFACE.md states: the prefix length in host byte order, then
 * the address bytes in network order. Byte arrays make bpftool print and accept plain bytes. */
struct allow_v4_key {
  __u32 prefixlen;
  __u8 addr[4];
};
struct allow_v6_key {
  __u32 prefixlen;
  __u8 addr[16];
};
XDP_ABI_ASSERT(sizeof(struct allow_v4_key) == 8, "allow_v4 key layout is part of the interface");
XDP_ABI_ASSERT(sizeof(struct allow_v6_key) == 20, "allow_v6 key layout is part of the interface");

/* Trie values are a __u32 the program never reads: any entry allows. The daemon marks the
 * entries it seeded from the configuration's `allow` list with this value, so a reload can
 * remove its own entries without touching those an operator added (value 1 in the docs).
 * The bytes spell "SNIC" in little-endian order. */
#define ALLOWLIST_VALUE_FROM_CONFIG 0x43494e53u

enum allowlist_policy {
  ALLOWLIST_POLICY_OFF = 0,     /* pass everything without looking (the zeroed map's meaning) */
  ALLOWLIST_POLICY_MONITOR = 1, /* judge and count would_drop, never drop */
  ALLOWLIST_POLICY_ENFORCE = 2, /* drop denied packets */
};

/* The single entry (key 0) of the xdp_settings array; changed at run time by the daemon. */
struct allowlist_settings {
  __u32 policy; /* enum allowlist_policy */
};

/* Keys of the per-CPU xdp_verdicts array: exactly one per packet. */
enum allowlist_verdict {
  ALLOWLIST_VERDICT_PASS = 0,
  ALLOWLIST_VERDICT_DROP = 1,
  ALLOWLIST_VERDICT_WOULD_DROP = 2, /* monitor mode: denied, passed anyway */
  ALLOWLIST_VERDICT_COUNT
};

/* Keys of the per-CPU xdp_reasons array: exactly one per packet, saying why it got its
 * verdict. */
enum allowlist_reason {
  ALLOWLIST_REASON_POLICY_OFF = 0, /* policy off: not inspected */
  ALLOWLIST_REASON_NOT_IP = 1,     /* ARP, LLDP, ... */
  ALLOWLIST_REASON_NOT_TCP = 2,    /* ICMP, ICMPv6/NDP, UDP, ESP, no next header, ... */
  ALLOWLIST_REASON_OTHER_PORT = 3, /* TCP to a port that is not filtered (e.g. SSH) */
  ALLOWLIST_REASON_ALLOWED = 4,    /* TCP to a filtered port from an allowed source */
  ALLOWLIST_REASON_DENIED = 5,     /* TCP to a filtered port from any other source */
  ALLOWLIST_REASON_MALFORMED = 6,  /* truncated or inconsistent headers: passed to the stack */
  ALLOWLIST_REASON_FRAGMENT = 7,   /* non-first IP fragment: carries no TCP header */
  ALLOWLIST_REASON_UNSUPPORTED = 8, /* more than two VLAN tags, more IPv6 extension headers
                                       than the parser walks: passed */
  ALLOWLIST_REASON_COUNT
};

#undef XDP_ABI_ASSERT
