#pragma once
/* Bounded packet parsing for XDP: Ethernet with up to two VLAN tags, IPv4 with options,
 * IPv6 with its common extension headers. Every read is checked against data_end; every
 * loop has a fixed bound. BPF C only. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xdp_abi.h"

#define PARSE_MAX_VLAN_TAGS 2     /* 802.1Q, or 802.1ad + 802.1Q (QinQ) */
#define PARSE_MAX_IPV6_EXT_HEADERS 6

struct parse_vlan_hdr {
  __be16 tci;
  __be16 encapsulated_proto;
};

/* RFC 8200 section 4.5. */
struct parse_ipv6_frag_hdr {
  __u8 nexthdr;
  __u8 reserved;
  __be16 frag_off; /* offset in 8-byte units << 3, then 2 reserved bits and M */
  __be32 identification;
};

/* What the allowlist, the rate limit and the SYN cookies need from a TCP packet. */
struct parse_tcp_target {
  __u16 dest_port; /* host order */
  int family;      /* AF_INET-like marker: 4 or 6 */
  __u8 source[16]; /* network order; IPv4 uses the first 4 */
  __u8 tcp_flags;  /* byte 13 of the TCP header: CWR ECE URG ACK PSH RST SYN FIN */
  /* The IP header is the bare fixed one (IPv4 IHL 5, IPv6 with no extension header): only
   * such packets are answered with a rebuilt SYN-ACK. */
  __u8 bare_ip;
  __u16 l3_offset; /* bytes from the frame start to the IP header */
  __u16 l4_offset; /* ... to the TCP header */
};

#define PARSE_TCP_FIN 0x01
#define PARSE_TCP_SYN 0x02
#define PARSE_TCP_RST 0x04
#define PARSE_TCP_ACK 0x10

/* On success returns -1 and fills *out; otherwise returns the allowlist_reason explaining
 * why this packet is not a TCP packet the allowlist can judge. */
#define PARSE_TCP_FOUND (-1)

static __always_inline int parse_tcp_header(void *start, void *pos, void *end,
                                            struct parse_tcp_target *out) {
  struct tcphdr *tcp = pos;
  if ((void *)(tcp + 1) > end) return ALLOWLIST_REASON_MALFORMED;
  if (tcp->doff < 5) return ALLOWLIST_REASON_MALFORMED;
  out->dest_port = bpf_ntohs(tcp->dest);
  out->tcp_flags = ((__u8 *)tcp)[13];
  out->l4_offset = (__u16)(pos - start);
  return PARSE_TCP_FOUND;
}

static __always_inline int parse_ipv4(void *start, void *pos, void *end,
                                      struct parse_tcp_target *out) {
  struct iphdr *ip = pos;
  if ((void *)(ip + 1) > end) return ALLOWLIST_REASON_MALFORMED;
  if (ip->version != 4 || ip->ihl < 5) return ALLOWLIST_REASON_MALFORMED;
  __u32 header_len = ip->ihl * 4;
  if (bpf_ntohs(ip->tot_len) < header_len) return ALLOWLIST_REASON_MALFORMED;
  /* RFC 791: the offset is in the low 13 bits; a non-zero offset means no TCP header here. */
  if (ip->frag_off & bpf_htons(0x1fff)) return ALLOWLIST_REASON_FRAGMENT;
  if (ip->protocol != IPPROTO_TCP) return ALLOWLIST_REASON_NOT_TCP;
  out->family = 4;
  __builtin_memcpy(out->source, &ip->saddr, 4);
  out->bare_ip = header_len == sizeof(struct iphdr);
  out->l3_offset = (__u16)(pos - start);
  return parse_tcp_header(start, pos + header_len, end, out);
}

static __always_inline int parse_ipv6(void *start, void *pos, void *end,
                                      struct parse_tcp_target *out) {
  struct ipv6hdr *ip6 = pos;
  if ((void *)(ip6 + 1) > end) return ALLOWLIST_REASON_MALFORMED;
  if (ip6->version != 6) return ALLOWLIST_REASON_MALFORMED;
  out->family = 6;
  __builtin_memcpy(out->source, &ip6->saddr, 16);
  out->bare_ip = ip6->nexthdr == IPPROTO_TCP;
  out->l3_offset = (__u16)(pos - start);
  __u8 next = ip6->nexthdr;
  pos = ip6 + 1;
#pragma unroll
  for (int i = 0; i < PARSE_MAX_IPV6_EXT_HEADERS; i++) {
    switch (next) {
      case IPPROTO_TCP:
        return parse_tcp_header(start, pos, end, out);
      case IPPROTO_HOPOPTS:
      case IPPROTO_ROUTING:
      case IPPROTO_DSTOPTS: {
        /* RFC 8200 section 4.3-4.6: length in 8-octet units, not counting the first 8. */
        struct ipv6_opt_hdr *opt = pos;
        if ((void *)(opt + 1) > end) return ALLOWLIST_REASON_MALFORMED;
        next = opt->nexthdr;
        pos += (opt->hdrlen + 1) * 8;
        break;
      }
      case IPPROTO_AH: {
        /* RFC 4302 section 2.2: length in 4-octet units, minus 2. */
        struct ipv6_opt_hdr *ah = pos;
        if ((void *)(ah + 1) > end) return ALLOWLIST_REASON_MALFORMED;
        next = ah->nexthdr;
        pos += (ah->hdrlen + 2) * 4;
        break;
      }
      case IPPROTO_FRAGMENT: {
        struct parse_ipv6_frag_hdr *frag = pos;
        if ((void *)(frag + 1) > end) return ALLOWLIST_REASON_MALFORMED;
        if (frag->frag_off & bpf_htons(0xfff8)) return ALLOWLIST_REASON_FRAGMENT;
        next = frag->nexthdr;
        pos = frag + 1;
        break;
      }
      default:
        /* ICMPv6 (NDP), UDP, ESP, no next header, anything unknown. */
        return ALLOWLIST_REASON_NOT_TCP;
    }
  }
  return ALLOWLIST_REASON_UNSUPPORTED;
}

/* Walks Ethernet, VLAN tags and the IP header chain of the frame in ctx. */
static __always_inline int parse_frame(struct xdp_md *ctx, struct parse_tcp_target *out) {
  void *start = (void *)(long)ctx->data;
  void *pos = start;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = pos;
  if ((void *)(eth + 1) > end) return ALLOWLIST_REASON_MALFORMED;
  __be16 proto = eth->h_proto;
  pos = eth + 1;
#pragma unroll
  for (int i = 0; i < PARSE_MAX_VLAN_TAGS; i++) {
    if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD)) break;
    struct parse_vlan_hdr *vlan = pos;
    if ((void *)(vlan + 1) > end) return ALLOWLIST_REASON_MALFORMED;
    proto = vlan->encapsulated_proto;
    pos = vlan + 1;
  }
  if (proto == bpf_htons(ETH_P_IP)) return parse_ipv4(start, pos, end, out);
  if (proto == bpf_htons(ETH_P_IPV6)) return parse_ipv6(start, pos, end, out);
  if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
    return ALLOWLIST_REASON_UNSUPPORTED;
  return ALLOWLIST_REASON_NOT_IP;
}
