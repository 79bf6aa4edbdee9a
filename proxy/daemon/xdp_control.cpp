#include "daemon/xdp_control.h"

#include <spdlog/spdlog.h>

namespace snisplice::daemon {

tl::expected<void, Error> XdpControl::apply(const config::Config& config) {
  const auto& xdp = config.xdp;
  if (xdp.interfaces.empty()) {
    if (allowlist_) spdlog::info("xdp: no interfaces configured; detaching");
    detach();
    return {};
  }
  if (!allowlist_) {
    auto opened = bpf::XdpAllowlist::open(config.bpf_pin_path, xdp.interfaces, xdp.mode);
    if (!opened) return tl::unexpected(opened.error().within("xdp"));
    allowlist_.emplace(std::move(*opened));
    // The counters live in pinned maps and outlast a restart: export only what grows from now.
    if (auto counters = allowlist_->counters()) exported_ = counters->verdicts;
    for (size_t v = 0; v < exported_.size(); ++v)
      metrics_.xdp_packets.Add({{"verdict", bpf::verdict_label(static_cast<allowlist_verdict>(v))}});
    // The event budget's counters are not pinned: they start at zero with each load.
    exported_sampled_out_ = exported_ring_full_ = 0;
    // Live events are an aid, not the filter: without them the allowlist still runs.
    auto reader = bpf::XdpEventReader::start(allowlist_->event_ring_fd(), bus_);
    if (reader)
      events_ = std::move(*reader);
    else
      spdlog::warn("xdp: no live xdp events: {}", reader.error().message());
  } else if (auto moved = allowlist_->set_interfaces(xdp.interfaces, xdp.mode); !moved) {
    return tl::unexpected(moved.error().within("xdp"));
  }
  if (auto ports = allowlist_->set_ports(bpf::filtered_ports(config)); !ports)
    return tl::unexpected(ports.error().within("xdp.ports"));
  auto synced = allowlist_->sync_allow(xdp.allow);
  if (!synced) return tl::unexpected(synced.error().within("xdp.allow"));
  if (auto policy = allowlist_->set_policy(xdp.policy); !policy)
    return tl::unexpected(policy.error().within("xdp.policy"));
  if (auto limit = allowlist_->set_rate_limit(xdp.rate_limit); !limit)
    return tl::unexpected(limit.error().within("xdp.rate_limit"));
  if (auto cookie = allowlist_->set_syncookie(xdp.syncookie); !cookie)
    return tl::unexpected(cookie.error().within("xdp.syncookie"));
  clear_attached();
  for (const auto& attachment : allowlist_->attachments()) {
    spdlog::info("xdp: {} attached in {} mode, policy {}", attachment.interface, bpf::to_string(attachment.mode),
                 config::to_string(xdp.policy));
    auto& gauge = metrics_.xdp_attached.Add({{"interface", attachment.interface}, {"mode", bpf::to_string(attachment.mode)}});
    gauge.Set(1);
    attached_.push_back(&gauge);
  }
  spdlog::info("xdp: allowlist from config: {} added, {} removed, {} already present as operator entries",
               synced->added, synced->removed, synced->operator_kept);
  return {};
}

void XdpControl::detach() {
  events_.reset();  // stops reading before the ring goes
  allowlist_.reset();
  clear_attached();
}

void XdpControl::clear_attached() {
  for (auto* gauge : attached_) metrics_.xdp_attached.Remove(gauge);
  attached_.clear();
}

void XdpControl::refresh_metrics() {
  if (!allowlist_) return;
  auto counters = allowlist_->counters();
  if (!counters) return;
  for (size_t v = 0; v < exported_.size(); ++v) {
    uint64_t now = counters->verdicts[v];
    if (now > exported_[v])
      metrics_.xdp_packets.Add({{"verdict", bpf::verdict_label(static_cast<allowlist_verdict>(v))}})
          .Increment(static_cast<double>(now - exported_[v]));
    exported_[v] = now;
  }
  auto add = [](prometheus::Counter& counter, uint64_t now, uint64_t& exported) {
    if (now > exported) counter.Increment(static_cast<double>(now - exported));
    exported = now;
  };
  add(metrics_.events_dropped_sampled_out, counters->events_sampled_out, exported_sampled_out_);
  add(metrics_.events_dropped_ring_full, counters->events_ring_full, exported_ring_full_);
}

}  // namespace snisplice::daemon
