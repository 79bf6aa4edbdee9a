#pragma once
// Every metric snisplice exports, declared once. Names and labels are the contract's
// (INTERFACE.md); label values come from the configuration, never from clients.
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace snisplice::metrics {

class Metrics {
  // Declared first: every reference below points into these.
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& connections_;
  prometheus::Family<prometheus::Gauge>& active_;
  prometheus::Family<prometheus::Counter>& bytes_;
  prometheus::Family<prometheus::Counter>& spliced_;
  prometheus::Family<prometheus::Counter>& dns_lookups_;
  prometheus::Family<prometheus::Counter>& reloads_;
  prometheus::Family<prometheus::Counter>& events_dropped_;

 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;
  std::shared_ptr<prometheus::Registry> registry() { return registry_; }

  // Looked up once per (listener, route, result) and then cached.
  prometheus::Counter& connections(const std::string& listener, const std::string& route,
                                   const std::string& result);
  prometheus::Gauge& active(const std::string& listener);

  prometheus::Counter& bytes_client_to_backend;
  prometheus::Counter& bytes_backend_to_client;
  prometheus::Counter& spliced_sockmap;
  prometheus::Counter& spliced_userspace;
  prometheus::Counter& splice_budget_aborts;
  prometheus::Counter& splice_pauses;
  prometheus::Counter& splice_held_bytes;
  prometheus::Histogram& client_hello_bytes;
  prometheus::Histogram& connect_duration;
  prometheus::Counter& dns_cache_hit;
  prometheus::Counter& dns_resolved;
  prometheus::Counter& dns_failed;
  prometheus::Gauge& dns_cache_entries;
  prometheus::Counter& reloads_ok;
  prometheus::Counter& reloads_rejected;
  prometheus::Family<prometheus::Counter>& xdp_packets;
  prometheus::Family<prometheus::Gauge>& xdp_attached;
  prometheus::Family<prometheus::Gauge>& backend_server_up;
  // Live events (proxy/events): what subscribers did not get, and how many there are.
  prometheus::Counter& events_dropped_slow_subscriber;
  prometheus::Counter& events_dropped_ring_full;
  prometheus::Counter& events_dropped_sampled_out;
  prometheus::Gauge& event_subscribers;

 private:
  std::mutex cache_mutex_;
  std::unordered_map<std::string, prometheus::Counter*> connection_counters_;
};

}  // namespace snisplice::metrics
