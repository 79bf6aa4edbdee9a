#include <charconv>
#include <map>
#include <set>

#include "config/host_pattern.h"
#include "config/load_sections.h"
#include "config/load_values.h"

namespace snisplice::config::detail {
namespace {

using namespace std::string_view_literals;

constexpr std::string_view kRouteKeys[] = {"host"sv, "alpn"sv, "backend"sv, "resolve"sv,
                                           "action"sv};
constexpr std::string_view kResolveKeys[] = {"port"sv, "allow_networks"sv};

constexpr size_t kMaxAlpnId = 255;  // RFC 7301 section 3.1: 1-byte length

// What a table already routes for one pattern.
struct PatternUse {
  bool unconditioned = false;
  std::set<std::set<std::string>> alpn_sets;
  std::map<std::string, int> alpn_lines;  // alpn id -> line of the route it conditions
};

// Records that `route` uses its pattern, or reports why it cannot: the same pattern and alpn
// set twice, or an alpn id that would send one pattern two ways (the router refuses both).
bool claim_pattern(Problems& p, PatternUse& use, const Route& route, const RouteSource& source) {
  std::set<std::string> ids(route.alpn.begin(), route.alpn.end());
  if (route.alpn.empty() ? use.unconditioned : use.alpn_sets.contains(ids)) {
    std::string message = "duplicate pattern " + quote(route.host);
    if (!route.alpn.empty()) message += " with alpn [" + quoted_list(route.alpn) + "]";
    p.add(*source.host, source.path + ".host", message);
    return false;
  }
  bool good = true;
  std::set<std::string_view> listed;
  for (size_t i = 0; i < route.alpn.size(); ++i) {
    const std::string& id = route.alpn[i];
    std::string id_path = source.path + ".alpn[" + std::to_string(i) + "]";
    int line = line_of((*source.alpn)[i]);
    if (!listed.insert(id).second) {
      p.add(line, id_path, "alpn " + quote(id) + " listed twice");
      good = false;
    } else if (auto other = use.alpn_lines.find(id); other != use.alpn_lines.end()) {
      p.add(line, id_path,
            "alpn " + quote(id) + " already routes pattern " + quote(route.host) + " (line " +
                std::to_string(other->second) + ")");
      good = false;
    }
  }
  if (!good) return false;
  if (route.alpn.empty()) use.unconditioned = true;
  for (const auto& id : ids) use.alpn_lines.emplace(id, route.line);
  if (!ids.empty()) use.alpn_sets.insert(std::move(ids));
  return true;
}

std::optional<std::string> read_alpn_id(Problems& p, const YAML::Node& node,
                                        std::string_view path) {
  auto id = read_string(p, node, path);
  if (!id) return std::nullopt;
  if (id->empty() || id->size() > kMaxAlpnId) {
    p.add(node, path, id->empty() ? "empty ALPN id" : "ALPN id longer than 255 bytes");
    return std::nullopt;
  }
  return id;
}

std::optional<uint16_t> read_resolve_port(Problems& p, const YAML::Node& node,
                                          std::string_view path) {
  unsigned value = 0;
  if (node.IsScalar()) {
    const std::string& text = node.Scalar();
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!text.empty() && ec == std::errc{} && end == text.data() + text.size() && value >= 1 &&
        value <= 65535)
      return static_cast<uint16_t>(value);
  }
  p.add(node, path, "bad port " + describe(node) + " (expected 1-65535 or \"original\")");
  return std::nullopt;
}

bool read_resolve(Problems& p, const YAML::Node& node, const std::string& path,
                  ResolveTarget& target, RouteSource& source) {
  MapReader map(p, node, path, kResolveKeys);
  if (!map.is_map()) return false;
  bool good = false;
  if (auto port_node = map.require("port")) {
    if (port_node->IsScalar() && port_node->Scalar() == "original") {
      target.port = std::nullopt;
      source.original = *port_node;
      good = true;
    } else if (auto number = read_resolve_port(p, *port_node, map.child_path("port"))) {
      target.port = *number;
      good = true;
    }
  }
  if (auto networks = map.find("allow_networks")) {
    if (auto parsed = read_cidrs(p, *networks, map.child_path("allow_networks")))
      target.allow_networks = std::move(*parsed);
    else
      good = false;
  }
  return good;
}

// A route whose every part is good, or nullopt (its problems reported).
std::optional<Route> read_route(Problems& p, const YAML::Node& node, const std::string& path,
                                RouteSource& source) {
  MapReader map(p, node, path, kRouteKeys);
  if (!map.is_map()) return std::nullopt;
  Route route;
  bool good = false;
  if (auto host = map.require("host")) {
    route.line = line_of(*host);
    source.host = *host;
    if (auto text = read_string(p, *host, map.child_path("host"))) {
      route.host = *text;
      auto key = host_pattern_key(*text);
      if (key)
        source.pattern_key = std::move(*key);
      else
        p.add(*host, map.child_path("host"),
              "bad host pattern " + quote(*text) + ": " + key.error());
      good = key.has_value();
    }
  }
  if (auto alpn = map.find("alpn")) {
    source.alpn = *alpn;
    auto ids = list_of(p, *alpn, map.child_path("alpn"), &read_alpn_id);
    if (ids)
      route.alpn = std::move(*ids);
    else
      good = false;
  }

  auto backend = map.find("backend");
  auto resolve = map.find("resolve");
  auto action = map.find("action");
  int targets = (backend ? 1 : 0) + (resolve ? 1 : 0) + (action ? 1 : 0);
  if (targets != 1) {
    p.add(node, path,
          targets == 0 ? "route needs one of backend, resolve or action"
                       : "route has more than one of backend, resolve and action");
    return std::nullopt;
  }
  if (backend) {
    route.action = RouteAction::backend;
    auto backend_name = read_name(p, *backend, map.child_path("backend"));
    if (backend_name) {
      route.backend = *backend_name;
      source.backend = *backend;
    }
    good = good && backend_name;
  } else if (resolve) {
    route.action = RouteAction::resolve;
    good = read_resolve(p, *resolve, map.child_path("resolve"), route.resolve, source) && good;
  } else {
    auto value = read_enumerated<kRouteActionNames>(p, *action, map.child_path("action"));
    if (value) {
      route.action = *value;
      if (*value == RouteAction::original_dst) source.original = *action;
    }
    good = good && value;
  }
  if (!good) return std::nullopt;
  return route;
}

void read_routes(Problems& p, const YAML::Node& node, const std::string& path, Table& table,
                 std::vector<RouteSource>& sources) {
  std::map<std::string, PatternUse> patterns;  // by pattern key
  read_list(p, node, path, [&](const YAML::Node& item, const std::string& item_path) {
    RouteSource source{item_path, {}, {}, {}, {}, {}};
    auto route = read_route(p, item, item_path, source);
    if (!route || !claim_pattern(p, patterns[source.pattern_key], *route, source)) return;
    table.routes.push_back(std::move(*route));
    sources.push_back(std::move(source));
  });
}

}  // namespace

void read_tables(Problems& p, const YAML::Node& node, Config& config,
                 std::vector<std::vector<RouteSource>>& sources) {
  MapReader tables(p, node, "tables", "table");
  for (const auto& [table_name, routes] : tables.entries()) {
    Table table;
    table.name = table_name;
    table.line = tables.key_line(table_name);
    sources.emplace_back();
    read_routes(p, routes, tables.child_path(table_name), table, sources.back());
    config.tables.push_back(std::move(table));
  }
}

}  // namespace snisplice::config::detail
