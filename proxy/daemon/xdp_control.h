#pragma once
// The daemon's side of the XDP allowlist: attach at start, apply each reload's `xdp:` to the
// running program and the entries the config owns, export the per-CPU counters, detach on
// exit (the pinned allowlist stays for the next start).
#include <array>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "base/error.h"

#include "bpf/xdp_allowlist.h"
#include "config/config.h"
#include "metrics/metrics.h"

namespace snisplice::daemon {

class XdpControl {
 public:
  explicit XdpControl(metrics::Metrics& metrics) : metrics_(metrics) {}

  // Start and reload. An error leaves the previous state in force.
  tl::expected<void, Error> apply(const config::Config& config);
  // Brings snisplice_xdp_packets_total up to the kernel's counters.
  void refresh_metrics();

 private:
  void clear_attached();

  metrics::Metrics& metrics_;
  std::vector<prometheus::Gauge*> attached_;  // snisplice_xdp_attached series now exported
  std::optional<bpf::XdpAllowlist> allowlist_;
  std::array<uint64_t, ALLOWLIST_VERDICT_COUNT> exported_{};
};

}  // namespace snisplice::daemon
