#pragma once
/* SYN cookies answered in XDP for ebpf/xdp_allowlist.bpf.c: a SYN gets a SYN-ACK whose sequence
 * number is a kernel SYN cookie (bpf_tcp_raw_gen_syncookie_*), sent back out of the receiving
 * interface; the client's ACK, which conntrack does not know yet, is checked
 * (bpf_tcp_raw_check_syncookie_*) and passed on to the netfilter SYNPROXY on the same port,
 * which opens the real connection to the listener. Without that SYNPROXY rule the kernel's
 * listener refuses the cookie (it only accepts cookies it recently sent itself):
 * docs/syn-flood.md states the requirement. BPF C only. */
#include <linux/in6.h>

#include "parse_l3.h"
#include "xdp_abi.h"

/* syn_rate: SYNs per port and one-second window, for SYNCOOKIE_AUTO. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __u16);
  __type(value, struct syn_window);
  __uint(max_entries, ALLOWLIST_PORTS_MAX_ENTRIES);
} syn_rate SEC(".maps");

/* Conntrack lookup from XDP (kernel kfuncs, net/netfilter/nf_conntrack_bpf.c). The options
 * struct is the kernel's struct bpf_ct_opts in its original 12-byte form, which the kfunc
 * accepts by size. */
/* Stands for the kernel's struct nf_conn, which the program never reads: libbpf matches a
 * kfunc's pointer arguments by kind (a struct), not by name or layout. */
struct syncookie_conn {
  int opaque;
};
struct syncookie_ct_opts {
  __s32 netns_id;
  __s32 error;
  __u8 l4proto;
  __u8 dir;
  __u8 reserved[2];
};
/* Weak: on a kernel without conntrack (nf_conntrack a module not loaded), the program still
 * loads, with the ACK check off (such a host cannot run the SYNPROXY the cookies need). */
extern struct syncookie_conn *bpf_xdp_ct_lookup(struct xdp_md *ctx, struct bpf_sock_tuple *tuple,
                                                __u32 tuple_size, struct syncookie_ct_opts *opts,
                                                __u32 opts_size) __ksym __weak;
extern void bpf_ct_release(struct syncookie_conn *ct) __ksym __weak;

#define SYNCOOKIE_TTL 64
#define SYNCOOKIE_TCP_LEN 24 /* 20-byte header + the MSS option */
#define SYNCOOKIE_MAX_TCP_LEN 60

/* Counts a SYN to `port` when `count` is set; 1 when this or the previous one-second window
 * saw more than `threshold` SYNs. Windows roll without a lock: a SYN that races the roll may
 * be counted in the old window, which a threshold can tolerate. */
static __always_inline int syn_flood_on_port(__u16 port, __u32 threshold, __u64 now, int count) {
  struct syn_window *window = bpf_map_lookup_elem(&syn_rate, &port);
  if (!window) {
    if (!count) return 0;
    struct syn_window fresh = {.start_ns = now, .syns = 1};
    bpf_map_update_elem(&syn_rate, &port, &fresh, BPF_NOEXIST);
    return threshold < 1;
  }
  const __u64 age = now - window->start_ns;
  if (now > window->start_ns && age >= SYN_WINDOW_NS) {
    window->previous_syns = age < 2 * SYN_WINDOW_NS ? window->syns : 0;
    window->syns = 0;
    window->start_ns = now;
  }
  __u64 syns = window->syns;
  if (count) syns = __sync_fetch_and_add(&window->syns, 1) + 1;
  return syns > threshold || window->previous_syns > threshold;
}

static __always_inline __u16 csum_fold(__s64 sum) {
  __u64 folded = (__u64)sum;
  folded = (folded & 0xffff) + (folded >> 16);
  folded = (folded & 0xffff) + (folded >> 16);
  folded = (folded & 0xffff) + (folded >> 16);
  return (__u16)~folded;
}

/* The SYN-ACK's TCP header (with its MSS option), checksum left zero. */
struct syncookie_tcp {
  struct tcphdr th;
  __u8 mss_kind;
  __u8 mss_len;
  __be16 mss;
};

