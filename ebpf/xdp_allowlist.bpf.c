// SPDX-License-Identifier: GPL-2.0
/* XDP front line for the proxy's filtered TCP ports, in this order:
 *  1. source allowlist: drops packets whose source is in neither LPM trie;
 *  2. per-source SYN rate limit (xdp_rate_limit.h): drops SYNs over a source's budget;
 *  3. SYN cookies (xdp_syncookie.h): under a flood, answers SYNs itself and drops ACKs whose
 *     cookie is invalid.
 * Everything else passes (ARP, ICMP, NDP, other ports so SSH can never be locked out,
 * non-first fragments, anything it cannot parse). Dropped (and would-be dropped) packets are
 * sampled into the xdp_events ring for the live view. Operators edit the tries live with
 * bpftool; see docs/allowlist.md, docs/syn-flood.md and docs/live-view.md. */
#include "parse_l3.h"
#include "xdp_abi.h"
#include "xdp_prefix_trie.h"
#include "xdp_rate_limit.h"
#include "xdp_syncookie.h"

/* Sources allowed through (docs/allowlist.md). */
XDP_PREFIX_TRIE(allow_v4, struct allow_v4_key);
XDP_PREFIX_TRIE(allow_v6, struct allow_v6_key);

/* Filtered TCP destination ports, host order; the value is unused. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __u16);
  __type(value, __u8);
  __uint(max_entries, ALLOWLIST_PORTS_MAX_ENTRIES);
} xdp_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, struct allowlist_settings);
  __uint(max_entries, 1);
} xdp_settings SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32); /* enum allowlist_verdict */
  __type(value, __u64);
  __uint(max_entries, ALLOWLIST_VERDICT_COUNT);
} xdp_verdicts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32); /* enum allowlist_reason */
  __type(value, __u64);
  __uint(max_entries, ALLOWLIST_REASON_COUNT);
} xdp_reasons SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, XDP_EVENTS_RING_BYTES);
} xdp_events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, struct xdp_event_budget);
  __uint(max_entries, 1);
} xdp_event_budget SEC(".maps");

/* Records a judged packet in xdp_events when this CPU's budget allows. Per CPU, so that it
 * needs no atomics: N CPUs may record N times events_per_second together. Only reached for
 * the verdicts that are recorded, never on the pass path. */
static __always_inline void record_event(struct xdp_md *ctx,
                                         const struct allowlist_settings *settings,
                                         const struct parse_tcp_target *target,
                                         enum allowlist_verdict verdict, int reason) {
  __u32 zero = 0;
  struct xdp_event_budget *budget = bpf_map_lookup_elem(&xdp_event_budget, &zero);
  if (!budget) return;
  const __u32 per_second = settings->events_per_second;
  if (!per_second) {
    budget->sampled_out += 1;
    return;
  }
  const __u64 interval = 1000000000ull / per_second;
  /* The coarse clock (a tick's resolution) is plenty for a budget of records a second and
   * costs a fraction of bpf_ktime_get_ns, which matters under a flood of drops. */
  const __u64 now = bpf_ktime_get_coarse_ns();
  const __u64 next = (budget->tat_ns > now ? budget->tat_ns : now) + interval;
  if (next - now > interval * per_second) {
    budget->sampled_out += 1;
    return;
  }
  budget->tat_ns = next;
  struct xdp_event *event = bpf_ringbuf_reserve(&xdp_events, sizeof(*event), 0);
  if (!event) {
    budget->ring_full += 1;
    return;
  }
  event->ifindex = ctx->ingress_ifindex;
  event->port = target->dest_port;
  event->family = (__u8)target->family;
  event->verdict = (__u8)verdict;
  event->reason = (__u8)reason;
  __builtin_memset(event->padding, 0, sizeof(event->padding));
  __builtin_memcpy(event->source, target->source, sizeof(event->source));
  bpf_ringbuf_submit(event, 0);
}

static __always_inline int finish(enum allowlist_verdict verdict, int reason) {
  __u32 key = verdict;
  __u64 *count = bpf_map_lookup_elem(&xdp_verdicts, &key);
  if (count) *count += 1;
  key = reason;
  count = bpf_map_lookup_elem(&xdp_reasons, &key);
  if (count) *count += 1;
  switch (verdict) {
    case ALLOWLIST_VERDICT_DROP:
    case ALLOWLIST_VERDICT_RATE_LIMITED:
    case ALLOWLIST_VERDICT_SYNCOOKIE_BAD:
      return XDP_DROP;
    case ALLOWLIST_VERDICT_SYNCOOKIE_SENT:
      return XDP_TX;
    default:
      return XDP_PASS;
  }
}

/* finish() for a packet judged on its source: records the verdicts that are not a pass. */
static __always_inline int finish_judged(struct xdp_md *ctx,
                                         const struct allowlist_settings *settings,
                                         const struct parse_tcp_target *target,
                                         enum allowlist_verdict verdict, int reason) {
  if (verdict != ALLOWLIST_VERDICT_PASS && verdict != ALLOWLIST_VERDICT_SYNCOOKIE_SENT)
    record_event(ctx, settings, target, verdict, reason);
  return finish(verdict, reason);
}

