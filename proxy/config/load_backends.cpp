#include "config/load_sections.h"
#include "config/load_values.h"

namespace snisplice::config::detail {
namespace {

using namespace std::string_view_literals;

constexpr std::string_view kBackendKeys[] = {"servers"sv, "balance"sv, "proxy_protocol"sv,
                                             "connect_timeout"sv, "health_check"sv};
constexpr std::string_view kHealthCheckKeys[] = {"interval"sv, "timeout"sv};

void read_backend(Problems& p, const YAML::Node& node, const std::string& path,
                  Backend& backend) {
  MapReader map(p, node, path, kBackendKeys);
  if (!map.is_map()) return;
  if (auto servers = map.require("servers")) {
    read_key(p, map, "servers", backend.servers, &read_destinations);
    if (servers->IsSequence() && servers->size() == 0)
      p.add(*servers, map.child_path("servers"), "backend has no servers");
  }
  read_key(p, map, "balance", backend.balance, &read_enumerated<kBalanceNames>);
  read_key(p, map, "proxy_protocol", backend.proxy_protocol,
           &read_enumerated<kProxyProtocolNames>);
  read_key(p, map, "connect_timeout", backend.connect_timeout, &read_positive_duration);
  if (auto check = map.find("health_check")) {
    MapReader health(p, *check, map.child_path("health_check"), kHealthCheckKeys);
    backend.health_check.enabled = health.is_map();  // present: enabled
    read_key(p, health, "interval", backend.health_check.interval, &read_positive_duration);
    read_key(p, health, "timeout", backend.health_check.timeout, &read_positive_duration);
  }
}

}  // namespace

void read_backends(Problems& p, const YAML::Node& node, Config& config) {
  MapReader backends(p, node, "backends", "backend");
  for (const auto& [backend_name, value] : backends.entries()) {
    Backend backend;
    backend.name = backend_name;
    backend.line = backends.key_line(backend_name);
    read_backend(p, value, backends.child_path(backend_name), backend);
    config.backends.push_back(std::move(backend));
  }
}

}  // namespace snisplice::config::detail
