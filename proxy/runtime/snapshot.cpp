#include "runtime/snapshot.h"

#include <fmt/format.h>

namespace snisplice::runtime {

tl::expected<std::shared_ptr<const Snapshot>, Error> Snapshot::build(
    std::shared_ptr<const config::Config> config, uint64_t generation, const std::vector<IpAddress>& own_addresses) {
  auto runtime = std::make_shared<Snapshot>();
  runtime->generation = generation;
  resolve::ThisHost this_host{own_addresses, {}};
  for (const auto& listener : config->listeners)
    this_host.listeners.insert(this_host.listeners.end(), listener.listen.begin(), listener.listen.end());
  for (const auto& table : config->tables) {
    std::vector<route::Entry> entries;
    std::vector<std::string> labels;
    std::vector<resolve::AddressPolicy> policies;
    for (size_t i = 0; i < table.routes.size(); ++i) {
      const auto& route = table.routes[i];
      policies.push_back(route.resolve.allow_networks
                             ? resolve::AddressPolicy::allow_only(*route.resolve.allow_networks, this_host)
                             : resolve::AddressPolicy::special_ranges_denied(this_host));
      entries.push_back({route.host, route.alpn, static_cast<uint32_t>(i)});
      // The pattern as written in the config names the route: operator-chosen, bounded.
      std::string label = route.host;
      if (!route.alpn.empty()) label += fmt::format(" alpn={}", fmt::join(route.alpn, ","));
      labels.push_back(std::move(label));
    }
    auto compiled = route::RouteTable::build(std::move(entries));
    if (!compiled) return tl::unexpected(Error{fmt::format("tables.{}: {}", table.name, compiled.error())});
    runtime->tables.push_back(std::move(*compiled));
    runtime->route_labels.push_back(std::move(labels));
    runtime->route_policies.push_back(std::move(policies));
  }
  for (const auto& listener : config->listeners) {
    size_t index = 0;
    while (index < config->tables.size() && config->tables[index].name != listener.table) ++index;
    if (index == config->tables.size())
      return tl::unexpected(Error{fmt::format("listener {}: undefined table {}", listener.name, listener.table)});
    runtime->listener_table.push_back(index);
  }
  runtime->config = std::move(config);
  return std::shared_ptr<const Snapshot>(std::move(runtime));
}

}  // namespace snisplice::runtime