static __always_inline int source_allowed(const struct parse_tcp_target *target) {
  if (target->family == 4) {
    struct allow_v4_key key = {.prefixlen = 32};
    __builtin_memcpy(key.addr, target->source, 4);
    return bpf_map_lookup_elem(&allow_v4, &key) != 0;
  }
  struct allow_v6_key key = {.prefixlen = 128};
  __builtin_memcpy(key.addr, target->source, 16);
  return bpf_map_lookup_elem(&allow_v6, &key) != 0;
}

static __always_inline int judging(__u32 mode_value, __u32 monitor, __u32 enforce) {
  return mode_value == monitor || mode_value == enforce;
}

SEC("xdp")
int xdp_allowlist_filter(struct xdp_md *ctx) {
  __u32 zero = 0;
  struct allowlist_settings *settings = bpf_map_lookup_elem(&xdp_settings, &zero);
  if (!settings) return finish(ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_POLICY_OFF);
  const __u32 policy = settings->policy;
  const int allowlist_on = judging(policy, ALLOWLIST_POLICY_MONITOR, ALLOWLIST_POLICY_ENFORCE);
  const int rate_on = judging(settings->rate_mode, RATE_LIMIT_MONITOR, RATE_LIMIT_ENFORCE);
  const __u32 cookies = settings->syncookie_mode;
  const int cookies_on = cookies == SYNCOOKIE_AUTO || cookies == SYNCOOKIE_ON;
  if (!allowlist_on && !rate_on && !cookies_on)
    return finish(ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_POLICY_OFF);

  struct parse_tcp_target target = {};
  int reason = parse_frame(ctx, &target);
  if (reason != PARSE_TCP_FOUND) return finish(ALLOWLIST_VERDICT_PASS, reason);

  if (!bpf_map_lookup_elem(&xdp_ports, &target.dest_port))
    return finish(ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_OTHER_PORT);
  /* What a packet that passes every stage is counted as: the allowlist's judgement. */
  reason = ALLOWLIST_REASON_POLICY_OFF;
  if (allowlist_on) {
    if (!source_allowed(&target))
      return finish_judged(ctx, settings, &target,
                           policy == ALLOWLIST_POLICY_ENFORCE ? ALLOWLIST_VERDICT_DROP
                                                              : ALLOWLIST_VERDICT_WOULD_DROP,
                           ALLOWLIST_REASON_DENIED);
    reason = ALLOWLIST_REASON_ALLOWED;
  }

  const __u8 flags = target.tcp_flags;
  const __u64 now = bpf_ktime_get_ns();
  if ((flags & (PARSE_TCP_SYN | PARSE_TCP_ACK)) == PARSE_TCP_SYN) {
    const int flood = cookies == SYNCOOKIE_ON ||
                      (cookies == SYNCOOKIE_AUTO &&
                       syn_flood_on_port(target.dest_port, settings->syn_threshold, now, 1));
    if (rate_on && !rate_exempt(&target) && !rate_take_token(&target, settings, now))
      return finish_judged(ctx, settings, &target,
                           settings->rate_mode == RATE_LIMIT_ENFORCE
                               ? ALLOWLIST_VERDICT_RATE_LIMITED
                               : ALLOWLIST_VERDICT_WOULD_RATE_LIMIT,
                           ALLOWLIST_REASON_SYN_RATE);
    if (flood && syncookie_answer(ctx, &target) == 0)
      return finish(ALLOWLIST_VERDICT_SYNCOOKIE_SENT, ALLOWLIST_REASON_SYN_FLOOD);
    return finish(ALLOWLIST_VERDICT_PASS, reason);
  }
  /* The ACK that completes a handshake: judged only while cookies are being sent, so that a
   * host without conntrack on this port (see docs/syn-flood.md) keeps its connections until
   * a flood begins. */
  if ((flags & (PARSE_TCP_SYN | PARSE_TCP_RST | PARSE_TCP_FIN | PARSE_TCP_ACK)) == PARSE_TCP_ACK &&
      (cookies == SYNCOOKIE_ON ||
       (cookies == SYNCOOKIE_AUTO &&
        syn_flood_on_port(target.dest_port, settings->syn_threshold, now, 0)))) {
    const int valid = syncookie_check_ack(ctx, &target);
    if (valid == 1) return finish(ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_COOKIE_VALID);
    if (valid == 0)
      return finish_judged(ctx, settings, &target, ALLOWLIST_VERDICT_SYNCOOKIE_BAD,
                           ALLOWLIST_REASON_COOKIE_INVALID);
  }
  return finish(ALLOWLIST_VERDICT_PASS, reason);
}

char LICENSE[] SEC("license") = "GPL";
