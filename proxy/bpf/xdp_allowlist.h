#pragma once
// Owner of the XDP program (ebpf/xdp_allowlist.bpf.c: source allowlist, per-source SYN rate
// limit, SYN cookies): loads it with its maps pinned
// under bpf_pin_path (an existing pinned allowlist is reused, so operator entries survive
// restarts), attaches it to interfaces through bpf_links (detached on destruction; the pinned
// maps stay), and keeps the config-owned part of the allowlist in step with the config.
//
// For the daemon (docs/allowlist.md has the operator side):
//  start:  when xdp.interfaces is non-empty, before dropping privileges,
//            auto xdp = XdpAllowlist::open(cfg.bpf_pin_path, cfg.xdp.interfaces, cfg.xdp.mode);
//            xdp->set_ports(filtered_ports(cfg)); xdp->sync_allow(cfg.xdp.allow);
//            xdp->set_policy(cfg.xdp.policy);   log xdp->attachments() (mode per interface)
//            xdp->set_rate_limit(cfg.xdp.rate_limit); xdp->set_syncookie(cfg.xdp.syncookie);
//  reload: the same calls on the existing object (set_interfaces instead of open); an
//          error is logged and the previous state stays in force where the call failed.
//  metrics: counters() on each scrape -> snisplice_xdp_packets_total{verdict=verdict_label(v)}.
//  events: XdpEventReader (xdp_event_reader.h) on event_ring_fd() while attached;
//          counters() -> snisplice_events_dropped_total{reason="sampled_out"|"ring_full"}.
//  exit:   destroy it: every interface is detached; the pinned maps (and operator entries)
//          stay for the next start.
// Not thread-safe: one owner (the daemon's control thread) calls it.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "base/error.h"
#include "base/net_address.h"
#include "base/unique_fd.h"
#include "config/config.h"
#include "xdp_abi.h"

struct xdp_allowlist;  // the generated skeleton (xdp_allowlist.skel.h)

namespace snisplice::bpf {

enum class XdpAttachMode { native, generic };
const char* to_string(XdpAttachMode mode);

struct XdpAttachment {
  std::string interface;
  unsigned ifindex = 0;
  XdpAttachMode mode = XdpAttachMode::native;
};

// Sums over every possible CPU, indexed by the ABI enums.
struct XdpCounters {
  std::array<uint64_t, ALLOWLIST_VERDICT_COUNT> verdicts{};
  std::array<uint64_t, ALLOWLIST_REASON_COUNT> reasons{};
  uint64_t events_sampled_out = 0;  // judged packets over the live-event budget
  uint64_t events_ring_full = 0;    // within it, but the xdp_events ring was full
  uint64_t verdict(allowlist_verdict v) const { return verdicts.at(v); }
  uint64_t reason(allowlist_reason r) const { return reasons.at(r); }
};

// What sync_allow changed.
struct AllowSync {
  unsigned added = 0;          // config entries inserted
  unsigned removed = 0;        // config-owned entries no longer in the config, deleted
  unsigned operator_kept = 0;  // config entries already present as operator entries: left as is
};

// The TCP ports the allowlist judges for `config`: xdp.ports, or when it is empty every port
// a listener listens on (the contract's "empty: every listener port"), sorted, unique.
std::vector<uint16_t> filtered_ports(const config::Config& config);

// The xdp_settings interval for a rate of `syn_per_second` tokens a second (at least 1 ns).
uint64_t rate_interval_ns(uint32_t syn_per_second);

// Metric label of each verdict / reason ("pass", "would_drop", "not_tcp", ...).
const char* verdict_label(allowlist_verdict verdict);
const char* reason_label(allowlist_reason reason);

class XdpAllowlist {
 public:
  // Loads the program, pins (or reuses) its maps under `pin_path` (created, with bpffs
  // mounted on /sys/fs/bpf when needed) and attaches it to every interface in `interfaces`
  // (none: loaded, not attached; see set_interfaces). automatic mode tries native, then
  // generic. The policy
  // starts as it was left in the pinned xdp_settings map (off on first start): call
  // set_ports, sync_allow, then set_policy. The live-event budget starts at
  // XDP_EVENTS_DEFAULT_PER_SECOND.
  static tl::expected<XdpAllowlist, Error> open(const std::string& pin_path,
                                                const std::vector<std::string>& interfaces,
                                                config::XdpMode mode);

