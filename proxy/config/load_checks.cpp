#include <algorithm>
#include <map>
#include <set>

#include "config/load_sections.h"
#include "config/load_values.h"

namespace snisplice::config::detail {
namespace {

bool is_unspecified(const IpAddress& ip) {
  return std::all_of(ip.bytes.begin(), ip.bytes.begin() + static_cast<long>(ip.size()),
                     [](uint8_t b) { return b == 0; });
}

void check_listener_names(Problems& p, const Config& config, const Sources& sources) {
  std::map<std::string, int> first_line;
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const auto& source = sources.listeners[i];
    if (!source.name) continue;
    const auto& name = config.listeners[i].name;
    auto [it, inserted] = first_line.emplace(name, line_of(*source.name));
    if (!inserted)
      p.add(*source.name, source.path + ".name",
            "duplicate listener name " + quote(name) + " (first at line " +
                std::to_string(it->second) + ")");
  }
}

// Two bind addresses collide when they are equal, or when one is the wildcard of its family
// on the same port. IPv6 sockets are bound IPV6_V6ONLY, so [::] does not cover IPv4. Port 0
// leaves the port to the kernel and never collides.
void check_listen_overlap(Problems& p, const Config& config, const Sources& sources) {
  struct Bound {
    SocketAddress address;
    size_t listener;
  };
  struct PortUse {
    std::optional<Bound> wildcard;
    std::optional<Bound> specific;  // the first one
  };
  std::map<SocketAddress, Bound> exact;
  std::map<std::pair<IpAddress::Family, uint16_t>, PortUse> ports;
  // The address already bound that `address` collides with, if any.
  auto clash_with = [&](const SocketAddress& address) -> std::optional<Bound> {
    if (address.port == 0) return std::nullopt;
    if (auto it = exact.find(address); it != exact.end()) return it->second;
    auto use = ports.find({address.ip.family, address.port});
    if (use == ports.end()) return std::nullopt;
    return is_unspecified(address.ip) ? use->second.specific : use->second.wildcard;
  };
  auto describe_clash = [&](const SocketAddress& address, const Bound& other) {
    const auto& listener = config.listeners[other.listener];
    std::string what = other.address == address
                           ? "address " + address.to_string() + " is already used"
                           : address.to_string() + " overlaps " + other.address.to_string();
    return what + " by listener " + quote(listener.name) + " (line " +
           std::to_string(listener.line) + ")";
  };
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const auto& listener = config.listeners[i];
    const auto& source = sources.listeners[i];
    for (size_t k = 0; k < listener.listen.size(); ++k) {
      const auto& address = listener.listen[k];
      if (auto other = clash_with(address)) {
        p.add(source.listen[k], source.path + ".listen[" + std::to_string(k) + "]",
              describe_clash(address, *other));
        continue;
      }
      if (address.port == 0) continue;
      Bound bound{address, i};
      exact.emplace(address, bound);
      auto& use = ports[{address.ip.family, address.port}];
      auto& slot = is_unspecified(address.ip) ? use.wildcard : use.specific;
      if (!slot) slot = bound;
    }
  }
  if (config.metrics_listen && sources.metrics_listen)
    if (auto other = clash_with(*config.metrics_listen))
      p.add(*sources.metrics_listen, "metrics.listen",
            describe_clash(*config.metrics_listen, *other));
}

void check_references(Problems& p, const Config& config, const Sources& sources) {
  std::set<std::string_view> tables;
  for (const auto& table : config.tables) tables.insert(table.name);
  std::set<std::string_view> backends;
  for (const auto& backend : config.backends) backends.insert(backend.name);
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const auto& source = sources.listeners[i];
    if (source.table && !tables.contains(config.listeners[i].table))
      p.add(*source.table, source.path + ".table",
            "undefined table " + quote(config.listeners[i].table));
  }
  for (size_t t = 0; t < config.tables.size(); ++t) {
    const auto& routes = config.tables[t].routes;
    for (size_t r = 0; r < routes.size(); ++r) {
      const auto& source = sources.routes[t][r];
      if (routes[r].action == RouteAction::backend && !backends.contains(routes[r].backend))
        p.add(*source.backend, source.path + ".backend",
              "undefined backend " + quote(routes[r].backend));
    }
  }
}

// `port: original` and `action: original_dst` need the original destination, which only
// a transparent (TPROXY) listener knows.
void check_transparent_only(Problems& p, const Config& config, const Sources& sources) {
  std::map<std::string_view, std::vector<std::string>> plain_users;  // table -> listener names
  std::set<std::pair<std::string_view, std::string_view>> listed;    // table, listener
  for (const auto& listener : config.listeners)
    if (!listener.transparent && listed.emplace(listener.table, listener.name).second)
      plain_users[listener.table].push_back(listener.name);
  for (size_t t = 0; t < config.tables.size(); ++t) {
    const auto& table = config.tables[t];
    auto users = plain_users.find(table.name);
    if (users == plain_users.end()) continue;
    for (size_t r = 0; r < table.routes.size(); ++r) {
      const auto& source = sources.routes[t][r];
      if (!source.original) continue;
      bool is_port = table.routes[r].action == RouteAction::resolve;
      p.add(*source.original, source.path + (is_port ? ".resolve.port" : ".action"),
            std::string(is_port ? "port \"original\"" : "action \"original_dst\"") +
                " works only on transparent listeners; table " + quote(table.name) +
                " is used by non-transparent listener" +
                (users->second.size() > 1 ? "s " : " ") + quoted_list(users->second));
    }
  }
}

}  // namespace

void check_across_sections(Problems& p, const Config& config, const Sources& sources) {
  check_listener_names(p, config, sources);
  check_listen_overlap(p, config, sources);
  check_references(p, config, sources);
  check_transparent_only(p, config, sources);
}

}  // namespace snisplice::config::detail
