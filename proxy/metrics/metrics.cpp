#include "metrics/metrics.h"

namespace snisplice::metrics {
namespace {

prometheus::Family<prometheus::Counter>& counter(prometheus::Registry& r, const char* name,
                                                 const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}
prometheus::Family<prometheus::Gauge>& gauge(prometheus::Registry& r, const char* name,
                                             const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}
prometheus::Histogram& histogram(prometheus::Registry& r, const char* name, const char* help,
                                 prometheus::Histogram::BucketBoundaries buckets) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({}, std::move(buckets));
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      connections_(counter(*registry_, "snisplice_connections_total",
                           "Finished client connections by listener, route and result")),
      active_(gauge(*registry_, "snisplice_active_connections", "Open client connections by listener")),
      bytes_(counter(*registry_, "snisplice_bytes_total", "Bytes carried between clients and backends")),
      spliced_(counter(*registry_, "snisplice_spliced_connections_total",
                       "Connections handed to a data path, by mode")),
      dns_lookups_(counter(*registry_, "snisplice_dns_lookups_total",
                           "Name lookups for resolve routes, by result")),
      reloads_(counter(*registry_, "snisplice_config_reloads_total", "Configuration reloads, by result")),
      events_dropped_(counter(*registry_, "snisplice_events_dropped_total",
                              "Live events a subscriber did not get: its queue overflowed (slow_subscriber), "
                              "a ring was full (ring_full: the workers' event ring, or the XDP program's), or the XDP program did not sample them "
                              "(sampled_out)")),
      bytes_client_to_backend(bytes_.Add({{"direction", "client_to_backend"}})),
      bytes_backend_to_client(bytes_.Add({{"direction", "backend_to_client"}})),
      spliced_sockmap(spliced_.Add({{"mode", "sockmap"}})),
      spliced_userspace(spliced_.Add({{"mode", "userspace"}})),
      splice_budget_aborts(counter(*registry_, "snisplice_splice_budget_aborts_total",
                                   "Spliced connections aborted because a peer stopped reading")
                               .Add({})),
      splice_pauses(counter(*registry_, "snisplice_splice_pauses_total",
                            "Times a spliced direction was paused (its sender held to a trickle) because "
                            "its destination read slower than its source sent")
                        .Add({})),
      splice_held_bytes(counter(*registry_, "snisplice_splice_held_bytes_total",
                                "Bytes of spliced connections that a pause held on their source socket and "
                                "the proxy moved itself (the rest of snisplice_bytes_total of a spliced "
                                "connection stayed in the kernel)")
                            .Add({})),
      client_hello_bytes(histogram(*registry_, "snisplice_client_hello_bytes",
                                   "Size of the ClientHello or HTTP request head",
                                   {256, 512, 1024, 1536, 2048, 4096, 8192, 16384, 32768, 65536})),
      connect_duration(histogram(*registry_, "snisplice_connect_duration_seconds",
                                 "Time to connect to a backend server",
                                 {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                  0.1, 0.25, 0.5, 1, 2.5, 5})),
      dns_cache_hit(dns_lookups_.Add({{"result", "cache_hit"}})),
      dns_resolved(dns_lookups_.Add({{"result", "resolved"}})),
      dns_failed(dns_lookups_.Add({{"result", "failed"}})),
      dns_cache_entries(gauge(*registry_, "snisplice_dns_cache_entries",
                              "Names in the DNS cache (the pinned dns_cache map or the in-process LRU)")
                            .Add({})),
      reloads_ok(reloads_.Add({{"result", "ok"}})),
      reloads_rejected(reloads_.Add({{"result", "rejected"}})),
      xdp_packets(counter(*registry_, "snisplice_xdp_packets_total",
                          "Packets judged by the XDP allowlist, by verdict")),
      xdp_attached(gauge(*registry_, "snisplice_xdp_attached",
                         "1 for each interface with the XDP mode it is attached in")),
      backend_server_up(gauge(*registry_, "snisplice_backend_server_up",
                              "1 while a backend server passes its health checks")),
      events_dropped_slow_subscriber(events_dropped_.Add({{"reason", "slow_subscriber"}})),
      events_dropped_ring_full(events_dropped_.Add({{"reason", "ring_full"}})),
      events_dropped_sampled_out(events_dropped_.Add({{"reason", "sampled_out"}})),
      event_subscribers(gauge(*registry_, "snisplice_event_subscribers",
                              "Clients of /events and /events.ndjson").Add({})) {}

prometheus::Counter& Metrics::connections(const std::string& listener, const std::string& route,
                                          const std::string& result) {
  std::string key = listener + '\0' + route + '\0' + result;
  std::lock_guard lock(cache_mutex_);
  auto [it, inserted] = connection_counters_.try_emplace(std::move(key), nullptr);
  if (inserted)
    it->second = &connections_.Add({{"listener", listener}, {"route", route}, {"result", result}});
  return *it->second;
}

prometheus::Gauge& Metrics::active(const std::string& listener) {
  std::lock_guard lock(cache_mutex_);
  return active_.Add({{"listener", listener}});
}

}  // namespace snisplice::metrics
