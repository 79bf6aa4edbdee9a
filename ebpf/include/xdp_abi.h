#pragma once
/* ABI of the XDP program (ebpf/xdp_allowlist.bpf.c: source allowlist, per-source SYN rate
 * limit, SYN cookies), shared with the C++ owner (proxy/bpf/xdp_allowlist.*). Pinned map names
 * and key layouts are part of the user interface (INTERFACE.md, docs/allowlist.md,
 * docs/syn-flood.md): operators edit allow_v4 / allow_v6 / rate_exempt_v4 / rate_exempt_v6
 * with bpftool and read rate_buckets. */
#include <linux/types.h>

#ifdef __cplusplus
#define XDP_ABI_ASSERT(expr, msg) static_assert(expr, msg)
#else
#define XDP_ABI_ASSERT(expr, msg) _Static_assert(expr, msg)
#endif

/* Pinned map names under bpf_pin_path. */
#define ALLOWLIST_MAP_V4 "allow_v4"
#define ALLOWLIST_MAP_V6 "allow_v6"
#define RATE_EXEMPT_MAP_V4 "rate_exempt_v4"
#define RATE_EXEMPT_MAP_V6 "rate_exempt_v6"

/* Capacity of each trie. Part of the pinned layout: changing it makes an existing pin
 * incompatible (libbpf reuses a pin only when type, sizes, max_entries and flags match). */
#define ALLOWLIST_MAX_ENTRIES 65536
#define ALLOWLIST_PORTS_MAX_ENTRIES 1024
/* Sources (prefixes) with a SYN bucket at once; the least recently seen are forgotten first,
 * which refills their bucket: a flood of many sources costs the limit precision, never a
 * legitimate client its connection. */
#define RATE_BUCKETS_MAX_ENTRIES 65536
/* rate_exempt_v4 / _v6 use the allow tries' key layout and capacity. */

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

enum rate_limit_mode {
  RATE_LIMIT_OFF = 0,
  RATE_LIMIT_MONITOR = 1, /* count would_rate_limit, pass */
  RATE_LIMIT_ENFORCE = 2, /* drop SYNs over the source's budget */
};

enum syncookie_mode {
  SYNCOOKIE_OFF = 0,
  SYNCOOKIE_AUTO = 1, /* answer SYNs with cookies while a port gets more than syn_threshold/s */
  SYNCOOKIE_ON = 2,   /* always answer SYNs with cookies */
};

/* The single entry (key 0) of the xdp_settings array; changed at run time by the daemon, so a
 * reload never reloads the program. */
struct allowlist_settings {
  __u32 policy;         /* enum allowlist_policy */
  __u32 rate_mode;      /* enum rate_limit_mode */
  __u64 rate_interval_ns; /* 1e9 / syn_per_second, at least 1: the time one token takes */
  __u64 rate_burst_ns;    /* burst * rate_interval_ns: the time a full bucket holds */
  __u8 rate_prefix_v4;    /* sources share a bucket per prefix of this length (1..32) */
  __u8 rate_prefix_v6;    /* (1..128) */
  __u8 padding[2];
  __u32 syncookie_mode;  /* enum syncookie_mode */
  __u32 syn_threshold;   /* SYN/s per port above which SYNCOOKIE_AUTO answers with cookies */
  /* Live events each CPU may put in the xdp_events ring per second (and at once: a second's
   * worth is the burst); 0: none. Was padding: a pinned map from before reads 0 until the
   * daemon sets it (at every start). */
  __u32 events_per_second;
};
XDP_ABI_ASSERT(sizeof(struct allowlist_settings) == 40, "xdp_settings value layout");

/* rate_buckets (LRU hash): one SYN budget per source prefix. The address is masked to the
 * configured prefix length (host bits zero). */
struct rate_bucket_key {
  __u8 family;    /* 4 or 6 */
  __u8 prefixlen; /* the mask applied */
  __u8 padding[2];
  __u8 addr[16]; /* network order; IPv4 uses the first 4 */
};
XDP_ABI_ASSERT(sizeof(struct rate_bucket_key) == 20, "rate_buckets key layout");

