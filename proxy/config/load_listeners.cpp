#include <cstdint>

#include "config/load_sections.h"
#include "config/load_values.h"

namespace snisplice::config::detail {
namespace {

using namespace std::string_view_literals;

constexpr std::string_view kListenerKeys[] = {"name"sv,
                                              "listen"sv,
                                              "protocol"sv,
                                              "table"sv,
                                              "transparent"sv,
                                              "proxy_protocol_from"sv,
                                              "client_hello_timeout"sv,
                                              "client_hello_max_bytes"sv,
                                              "max_connections"sv,
                                              "per_ip_max_connections"sv};

// Classic ClientHellos are ~500 bytes, post-quantum ones ~2 KiB; Envoy caps at 64 KiB.
constexpr uint64_t kMinHelloBytes = 1024;
constexpr uint64_t kMaxHelloBytes = 65536;

void read_listener(Problems& p, const YAML::Node& node, const std::string& path, Config& config,
                   std::vector<ListenerSource>& sources) {
  MapReader map(p, node, path, kListenerKeys);
  if (!map.is_map()) return;
  Listener listener;
  ListenerSource source{path, {}, {}, {}};
  listener.line = line_of(node);
  if (auto name_node = map.require("name")) {
    if (auto text = read_name(p, *name_node, map.child_path("name"))) {
      listener.name = *text;
      source.name = *name_node;
    }
  }
  if (auto listen = map.require("listen")) {
    bool is_list = read_list(p, *listen, map.child_path("listen"),
                             [&](const YAML::Node& item, const std::string& item_path) {
                               if (auto address = read_bind_address(p, item, item_path)) {
                                 listener.listen.push_back(*address);
                                 source.listen.push_back(item);
                               }
                             });
    if (is_list && listen->size() == 0)
      p.add(*listen, map.child_path("listen"), "at least one address is needed");
  }
  read_key(p, map, "protocol", listener.protocol, &read_enumerated<kProtocolNames>);
  if (auto table = map.require("table")) {
    if (auto text = read_name(p, *table, map.child_path("table"))) {
      listener.table = *text;
      source.table = *table;
    }
  }
  read_key(p, map, "transparent", listener.transparent, &read_bool);
  read_key(p, map, "proxy_protocol_from", listener.proxy_protocol_from, &read_cidrs);
  read_key(p, map, "client_hello_timeout", listener.client_hello_timeout,
           &read_positive_duration);
  read_key(p, map, "client_hello_max_bytes", listener.client_hello_max_bytes,
           &read_integer<kMinHelloBytes, kMaxHelloBytes>);
  read_key(p, map, "max_connections", listener.max_connections, &read_integer<1, UINT32_MAX>);
  read_key(p, map, "per_ip_max_connections", listener.per_ip_max_connections,
           &read_integer<1, UINT32_MAX>);
  config.listeners.push_back(std::move(listener));
  sources.push_back(std::move(source));
}

}  // namespace

void read_listeners(Problems& p, const YAML::Node& node, Config& config,
                    std::vector<ListenerSource>& sources) {
  bool is_list =
      read_list(p, node, "listeners", [&](const YAML::Node& item, const std::string& path) {
        read_listener(p, item, path, config, sources);
      });
  if (is_list && node.size() == 0) p.add(node, "listeners", "at least one listener is needed");
}

}  // namespace snisplice::config::detail
