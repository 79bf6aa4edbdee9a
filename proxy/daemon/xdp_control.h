#pragma once
// The daemon's side of the XDP allowlist: attach at start, apply each reload's `xdp:` to the
// running program and the entries the config owns, export the per-CPU counters, publish the
// packets the program samples as `xdp` live events while attached, detach on exit (the pinned
// allowlist stays for the next start).
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "base/error.h"

#include "bpf/xdp_allowlist.h"
#include "bpf/xdp_event_reader.h"
#include "config/config.h"
#include "events/bus.h"
#include "metrics/metrics.h"

namespace snisplice::daemon {

class XdpControl {
 public:
  XdpControl(metrics::Metrics& metrics, events::EventBus& bus) : metrics_(metrics), bus_(bus) {}

  // Start and reload. An error leaves the previous state in force.
  tl::expected<void, Error> apply(const config::Config& config);
  // Brings snisplice_xdp_packets_total and the XDP part of snisplice_events_dropped_total up
  // to the kernel's counters.
  void refresh_metrics();

 private:
  void clear_attached();

  void detach();

  metrics::Metrics& metrics_;
  events::EventBus& bus_;
  std::vector<prometheus::Gauge*> attached_;  // snisplice_xdp_attached series now exported
  std::optional<bpf::XdpAllowlist> allowlist_;
  std::unique_ptr<bpf::XdpEventReader> events_;  // after allowlist_: reads its ring, goes first
  std::array<uint64_t, ALLOWLIST_VERDICT_COUNT> exported_{};
  uint64_t exported_sampled_out_ = 0;
  uint64_t exported_ring_full_ = 0;
};

}  // namespace snisplice::daemon
