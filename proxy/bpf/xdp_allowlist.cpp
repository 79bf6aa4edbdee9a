#include "bpf/xdp_allowlist.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <set>
#include <utility>

#include "bpf/pin_dir.h"
#include "xdp_allowlist.skel.h"

namespace snisplice::bpf {
namespace {

// libbpf returns negative errno values, the system calls set errno.
Error failure(std::string what, int err) { return Error::from_errno(std::move(what), err < 0 ? -err : err); }
std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

bpf_map_info wanted_info(const bpf_map* map) {
  bpf_map_info info{};
  info.type = bpf_map__type(map);
  info.key_size = bpf_map__key_size(map);
  info.value_size = bpf_map__value_size(map);
  info.max_entries = bpf_map__max_entries(map);
  info.map_flags = bpf_map__map_flags(map);
  return info;
}

// Keys compare as bytes: the tries hold them in exactly this form.
template <typename Key>
struct KeyLess {
  bool operator()(const Key& a, const Key& b) const { return std::memcmp(&a, &b, sizeof(Key)) < 0; }
};
template <typename Key>
using KeySet = std::set<Key, KeyLess<Key>>;

template <typename Key>
Key trie_key(const Cidr& cidr) {
  Key key{};
  key.prefixlen = cidr.prefix_len;
  std::memcpy(key.addr, cidr.network.bytes.data(), sizeof(key.addr));
  return key;
}

// Brings the config-owned entries of one trie in line with `desired`.
template <typename Key>
tl::expected<void, Error> sync_trie(int map_fd, const char* map_name, const KeySet<Key>& desired,
                                    AllowSync& result) {
  KeySet<Key> present, owned;
  Key key{}, next{};
  const Key* previous = nullptr;
  // Bounded: a trie holds at most ALLOWLIST_MAX_ENTRIES keys.
  for (unsigned i = 0; i <= ALLOWLIST_MAX_ENTRIES; ++i) {
    if (::bpf_map_get_next_key(map_fd, previous, &next) != 0) {
      if (errno == ENOENT) break;
      return tl::unexpected(failure(std::string("listing ") + map_name, errno));
    }
    __u32 value = 0;
    if (::bpf_map_lookup_elem(map_fd, &next, &value) == 0) {
      present.insert(next);
      if (value == ALLOWLIST_VALUE_FROM_CONFIG) owned.insert(next);
    }
    key = next;
    previous = &key;
  }
  for (const Key& wanted : desired) {
    if (present.count(wanted)) {
      if (!owned.count(wanted)) ++result.operator_kept;
      continue;
    }
    const __u32 value = ALLOWLIST_VALUE_FROM_CONFIG;
    if (::bpf_map_update_elem(map_fd, &wanted, &value, BPF_NOEXIST) != 0) {
      if (errno == EEXIST) continue;  // an operator added it just now: theirs
      return tl::unexpected(failure(std::string("adding to ") + map_name, errno));
    }
    ++result.added;
  }
  for (const Key& stale : owned) {
    if (desired.count(stale)) continue;
    if (::bpf_map_delete_elem(map_fd, &stale) != 0 && errno != ENOENT)
      return tl::unexpected(failure(std::string("deleting from ") + map_name, errno));
    ++result.removed;
  }
  return {};
}

// Both tries of one family pair (allow_v4/_v6 or rate_exempt_v4/_v6) in line with `cidrs`.
tl::expected<AllowSync, Error> sync_tries(int fd_v4, const char* name_v4, int fd_v6, const char* name_v6,
                                          const std::vector<Cidr>& cidrs) {
  KeySet<allow_v4_key> desired_v4;
  KeySet<allow_v6_key> desired_v6;
  for (const Cidr& cidr : cidrs) {
    if (cidr.network.is_v4())
      desired_v4.insert(trie_key<allow_v4_key>(cidr));
    else
      desired_v6.insert(trie_key<allow_v6_key>(cidr));
  }
  AllowSync result;
  if (auto v4 = sync_trie(fd_v4, name_v4, desired_v4, result); !v4)
    return tl::unexpected(v4.error());
  if (auto v6 = sync_trie(fd_v6, name_v6, desired_v6, result); !v6)
    return tl::unexpected(v6.error());
  return result;
}

__u32 rate_limit_mode(config::RateLimitMode mode) {
  switch (mode) {
    case config::RateLimitMode::off: return RATE_LIMIT_OFF;
    case config::RateLimitMode::monitor: return RATE_LIMIT_MONITOR;
    case config::RateLimitMode::enforce: return RATE_LIMIT_ENFORCE;
  }
  return RATE_LIMIT_OFF;
}

// The errno on failure: the caller words one error for both modes it tried.
tl::expected<UniqueFd, int> attach_link(int prog_fd, unsigned ifindex, __u32 flags) {
  LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
  const int fd = ::bpf_link_create(prog_fd, static_cast<int>(ifindex), BPF_XDP, &opts);
  if (fd < 0) return tl::unexpected(errno);
  return UniqueFd(fd);
}

}  // namespace

uint64_t rate_interval_ns(uint32_t syn_per_second) {
  constexpr uint64_t kSecondNs = 1'000'000'000;
  return std::max<uint64_t>(kSecondNs / std::max<uint32_t>(syn_per_second, 1), 1);
}

std::vector<uint16_t> filtered_ports(const config::Config& config) {
  std::set<uint16_t> ports(config.xdp.ports.begin(), config.xdp.ports.end());
  if (ports.empty())
    for (const config::Listener& listener : config.listeners)
      for (const SocketAddress& address : listener.listen) ports.insert(address.port);
  return {ports.begin(), ports.end()};
}

const char* to_string(XdpAttachMode mode) {
  switch (mode) {
    case XdpAttachMode::native: return "native";
    case XdpAttachMode::generic: return "generic";
  }
  return "unknown";
}

const char* verdict_label(allowlist_verdict verdict) {
  switch (verdict) {
    case ALLOWLIST_VERDICT_PASS: return "pass";
    case ALLOWLIST_VERDICT_DROP: return "drop";
    case ALLOWLIST_VERDICT_WOULD_DROP: return "would_drop";
    case ALLOWLIST_VERDICT_RATE_LIMITED: return "rate_limited";
    case ALLOWLIST_VERDICT_WOULD_RATE_LIMIT: return "would_rate_limit";
    case ALLOWLIST_VERDICT_SYNCOOKIE_SENT: return "syncookie_sent";
    case ALLOWLIST_VERDICT_SYNCOOKIE_BAD: return "syncookie_bad";
    case ALLOWLIST_VERDICT_COUNT: break;
  }
  return "unknown";
}

const char* reason_label(allowlist_reason reason) {
  switch (reason) {
    case ALLOWLIST_REASON_POLICY_OFF: return "policy_off";
    case ALLOWLIST_REASON_NOT_IP: return "not_ip";
    case ALLOWLIST_REASON_NOT_TCP: return "not_tcp";
    case ALLOWLIST_REASON_OTHER_PORT: return "other_port";
    case ALLOWLIST_REASON_ALLOWED: return "allowed";
    case ALLOWLIST_REASON_DENIED: return "denied";
    case ALLOWLIST_REASON_MALFORMED: return "malformed";
    case ALLOWLIST_REASON_FRAGMENT: return "fragment";
    case ALLOWLIST_REASON_UNSUPPORTED: return "unsupported";
    case ALLOWLIST_REASON_SYN_RATE: return "syn_rate";
    case ALLOWLIST_REASON_SYN_FLOOD: return "syn_flood";
    case ALLOWLIST_REASON_COOKIE_VALID: return "cookie_valid";
    case ALLOWLIST_REASON_COOKIE_INVALID: return "cookie_invalid";
    case ALLOWLIST_REASON_COUNT: break;
  }
  return "unknown";
}

void XdpAllowlist::SkeletonDeleter::operator()(::xdp_allowlist* skeleton) const {
  xdp_allowlist__destroy(skeleton);
}

XdpAllowlist::XdpAllowlist(std::unique_ptr<::xdp_allowlist, SkeletonDeleter> skeleton,
                           std::string pin_path)
    : skeleton_(std::move(skeleton)), pin_path_(std::move(pin_path)) {}
XdpAllowlist::XdpAllowlist(XdpAllowlist&&) noexcept = default;
XdpAllowlist& XdpAllowlist::operator=(XdpAllowlist&&) noexcept = default;
XdpAllowlist::~XdpAllowlist() = default;

tl::expected<XdpAllowlist, Error> XdpAllowlist::open(
    const std::string& pin_path, const std::vector<std::string>& interfaces,
    config::XdpMode mode) {
  if (auto dir = ensure_pin_dir(pin_path); !dir) return tl::unexpected(dir.error());

  std::unique_ptr<::xdp_allowlist, SkeletonDeleter> skeleton(xdp_allowlist__open());
  if (!skeleton) return tl::unexpected(failure("opening the XDP allowlist object", errno));

  struct Pinned {
    bpf_map* map;
    bool keeps_operator_data;  // an incompatible pin is an error, never silently replaced
  };
  const Pinned pinned[] = {
      {skeleton->maps.allow_v4, true},      {skeleton->maps.allow_v6, true},
      {skeleton->maps.xdp_ports, false},    {skeleton->maps.xdp_settings, false},
      {skeleton->maps.xdp_verdicts, false}, {skeleton->maps.xdp_reasons, false},
      {skeleton->maps.rate_exempt_v4, true}, {skeleton->maps.rate_exempt_v6, true},
      {skeleton->maps.rate_buckets, false},  {skeleton->maps.syn_rate, false},
  };
  for (const Pinned& entry : pinned) {
    const std::string file = pin_path + "/" + bpf_map__name(entry.map);
    // An allowlist or exempt pin is never replaced, since it holds the operators' entries: an
    // old layout must be moved aside by hand (libbpf's reuse check fails the load with EINVAL).
    if (!entry.keeps_operator_data) {
      if (auto removed = remove_incompatible_pin(file, wanted_info(entry.map)); !removed)
        return tl::unexpected(removed.error());
    }
    if (const int err = bpf_map__set_pin_path(entry.map, file.c_str()); err != 0)
      return tl::unexpected(failure("pinning " + file, err));
  }
  if (const int err = xdp_allowlist__load(skeleton.get()); err != 0) {
    Error loading = failure("loading the XDP allowlist with maps pinned under " + pin_path, err);
    // The hint follows the errno's text, so the context says it all.
    if (err == -EINVAL)
      loading = Error{loading.message() + " (a pinned allow_v4/allow_v6 with another layout? move it aside)"};
    return tl::unexpected(std::move(loading));
  }

  XdpAllowlist allowlist(std::move(skeleton), pin_path);
  if (auto rate = allowlist.set_event_rate(XDP_EVENTS_DEFAULT_PER_SECOND); !rate)
    return tl::unexpected(rate.error());
  if (auto attached = allowlist.set_interfaces(interfaces, mode); !attached)
    return tl::unexpected(attached.error());
  return allowlist;
}

std::vector<XdpAttachment> XdpAllowlist::attachments() const {
  std::vector<XdpAttachment> out;
  for (const Link& link : links_) out.push_back(link.attachment);
  return out;
}

tl::expected<void, Error> XdpAllowlist::set_interfaces(const std::vector<std::string>& interfaces,
                                                       config::XdpMode mode) {
  auto mode_accepted = [mode](XdpAttachMode used) {
    return mode == config::XdpMode::automatic ||
           (mode == config::XdpMode::native) == (used == XdpAttachMode::native);
  };
  std::erase_if(links_, [&](const Link& link) {
    return std::find(interfaces.begin(), interfaces.end(), link.attachment.interface) ==
               interfaces.end() ||
           !mode_accepted(link.attachment.mode);
  });

  const int prog_fd = program_fd();
  for (const std::string& name : interfaces) {
    if (std::any_of(links_.begin(), links_.end(),
                    [&](const Link& link) { return link.attachment.interface == name; }))
      continue;
    const unsigned ifindex = ::if_nametoindex(name.c_str());
    if (ifindex == 0)
      return tl::unexpected(failure("xdp interface " + name, errno));
    tl::expected<UniqueFd, int> link = tl::unexpected(0);
    XdpAttachMode used = XdpAttachMode::native;
    std::string native_error;
    if (mode != config::XdpMode::generic) {
      link = attach_link(prog_fd, ifindex, XDP_FLAGS_DRV_MODE);
      if (!link) native_error = errno_text(link.error());
    }
    if (!link && mode != config::XdpMode::native) {
      used = XdpAttachMode::generic;
      link = attach_link(prog_fd, ifindex, XDP_FLAGS_SKB_MODE);
    }
    if (!link) {
      const std::string generic_error = errno_text(link.error());
      return tl::unexpected(Error{"attaching XDP to " + name + ": " +
                                  (native_error.empty() ? "" : "native: " + native_error) +
                                  (mode == config::XdpMode::native ? ""
                                   : native_error.empty()          ? "generic: " + generic_error
                                                                   : "; generic: " + generic_error)});
    }
    links_.push_back({{name, ifindex, used}, std::move(*link)});
  }
  return {};
}

int XdpAllowlist::program_fd() const {
  return bpf_program__fd(skeleton_->progs.xdp_allowlist_filter);
}

tl::expected<AllowSync, Error> XdpAllowlist::sync_allow(const std::vector<Cidr>& config_allow) {
  return sync_tries(bpf_map__fd(skeleton_->maps.allow_v4), ALLOWLIST_MAP_V4,
                    bpf_map__fd(skeleton_->maps.allow_v6), ALLOWLIST_MAP_V6, config_allow);
}

tl::expected<AllowSync, Error> XdpAllowlist::set_rate_limit(const config::XdpRateLimit& limit) {
  auto exempt = sync_tries(bpf_map__fd(skeleton_->maps.rate_exempt_v4), RATE_EXEMPT_MAP_V4,
                           bpf_map__fd(skeleton_->maps.rate_exempt_v6), RATE_EXEMPT_MAP_V6,
                           limit.exempt);
  if (!exempt) return exempt;
  auto updated = update_settings("setting the SYN rate limit", [&](allowlist_settings& settings) {
    settings.rate_mode = rate_limit_mode(limit.mode);
    settings.rate_interval_ns = rate_interval_ns(limit.syn_per_second);
    settings.rate_burst_ns = settings.rate_interval_ns * std::max<uint64_t>(limit.burst, 1);
    settings.rate_prefix_v4 = limit.prefix_v4;
    settings.rate_prefix_v6 = limit.prefix_v6;
  });
  if (!updated) return tl::unexpected(updated.error());
  return exempt;
}

tl::expected<void, Error> XdpAllowlist::set_syncookie(const config::XdpSyncookie& cookie) {
  auto updated = update_settings("setting the SYN cookie mode", [&](allowlist_settings& settings) {
    switch (cookie.mode) {
      case config::SyncookieMode::off: settings.syncookie_mode = SYNCOOKIE_OFF; break;
      case config::SyncookieMode::automatic: settings.syncookie_mode = SYNCOOKIE_AUTO; break;
      case config::SyncookieMode::on: settings.syncookie_mode = SYNCOOKIE_ON; break;
    }
    settings.syn_threshold = cookie.syn_threshold;
  });
  return updated;
}

tl::expected<void, Error> XdpAllowlist::update_settings(const char* what,
                                                       const std::function<void(allowlist_settings&)>& change) {
  const int fd = bpf_map__fd(skeleton_->maps.xdp_settings);
  const __u32 key = 0;
  allowlist_settings settings{};
  if (::bpf_map_lookup_elem(fd, &key, &settings) != 0) return tl::unexpected(failure(what, errno));
  change(settings);
  if (::bpf_map_update_elem(fd, &key, &settings, BPF_ANY) != 0) return tl::unexpected(failure(what, errno));
  return {};
}

tl::expected<void, Error> XdpAllowlist::set_event_rate(uint32_t per_cpu_second) {
  return update_settings("setting the XDP event rate",
                         [&](allowlist_settings& settings) { settings.events_per_second = per_cpu_second; });
}

int XdpAllowlist::event_ring_fd() const { return bpf_map__fd(skeleton_->maps.xdp_events); }

tl::expected<void, Error> XdpAllowlist::set_policy(config::XdpPolicy policy) {
  return update_settings("setting the XDP policy", [&](allowlist_settings& settings) {
    switch (policy) {
      case config::XdpPolicy::off: settings.policy = ALLOWLIST_POLICY_OFF; break;
      case config::XdpPolicy::monitor: settings.policy = ALLOWLIST_POLICY_MONITOR; break;
      case config::XdpPolicy::enforce: settings.policy = ALLOWLIST_POLICY_ENFORCE; break;
    }
  });
}

tl::expected<void, Error> XdpAllowlist::set_ports(const std::vector<uint16_t>& ports) {
  const int fd = bpf_map__fd(skeleton_->maps.xdp_ports);
  const std::set<uint16_t> desired(ports.begin(), ports.end());
  if (desired.size() > ALLOWLIST_PORTS_MAX_ENTRIES)
    return tl::unexpected(Error{"too many XDP ports: " + std::to_string(desired.size()) + " (at most " +
                                std::to_string(ALLOWLIST_PORTS_MAX_ENTRIES) + ")"});
  std::vector<uint16_t> stale;
  __u16 key = 0, next = 0;
  const __u16* previous = nullptr;
  for (unsigned i = 0; i <= ALLOWLIST_PORTS_MAX_ENTRIES; ++i) {
    if (::bpf_map_get_next_key(fd, previous, &next) != 0) {
      if (errno == ENOENT) break;
      return tl::unexpected(failure("listing XDP ports", errno));
    }
    if (!desired.count(next)) stale.push_back(next);
    key = next;
    previous = &key;
  }
  const __u8 value = 1;
  for (const uint16_t port : desired) {
    const __u16 port_key = port;
    if (::bpf_map_update_elem(fd, &port_key, &value, BPF_ANY) != 0)
      return tl::unexpected(failure("adding XDP port " + std::to_string(port), errno));
  }
  for (const uint16_t port : stale) {
    const __u16 port_key = port;
    if (::bpf_map_delete_elem(fd, &port_key) != 0 && errno != ENOENT)
      return tl::unexpected(failure("removing XDP port " + std::to_string(port), errno));
  }
  return {};
}

tl::expected<XdpCounters, Error> XdpAllowlist::counters() const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return tl::unexpected(failure("counting possible CPUs", cpus));
  std::vector<__u64> per_cpu(static_cast<size_t>(cpus));
  auto sum = [&](const bpf_map* map, __u32 key, uint64_t& out) -> tl::expected<void, Error> {
    if (::bpf_map_lookup_elem(bpf_map__fd(map), &key, per_cpu.data()) != 0)
      return tl::unexpected(failure(std::string("reading ") + bpf_map__name(map), errno));
    out = 0;
    for (const __u64 value : per_cpu) out += value;
    return {};
  };
  XdpCounters counters;
  for (__u32 v = 0; v < ALLOWLIST_VERDICT_COUNT; ++v)
    if (auto ok = sum(skeleton_->maps.xdp_verdicts, v, counters.verdicts[v]); !ok)
      return tl::unexpected(ok.error());
  for (__u32 r = 0; r < ALLOWLIST_REASON_COUNT; ++r)
    if (auto ok = sum(skeleton_->maps.xdp_reasons, r, counters.reasons[r]); !ok)
      return tl::unexpected(ok.error());
  std::vector<xdp_event_budget> budgets(static_cast<size_t>(cpus));
  const __u32 zero = 0;
  if (::bpf_map_lookup_elem(bpf_map__fd(skeleton_->maps.xdp_event_budget), &zero,
                            budgets.data()) != 0)
    return tl::unexpected(failure("reading xdp_event_budget", errno));
  for (const xdp_event_budget& budget : budgets) {
    counters.events_sampled_out += budget.sampled_out;
    counters.events_ring_full += budget.ring_full;
  }
  return counters;
}

}  // namespace snisplice::bpf