  XdpAllowlist(XdpAllowlist&&) noexcept;
  XdpAllowlist& operator=(XdpAllowlist&&) noexcept;
  XdpAllowlist(const XdpAllowlist&) = delete;
  XdpAllowlist& operator=(const XdpAllowlist&) = delete;
  ~XdpAllowlist();  // detaches from every interface; pinned maps stay

  // One entry per attached interface, with the mode actually used.
  std::vector<XdpAttachment> attachments() const;

  // Attaches to every interface in `interfaces` and detaches from the others (e.g. on reload).
  // An interface attached in a mode `mode` does not accept is re-attached; automatic accepts
  // either. On error, interfaces attached before the call stay attached.
  tl::expected<void, Error> set_interfaces(const std::vector<std::string>& interfaces,
                                           config::XdpMode mode);

  // Makes the config-owned entries of allow_v4 / allow_v6 equal `config_allow`: inserts the
  // missing ones (marked ALLOWLIST_VALUE_FROM_CONFIG), deletes config-owned entries no longer
  // listed, and never touches entries an operator added with bpftool (any other value), even
  // when the config lists the same CIDR. An operator's delete of a config entry is undone by
  // the next sync: remove it from the config to remove it for good.
  tl::expected<AllowSync, Error> sync_allow(const std::vector<Cidr>& config_allow);

  tl::expected<void, Error> set_policy(config::XdpPolicy policy);

  // The per-source SYN rate limit (mode, rate, burst, prefix lengths) takes effect at once;
  // the config-owned entries of rate_exempt_v4 / _v6 follow `limit.exempt` with the same
  // ownership rules as sync_allow (operator entries are never touched).
  tl::expected<AllowSync, Error> set_rate_limit(const config::XdpRateLimit& limit);

  // SYN cookie mode and threshold, at once. Needs conntrack and the netfilter SYNPROXY on the
  // filtered ports to complete handshakes (docs/syn-flood.md).
  tl::expected<void, Error> set_syncookie(const config::XdpSyncookie& cookie);

  // The TCP destination ports that are judged; all other ports pass. The caller resolves the
  // config's "empty: every listener port" before calling. Empty: nothing is filtered.
  tl::expected<void, Error> set_ports(const std::vector<uint16_t>& ports);

  // Records of dropped packets each CPU may put in the xdp_events ring per second (also the
  // burst); 0 records none. At once.
  tl::expected<void, Error> set_event_rate(uint32_t per_cpu_second);

  tl::expected<XdpCounters, Error> counters() const;

  // The xdp_events ring buffer (struct xdp_event records), for XdpEventReader.
  int event_ring_fd() const;

  // The loaded program, e.g. for bpf_prog_test_run_opts.
  int program_fd() const;
  const std::string& pin_path() const { return pin_path_; }

 private:
  struct SkeletonDeleter {
    void operator()(::xdp_allowlist* skeleton) const;
  };
  XdpAllowlist(std::unique_ptr<::xdp_allowlist, SkeletonDeleter> skeleton, std::string pin_path);
  // Read-modify-write of the single xdp_settings entry, so each setter changes its own fields;
  // an error names `what` was being set.
  tl::expected<void, Error> update_settings(const char* what,
                                            const std::function<void(allowlist_settings&)>& change);

  std::unique_ptr<::xdp_allowlist, SkeletonDeleter> skeleton_;
  std::string pin_path_;
  struct Link {
    XdpAttachment attachment;
    UniqueFd fd;  // closing it detaches (links are not pinned)
  };
  std::vector<Link> links_;
};

}  // namespace snisplice::bpf