static __always_inline void syncookie_tcp_fill(struct syncookie_tcp *out, const struct tcphdr *syn,
                                               __u32 cookie, __u16 mss) {
  out->th.source = syn->dest;
  out->th.dest = syn->source;
  out->th.seq = bpf_htonl(cookie);
  out->th.ack_seq = bpf_htonl(bpf_ntohl(syn->seq) + 1);
  out->th.doff = SYNCOOKIE_TCP_LEN / 4;
  out->th.syn = 1;
  out->th.ack = 1;
  /* RFC 7323 section 2.3: without window scaling the window field is taken as is. */
  out->th.window = bpf_htons(65535);
  out->mss_kind = 2; /* RFC 9293 section 3.2: MSS, length 4 */
  out->mss_len = 4;
  out->mss = bpf_htons(mss);
}

/* The end of syncookie_answer, alike for both families: the TCP checksum from the
 * pseudo-header's sum, the frame resized to the SYN-ACK, then its swapped Ethernet addresses
 * (12 bytes), its IP header (ip_len bytes at l3) and its TCP header (at l4) written. */
static __always_inline int syncookie_emit(struct xdp_md *ctx, __s64 old_len, __u32 new_len,
                                          __u8 *swapped, __u32 l3, void *ip, __u32 ip_len, __u32 l4,
                                          struct syncookie_tcp *reply, __s64 pseudo_sum) {
  reply->th.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)reply, sizeof *reply, pseudo_sum));
  if (bpf_xdp_adjust_tail(ctx, (int)((__s64)new_len - old_len))) return -1;
  if (bpf_xdp_store_bytes(ctx, 0, swapped, 12) || bpf_xdp_store_bytes(ctx, l3, ip, ip_len) ||
      bpf_xdp_store_bytes(ctx, l4, reply, sizeof *reply))
    return -1;
  return 0;
}

/* Rewrites the SYN in ctx into the SYN-ACK carrying a cookie, in place: swapped Ethernet
 * addresses (VLAN tags kept), a fresh bare IP header, the TCP header above. Returns 0 when the
 * frame is ready for XDP_TX, -1 when the SYN cannot be answered (it is then passed). The
 * SYN-ACK carries no timestamp, SACK or window scale option: the kernel cookie encodes only
 * the MSS, and the SYNPROXY that completes the handshake offers the client no more. */
static __always_inline int syncookie_answer(struct xdp_md *ctx,
                                            const struct parse_tcp_target *target) {
  if (!target->bare_ip) return -1;
  const __u32 l3 = target->l3_offset;
  const __u32 l4 = target->l4_offset;
  if (l3 > 64 || l4 > 128) return -1; /* bounds for the verifier; the parser's are smaller */

  struct tcphdr syn_tcp[3] = {}; /* 60 bytes: the longest TCP header */
  if (bpf_xdp_load_bytes(ctx, l4, syn_tcp, sizeof(struct tcphdr))) return -1;
  __u32 tcp_len = syn_tcp[0].doff * 4;
  if (tcp_len < sizeof(struct tcphdr) || tcp_len > SYNCOOKIE_MAX_TCP_LEN) return -1;
  if (bpf_xdp_load_bytes(ctx, l4, syn_tcp, tcp_len)) return -1;

  __u8 macs[12];
  if (bpf_xdp_load_bytes(ctx, 0, macs, sizeof macs)) return -1;
  __u8 swapped[12];
  __builtin_memcpy(swapped, macs + 6, 6);
  __builtin_memcpy(swapped + 6, macs, 6);

  struct syncookie_tcp reply = {};
  const __u32 new_len = l4 + SYNCOOKIE_TCP_LEN;
  const __s64 old_len = (__s64)(ctx->data_end - ctx->data);

  if (target->family == 4) {
    struct iphdr ip;
    if (bpf_xdp_load_bytes(ctx, l3, &ip, sizeof ip)) return -1;
    const __s64 cookie = bpf_tcp_raw_gen_syncookie_ipv4(&ip, syn_tcp, tcp_len);
    if (cookie < 0) return -1;
    syncookie_tcp_fill(&reply, syn_tcp, (__u32)cookie, (__u16)(cookie >> 32));

    struct iphdr out = {.version = 4, .ihl = 5, .ttl = SYNCOOKIE_TTL, .protocol = IPPROTO_TCP};
    out.tot_len = bpf_htons(sizeof out + SYNCOOKIE_TCP_LEN);
    out.frag_off = bpf_htons(0x4000); /* DF */
    out.saddr = ip.daddr;
    out.daddr = ip.saddr;
    out.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&out, sizeof out, 0));
    struct {
      __be32 saddr, daddr;
      __u8 zero, protocol;
      __be16 length;
    } pseudo = {out.saddr, out.daddr, 0, IPPROTO_TCP, bpf_htons(SYNCOOKIE_TCP_LEN)};
    const __s64 sum = bpf_csum_diff(0, 0, (__be32 *)&pseudo, sizeof pseudo, 0);
    return syncookie_emit(ctx, old_len, new_len, swapped, l3, &out, sizeof out, l4, &reply, sum);
  }

  struct ipv6hdr ip6;
  if (bpf_xdp_load_bytes(ctx, l3, &ip6, sizeof ip6)) return -1;
  const __s64 cookie = bpf_tcp_raw_gen_syncookie_ipv6(&ip6, syn_tcp, tcp_len);
  if (cookie < 0) return -1;
  syncookie_tcp_fill(&reply, syn_tcp, (__u32)cookie, (__u16)(cookie >> 32));

  struct ipv6hdr out = {.version = 6, .nexthdr = IPPROTO_TCP, .hop_limit = SYNCOOKIE_TTL};
  out.payload_len = bpf_htons(SYNCOOKIE_TCP_LEN);
  out.saddr = ip6.daddr;
  out.daddr = ip6.saddr;
  struct {
    struct in6_addr saddr, daddr;
    __be32 length;
    __u8 zero[3];
    __u8 next;
  } pseudo = {out.saddr, out.daddr, bpf_htonl(SYNCOOKIE_TCP_LEN), {}, IPPROTO_TCP};
  const __s64 sum = bpf_csum_diff(0, 0, (__be32 *)&pseudo, sizeof pseudo, 0);
  return syncookie_emit(ctx, old_len, new_len, swapped, l3, &out, sizeof out, l4, &reply, sum);
}