/* The bucket as one "theoretical arrival time" (GCRA, equivalent to a token bucket): a SYN at
 * time now conforms when max(tat_ns, now) + interval - now <= burst time, and then moves tat_ns
 * there. tat_ns <= now means a full bucket; (now + burst_ns - tat_ns) / interval_ns is the
 * number of tokens left. bpf_ktime_get_ns (CLOCK_MONOTONIC) nanoseconds. */
struct rate_bucket {
  __u64 tat_ns;
};

/* syn_rate (hash, key: the TCP port in host order): SYNs seen in the current one-second
 * window and in the previous one, for SYNCOOKIE_AUTO. */
struct syn_window {
  __u64 start_ns;
  __u64 syns;
  __u64 previous_syns;
};
#define SYN_WINDOW_NS 1000000000ull

/* Keys of the per-CPU xdp_verdicts array: exactly one per packet. */
enum allowlist_verdict {
  ALLOWLIST_VERDICT_PASS = 0,
  ALLOWLIST_VERDICT_DROP = 1,
  ALLOWLIST_VERDICT_WOULD_DROP = 2, /* monitor mode: denied, passed anyway */
  ALLOWLIST_VERDICT_RATE_LIMITED = 3,     /* a SYN over its source's budget, dropped */
  ALLOWLIST_VERDICT_WOULD_RATE_LIMIT = 4, /* the same in monitor mode, passed */
  ALLOWLIST_VERDICT_SYNCOOKIE_SENT = 5,   /* a SYN answered with a SYN-ACK cookie (XDP_TX) */
  ALLOWLIST_VERDICT_SYNCOOKIE_BAD = 6,    /* an untracked ACK whose cookie is invalid, dropped */
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
  ALLOWLIST_REASON_SYN_RATE = 9,     /* a SYN over its source's rate_limit budget */
  ALLOWLIST_REASON_SYN_FLOOD = 10,   /* a SYN answered with a cookie */
  ALLOWLIST_REASON_COOKIE_VALID = 11,   /* an untracked ACK with a valid cookie: passed on to
                                           the netfilter SYNPROXY */
  ALLOWLIST_REASON_COOKIE_INVALID = 12, /* an untracked ACK with an invalid cookie */
  ALLOWLIST_REASON_COUNT
};

/* Live events (docs/live-view.md): the program puts one record per sampled packet whose verdict
 * is drop, would_drop, rate_limited, would_rate_limit or syncookie_bad into the xdp_events ring
 * buffer (not pinned; read by proxy/bpf/xdp_event_reader.*). Passed packets and SYN-ACK cookies
 * sent are never recorded: under a flood, cookies would spend the budget the drops need. */
#define XDP_EVENTS_RING_BYTES (256 * 1024) /* ~6,500 records */
#define XDP_EVENTS_DEFAULT_PER_SECOND 1000 /* per CPU: allowlist_settings.events_per_second */

struct xdp_event {
  __u32 ifindex;    /* the receiving interface */
  __u16 port;       /* TCP destination port, host order */
  __u8 family;      /* 4 or 6 */
  __u8 verdict;     /* enum allowlist_verdict */
  __u8 reason;      /* enum allowlist_reason */
  __u8 padding[3];
  __u8 source[16];  /* network order; IPv4 uses the first 4 */
};
XDP_ABI_ASSERT(sizeof(struct xdp_event) == 28, "xdp_events record layout");

/* The single entry of the per-CPU xdp_event_budget array: the CPU's token bucket for records
 * (GCRA, as struct rate_bucket) and what it could not record. */
struct xdp_event_budget {
  __u64 tat_ns;
  __u64 sampled_out; /* over the budget: not recorded */
  __u64 ring_full;   /* within the budget, but the ring had no room (the reader is behind) */
};
XDP_ABI_ASSERT(sizeof(struct xdp_event_budget) == 24, "xdp_event_budget value layout");

#undef XDP_ABI_ASSERT