/* An ACK conntrack does not know: 1 when it completes a handshake whose SYN-ACK carried a
 * valid cookie, 0 when it does not, -1 when it is tracked (or cannot be judged): pass it. */
static __always_inline int syncookie_check_ack(struct xdp_md *ctx,
                                               const struct parse_tcp_target *target) {
  if (!target->bare_ip || !bpf_xdp_ct_lookup || !bpf_ct_release) return -1;
  const __u32 l3 = target->l3_offset;
  const __u32 l4 = target->l4_offset;
  if (l3 > 64 || l4 > 128) return -1;
  struct tcphdr tcp;
  if (bpf_xdp_load_bytes(ctx, l4, &tcp, sizeof tcp)) return -1;

  struct bpf_sock_tuple tuple = {};
  struct syncookie_ct_opts opts = {.netns_id = BPF_F_CURRENT_NETNS, .l4proto = IPPROTO_TCP};
  if (target->family == 4) {
    struct iphdr ip;
    if (bpf_xdp_load_bytes(ctx, l3, &ip, sizeof ip)) return -1;
    tuple.ipv4.saddr = ip.saddr;
    tuple.ipv4.daddr = ip.daddr;
    tuple.ipv4.sport = tcp.source;
    tuple.ipv4.dport = tcp.dest;
    struct syncookie_conn *ct =
        bpf_xdp_ct_lookup(ctx, &tuple, sizeof tuple.ipv4, &opts, sizeof opts);
    if (ct) {
      bpf_ct_release(ct);
      return -1;
    }
    return bpf_tcp_raw_check_syncookie_ipv4(&ip, &tcp) == 0;
  }
  struct ipv6hdr ip6;
  if (bpf_xdp_load_bytes(ctx, l3, &ip6, sizeof ip6)) return -1;
  __builtin_memcpy(tuple.ipv6.saddr, &ip6.saddr, 16);
  __builtin_memcpy(tuple.ipv6.daddr, &ip6.daddr, 16);
  tuple.ipv6.sport = tcp.source;
  tuple.ipv6.dport = tcp.dest;
  struct syncookie_conn *ct = bpf_xdp_ct_lookup(ctx, &tuple, sizeof tuple.ipv6, &opts, sizeof opts);
  if (ct) {
    bpf_ct_release(ct);
    return -1;
  }
  return bpf_tcp_raw_check_syncookie_ipv6(&ip6, &tcp) == 0;
}
