#include "config/load.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <set>
#include <type_traits>

#include "base/unique_fd.h"
#include "config/duration.h"
#include "config/host_pattern.h"
#include "config/yaml_reader.h"

namespace snisplice::config {
namespace {

using detail::MapReader;
using detail::Problems;
using detail::quote;
using detail::read_address;
using detail::read_bool;
using detail::read_cidr;
using detail::read_duration;
using detail::read_enum;
using detail::read_list;
using detail::read_list_of;
using detail::read_string;
using detail::read_uint;

using namespace std::string_view_literals;

constexpr std::string_view kTopKeys[] = {
    "workers"sv,    "user"sv,      "listeners"sv, "tables"sv,       "backends"sv,
    "dns"sv,        "splice"sv,    "xdp"sv,       "bpf_pin_path"sv, "metrics"sv,
    "access_log"sv, "log_level"sv, "timeouts"sv};
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
constexpr std::string_view kRouteKeys[] = {"host"sv, "alpn"sv, "backend"sv, "resolve"sv,
                                           "action"sv};
constexpr std::string_view kResolveKeys[] = {"port"sv, "allow_networks"sv};
constexpr std::string_view kBackendKeys[] = {"servers"sv, "balance"sv, "proxy_protocol"sv,
                                             "connect_timeout"sv, "health_check"sv};
constexpr std::string_view kHealthCheckKeys[] = {"interval"sv, "timeout"sv};
constexpr std::string_view kDnsKeys[] = {"servers"sv, "timeout"sv,      "tries"sv,     "min_ttl"sv,
                                         "max_ttl"sv, "negative_ttl"sv, "cache_size"sv};
constexpr std::string_view kXdpKeys[] = {"interfaces"sv, "mode"sv,       "policy"sv, "ports"sv,
                                         "allow"sv,      "rate_limit"sv, "syncookie"sv};
constexpr std::string_view kRateLimitKeys[] = {"mode"sv,      "syn_per_second"sv, "burst"sv,
                                               "prefix_v4"sv, "prefix_v6"sv,      "exempt"sv};
constexpr std::string_view kSyncookieKeys[] = {"mode"sv, "syn_threshold"sv};
constexpr std::string_view kMetricsKeys[] = {"listen"sv, "token_file"sv, "max_subscribers"sv};
constexpr std::string_view kTimeoutsKeys[] = {"idle"sv, "shutdown_grace"sv};

constexpr uint64_t kMaxWorkers = 1024;
// Classic ClientHellos are ~500 bytes, post-quantum ones ~2 KiB; Envoy caps at 64 KiB.
constexpr uint64_t kMinHelloBytes = 1024;
constexpr uint64_t kMaxHelloBytes = 65536;
constexpr size_t kMaxAlpnId = 255;  // RFC 7301 section 3.1: 1-byte length
constexpr size_t kMaxInterfaceName = 15;
constexpr size_t kMaxFileBytes = 16 << 20;  // far beyond any real configuration  // IFNAMSIZ - 1

// Where the parts that the cross-checks talk about were written.
struct ListenerSource {
  std::string path;
  std::optional<YAML::Node> name;
  std::optional<YAML::Node> table;
  std::vector<YAML::Node> listen;  // parallel to Listener::listen
};

struct RouteSource {
  std::string path;
  std::optional<YAML::Node> host;
  std::string pattern_key;  // host_pattern_key() of the host
  std::optional<YAML::Node> alpn;
  std::optional<YAML::Node> backend;
  // The `port: original` or `action: original_dst` node, when the route needs a transparent
  // listener.
  std::optional<YAML::Node> original;
};

// At most a few names, quoted, for messages: "a", "b", "c" and 5 more.
std::string quoted_list(const std::vector<std::string>& names) {
  constexpr size_t kShown = 4;
  std::string out;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) out += (i ? ", " : "") + quote(names[i]);
  if (names.size() > kShown) out += " and " + std::to_string(names.size() - kShown) + " more";
  return out;
}

bool is_unspecified(const IpAddress& ip) {
  return std::all_of(ip.bytes.begin(), ip.bytes.begin() + static_cast<long>(ip.size()),
                     [](uint8_t b) { return b == 0; });
}

class Loader {
 public:
  explicit Loader(Problems& problems) : p_(problems) {}

  void load(const YAML::Node& root, Config& config) {
    if (root.IsNull()) {  // an empty file
      p_.add(1, "listeners", "missing required key");
      return;
    }
    MapReader top(p_, root, "", kTopKeys);
    if (!top.is_map()) return;
    read_key(top, "workers", config.workers, &Loader::workers);
    read_key(top, "user", config.user, &Loader::string);
    if (auto node = top.require("listeners")) read_listeners(*node, config);
    if (auto node = top.find("tables")) read_tables(*node, config);
    if (auto node = top.find("backends")) read_backends(*node, config);
    if (auto node = top.find("dns")) read_dns(*node, config.dns);
    read_key(top, "splice", config.splice, &Loader::enumerated<kSpliceModeNames>);
    if (auto node = top.find("xdp")) read_xdp(*node, config.xdp);
    read_key(top, "bpf_pin_path", config.bpf_pin_path, &Loader::absolute_path);
    if (auto node = top.find("metrics")) read_metrics(*node, config);
    if (auto node = top.find("access_log")) read_access_log(*node, config.access_log);
    read_key(top, "log_level", config.log_level, &Loader::enumerated<kLogLevelNames>);
    if (auto node = top.find("timeouts")) read_timeouts(*node, config.timeouts);

    check_listener_names(config);
    check_listen_overlap(config);
    check_references(config);
    check_transparent_only(config);
  }

 private:
  // ---- values: each reader reports its own problems and returns nullopt on them ----

  template <class T>
  using Reader = std::optional<T> (Loader::*)(const YAML::Node&, const std::string&);

  // Sets `target` from `key` when the key is present and its value good; the default stays
  // otherwise.
  template <class Target, class T>
  void read_key(const MapReader& map, std::string_view key, Target& target, Reader<T> read) {
    if (auto node = map.find(key))
      if (auto value = (this->*read)(*node, map.child_path(key)))
        target = static_cast<Target>(std::move(*value));
  }

  template <class T>
  std::optional<std::vector<T>> list_of(const YAML::Node& node, const std::string& path,
                                        Reader<T> read_item) {
    return read_list_of<T>(p_, node, path,
                           [&](const YAML::Node& item, const std::string& item_path) {
                             return (this->*read_item)(item, item_path);
                           });
  }

  std::optional<std::string> string(const YAML::Node& node, const std::string& path) {
    return read_string(p_, node, path);
  }

  std::optional<bool> boolean(const YAML::Node& node, const std::string& path) {
    return read_bool(p_, node, path);
  }

  template <uint64_t Min, uint64_t Max>
  std::optional<uint64_t> integer(const YAML::Node& node, const std::string& path) {
    return read_uint(p_, node, path, Min, Max);
  }

  template <const auto& Names>
  std::optional<std::remove_cvref_t<decltype(Names[0].value)>> enumerated(const YAML::Node& node,
                                                                          const std::string& path) {
    return read_enum(p_, node, path, Names);
  }

  std::optional<Duration> duration(const YAML::Node& node, const std::string& path) {
    return read_duration(p_, node, path);
  }

  std::optional<Duration> positive_duration(const YAML::Node& node, const std::string& path) {
    auto value = read_duration(p_, node, path);
    if (value && value->count() == 0) {
      p_.add(node, path, "must be longer than 0");
      return std::nullopt;
    }
    return value;
  }

  // Where snisplice binds: port 0 leaves the choice to the kernel (handy in tests).
  std::optional<SocketAddress> bind_address(const YAML::Node& node, const std::string& path) {
    return read_address(p_, node, path, true);
  }

  // Where snisplice connects: a port is needed.
  std::optional<SocketAddress> destination(const YAML::Node& node, const std::string& path) {
    return read_address(p_, node, path, false);
  }

  std::optional<Cidr> cidr(const YAML::Node& node, const std::string& path) {
    return read_cidr(p_, node, path);
  }

  std::optional<std::vector<Cidr>> cidrs(const YAML::Node& node, const std::string& path) {
    return list_of(node, path, &Loader::cidr);
  }

  std::optional<uint16_t> port(const YAML::Node& node, const std::string& path) {
    if (auto port = read_uint(p_, node, path, 1, 65535)) return static_cast<uint16_t>(*port);
    return std::nullopt;
  }

  std::optional<unsigned> workers(const YAML::Node& node, const std::string& path) {
    if (node.IsScalar()) {
      if (node.Scalar() == "auto") return 0u;
      if (auto count = read_uint(p_, node, path, 1, kMaxWorkers))
        return static_cast<unsigned>(*count);
      return std::nullopt;
    }
    p_.add(node, path, "expected \"auto\" or a positive integer, got " + detail::describe(node));
    return std::nullopt;
  }

  std::optional<std::string> absolute_path(const YAML::Node& node, const std::string& path) {
    auto text = read_string(p_, node, path);
    if (text && !text->starts_with('/')) {
      p_.add(node, path, "must be an absolute path, got " + quote(*text));
      return std::nullopt;
    }
    return text;
  }

  // Listener, table and backend names: used in logs, metric labels and references.
  std::optional<std::string> name(const YAML::Node& node, const std::string& path) {
    auto text = read_string(p_, node, path);
    if (text && text->empty()) {
      p_.add(node, path, "must not be empty");
      return std::nullopt;
    }
    return text;
  }

  // ---- listeners ----

  void read_listeners(const YAML::Node& node, Config& config) {
    bool is_list =
        read_list(p_, node, "listeners", [&](const YAML::Node& item, const std::string& path) {
          read_listener(item, path, config);
        });
    if (is_list && node.size() == 0) p_.add(node, "listeners", "at least one listener is needed");
  }

  void read_listener(const YAML::Node& node, const std::string& path, Config& config) {
    MapReader map(p_, node, path, kListenerKeys);
    if (!map.is_map()) return;
    Listener listener;
    ListenerSource source{path, {}, {}, {}};
    listener.line = detail::line_of(node);
    if (auto name_node = map.require("name")) {
      if (auto text = name(*name_node, map.child_path("name"))) {
        listener.name = *text;
        source.name = *name_node;
      }
    }
    if (auto listen = map.require("listen")) {
      bool is_list = read_list(p_, *listen, map.child_path("listen"),
                               [&](const YAML::Node& item, const std::string& item_path) {
                                 if (auto address = bind_address(item, item_path)) {
                                   listener.listen.push_back(*address);
                                   source.listen.push_back(item);
                                 }
                               });
      if (is_list && listen->size() == 0)
        p_.add(*listen, map.child_path("listen"), "at least one address is needed");
    }
    read_key(map, "protocol", listener.protocol, &Loader::enumerated<kProtocolNames>);
    if (auto table = map.require("table")) {
      if (auto text = name(*table, map.child_path("table"))) {
        listener.table = *text;
        source.table = *table;
      }
    }
    read_key(map, "transparent", listener.transparent, &Loader::boolean);
    read_key(map, "proxy_protocol_from", listener.proxy_protocol_from, &Loader::cidrs);
    read_key(map, "client_hello_timeout", listener.client_hello_timeout,
             &Loader::positive_duration);
    read_key(map, "client_hello_max_bytes", listener.client_hello_max_bytes,
             &Loader::integer<kMinHelloBytes, kMaxHelloBytes>);
    read_key(map, "max_connections", listener.max_connections, &Loader::integer<1, UINT32_MAX>);
    read_key(map, "per_ip_max_connections", listener.per_ip_max_connections,
             &Loader::integer<1, UINT32_MAX>);
    config.listeners.push_back(std::move(listener));
    listener_sources_.push_back(std::move(source));
  }

  // ---- tables ----

  void read_tables(const YAML::Node& node, Config& config) {
    MapReader tables(p_, node, "tables", "table");
    for (const auto& [table_name, routes] : tables.entries()) {
      Table table;
      table.name = table_name;
      table.line = tables.key_line(table_name);
      route_sources_.emplace_back();
      read_routes(routes, tables.child_path(table_name), table, route_sources_.back());
      config.tables.push_back(std::move(table));
    }
  }

  void read_routes(const YAML::Node& node, const std::string& path, Table& table,
                   std::vector<RouteSource>& sources) {
    std::map<std::string, PatternUse> patterns;  // by pattern key
    read_list(p_, node, path, [&](const YAML::Node& item, const std::string& item_path) {
      RouteSource source{item_path, {}, {}, {}, {}, {}};
      auto route = read_route(item, item_path, source);
      if (!route || !claim_pattern(patterns[source.pattern_key], *route, source)) return;
      table.routes.push_back(std::move(*route));
      sources.push_back(std::move(source));
    });
  }

  // What a table already routes for one pattern.
  struct PatternUse {
    bool unconditioned = false;
    std::set<std::set<std::string>> alpn_sets;
    std::map<std::string, int> alpn_lines;  // alpn id -> line of the route it conditions
  };

  // Records that `route` uses its pattern, or reports why it cannot: the same pattern and alpn
  // set twice, or an alpn id that would send one pattern two ways (the router refuses both).
  bool claim_pattern(PatternUse& use, const Route& route, const RouteSource& source) {
    std::set<std::string> ids(route.alpn.begin(), route.alpn.end());
    if (route.alpn.empty() ? use.unconditioned : use.alpn_sets.contains(ids)) {
      std::string message = "duplicate pattern " + quote(route.host);
      if (!route.alpn.empty()) message += " with alpn [" + quoted_list(route.alpn) + "]";
      p_.add(*source.host, source.path + ".host", message);
      return false;
    }
    bool good = true;
    std::set<std::string_view> listed;
    for (size_t i = 0; i < route.alpn.size(); ++i) {
      const std::string& id = route.alpn[i];
      std::string id_path = source.path + ".alpn[" + std::to_string(i) + "]";
      int line = detail::line_of((*source.alpn)[i]);
      if (!listed.insert(id).second) {
        p_.add(line, id_path, "alpn " + quote(id) + " listed twice");
        good = false;
      } else if (auto other = use.alpn_lines.find(id); other != use.alpn_lines.end()) {
        p_.add(line, id_path,
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

  // A route whose every part is good, or nullopt (its problems reported).
  std::optional<Route> read_route(const YAML::Node& node, const std::string& path,
                                  RouteSource& source) {
    MapReader map(p_, node, path, kRouteKeys);
    if (!map.is_map()) return std::nullopt;
    Route route;
    bool good = false;
    if (auto host = map.require("host")) {
      route.line = detail::line_of(*host);
      source.host = *host;
      if (auto text = read_string(p_, *host, map.child_path("host"))) {
        route.host = *text;
        auto key = host_pattern_key(*text);
        if (key)
          source.pattern_key = std::move(*key);
        else
          p_.add(*host, map.child_path("host"),
                 "bad host pattern " + quote(*text) + ": " + key.error());
        good = key.has_value();
      }
    }
    if (auto alpn = map.find("alpn")) {
      source.alpn = *alpn;
      auto ids = list_of(*alpn, map.child_path("alpn"), &Loader::alpn_id);
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
      p_.add(node, path,
             targets == 0 ? "route needs one of backend, resolve or action"
                          : "route has more than one of backend, resolve and action");
      return std::nullopt;
    }
    if (backend) {
      route.action = RouteAction::backend;
      auto backend_name = name(*backend, map.child_path("backend"));
      if (backend_name) {
        route.backend = *backend_name;
        source.backend = *backend;
      }
      good = good && backend_name;
    } else if (resolve) {
      route.action = RouteAction::resolve;
      good = read_resolve(*resolve, map.child_path("resolve"), route.resolve, source) && good;
    } else {
      auto value = enumerated<kRouteActionNames>(*action, map.child_path("action"));
      if (value) {
        route.action = *value;
        if (*value == RouteAction::original_dst) source.original = *action;
      }
      good = good && value;
    }
    if (!good) return std::nullopt;
    return route;
  }

  std::optional<std::string> alpn_id(const YAML::Node& node, const std::string& path) {
    auto id = read_string(p_, node, path);
    if (!id) return std::nullopt;
    if (id->empty() || id->size() > kMaxAlpnId) {
      p_.add(node, path, id->empty() ? "empty ALPN id" : "ALPN id longer than 255 bytes");
      return std::nullopt;
    }
    return id;
  }

  bool read_resolve(const YAML::Node& node, const std::string& path, ResolveTarget& target,
                    RouteSource& source) {
    MapReader map(p_, node, path, kResolveKeys);
    if (!map.is_map()) return false;
    bool good = false;
    if (auto port_node = map.require("port")) {
      if (port_node->IsScalar() && port_node->Scalar() == "original") {
        target.port = std::nullopt;
        source.original = *port_node;
        good = true;
      } else if (auto number = resolve_port(*port_node, map.child_path("port"))) {
        target.port = *number;
        good = true;
      }
    }
    if (auto networks = map.find("allow_networks")) {
      if (auto parsed = cidrs(*networks, map.child_path("allow_networks")))
        target.allow_networks = std::move(*parsed);
      else
        good = false;
    }
    return good;
  }

  std::optional<uint16_t> resolve_port(const YAML::Node& node, const std::string& path) {
    unsigned value = 0;
    if (node.IsScalar()) {
      const std::string& text = node.Scalar();
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (!text.empty() && ec == std::errc{} && end == text.data() + text.size() && value >= 1 &&
          value <= 65535)
        return static_cast<uint16_t>(value);
    }
    p_.add(node, path,
           "bad port " + detail::describe(node) + " (expected 1-65535 or \"original\")");
    return std::nullopt;
  }

  // ---- backends ----

  void read_backends(const YAML::Node& node, Config& config) {
    MapReader backends(p_, node, "backends", "backend");
    for (const auto& [backend_name, value] : backends.entries()) {
      Backend backend;
      backend.name = backend_name;
      backend.line = backends.key_line(backend_name);
      read_backend(value, backends.child_path(backend_name), backend);
      config.backends.push_back(std::move(backend));
    }
  }

  void read_backend(const YAML::Node& node, const std::string& path, Backend& backend) {
    MapReader map(p_, node, path, kBackendKeys);
    if (!map.is_map()) return;
    if (auto servers = map.require("servers")) {
      read_key(map, "servers", backend.servers, &Loader::destinations);
      if (servers->IsSequence() && servers->size() == 0)
        p_.add(*servers, map.child_path("servers"), "backend has no servers");
    }
    read_key(map, "balance", backend.balance, &Loader::enumerated<kBalanceNames>);
    read_key(map, "proxy_protocol", backend.proxy_protocol,
             &Loader::enumerated<kProxyProtocolNames>);
    read_key(map, "connect_timeout", backend.connect_timeout, &Loader::positive_duration);
    if (auto check = map.find("health_check")) {
      MapReader health(p_, *check, map.child_path("health_check"), kHealthCheckKeys);
      backend.health_check.enabled = health.is_map();  // present: enabled
      read_key(health, "interval", backend.health_check.interval, &Loader::positive_duration);
      read_key(health, "timeout", backend.health_check.timeout, &Loader::positive_duration);
    }
  }

  std::optional<std::vector<SocketAddress>> destinations(const YAML::Node& node,
                                                         const std::string& path) {
    return list_of(node, path, &Loader::destination);
  }

  // ---- dns, xdp, metrics, logs, timeouts ----

  void read_dns(const YAML::Node& node, Dns& dns) {
    MapReader map(p_, node, "dns", kDnsKeys);
    read_key(map, "servers", dns.servers, &Loader::destinations);
    read_key(map, "timeout", dns.timeout, &Loader::positive_duration);
    read_key(map, "tries", dns.tries, &Loader::integer<1, 100>);
    // Zero TTL floor, ceiling or negative TTL are meaningful: do not cache.
    read_key(map, "min_ttl", dns.min_ttl, &Loader::duration);
    read_key(map, "max_ttl", dns.max_ttl, &Loader::duration);
    read_key(map, "negative_ttl", dns.negative_ttl, &Loader::duration);
    read_key(map, "cache_size", dns.cache_size, &Loader::integer<1, UINT32_MAX>);
    if (dns.min_ttl > dns.max_ttl) {
      auto where = map.find("min_ttl");
      p_.add(where ? detail::line_of(*where) : map.key_line("max_ttl"), "dns.min_ttl",
             "min_ttl (" + format_duration(dns.min_ttl) + ") is greater than max_ttl (" +
                 format_duration(dns.max_ttl) + ")");
    }
  }

  void read_xdp(const YAML::Node& node, Xdp& xdp) {
    MapReader map(p_, node, "xdp", kXdpKeys);
    read_key(map, "interfaces", xdp.interfaces, &Loader::interfaces);
    read_key(map, "mode", xdp.mode, &Loader::enumerated<kXdpModeNames>);
    read_key(map, "policy", xdp.policy, &Loader::enumerated<kXdpPolicyNames>);
    read_key(map, "ports", xdp.ports, &Loader::ports);
    read_key(map, "allow", xdp.allow, &Loader::cidrs);
    if (auto limit = map.find("rate_limit")) {
      MapReader section(p_, *limit, map.child_path("rate_limit"), kRateLimitKeys);
      auto& rate = xdp.rate_limit;
      read_key(section, "mode", rate.mode, &Loader::enumerated<kRateLimitModeNames>);
      read_key(section, "syn_per_second", rate.syn_per_second, &Loader::integer<1, UINT32_MAX>);
      read_key(section, "burst", rate.burst, &Loader::integer<1, UINT32_MAX>);
      read_key(section, "prefix_v4", rate.prefix_v4, &Loader::integer<1, 32>);
      read_key(section, "prefix_v6", rate.prefix_v6, &Loader::integer<1, 128>);
      read_key(section, "exempt", rate.exempt, &Loader::cidrs);
      refuse_until_supported(*limit, "xdp.rate_limit", rate == XdpRateLimit{});
    }
    if (auto cookie = map.find("syncookie")) {
      MapReader section(p_, *cookie, map.child_path("syncookie"), kSyncookieKeys);
      auto& syncookie = xdp.syncookie;
      read_key(section, "mode", syncookie.mode, &Loader::enumerated<kSyncookieModeNames>);
      read_key(section, "syn_threshold", syncookie.syn_threshold, &Loader::integer<1, UINT32_MAX>);
      refuse_until_supported(*cookie, "xdp.syncookie", syncookie == XdpSyncookie{});
    }
  }

  // A key the contract names whose feature has not landed: its default is accepted, anything
  // else refused, so that no setting is accepted and then ignored.
  void refuse_until_supported(const YAML::Node& node, std::string_view path, bool is_default) {
    if (!is_default) p_.add(node, path, "not supported yet: only the default values are accepted");
  }

  std::optional<std::vector<uint16_t>> ports(const YAML::Node& node, const std::string& path) {
    return list_of(node, path, &Loader::port);
  }

  std::optional<std::vector<std::string>> interfaces(const YAML::Node& node,
                                                     const std::string& path) {
    return list_of(node, path, &Loader::interface);
  }

  std::optional<std::string> interface(const YAML::Node& node, const std::string& path) {
    auto text = read_string(p_, node, path);
    if (text &&
        (text->empty() || text->size() > kMaxInterfaceName ||
         text->find_first_of("/ \t\n") != std::string::npos || *text == "." || *text == "..")) {
      p_.add(node, path, "bad interface name " + quote(*text));
      return std::nullopt;
    }
    return text;
  }

  void read_metrics(const YAML::Node& node, Config& config) {
    MapReader map(p_, node, "metrics", kMetricsKeys);
    read_key(map, "token_file", config.events.token_file, &Loader::string);
    read_key(map, "max_subscribers", config.events.max_subscribers,
             &Loader::integer<0, UINT32_MAX>);
    if (auto token = map.find("token_file"))
      refuse_until_supported(*token, "metrics.token_file", config.events.token_file.empty());
    if (auto subscribers = map.find("max_subscribers"))
      refuse_until_supported(*subscribers, "metrics.max_subscribers",
                             config.events.max_subscribers == Events{}.max_subscribers);
    auto listen = map.find("listen");
    if (!listen) return;
    if (listen->IsScalar() && listen->Scalar().empty()) {  // "": no metrics endpoint
      config.metrics_listen = std::nullopt;
      return;
    }
    if (auto address = bind_address(*listen, "metrics.listen")) {
      config.metrics_listen = *address;
      metrics_listen_ = *listen;
    }
  }

  void read_access_log(const YAML::Node& node, AccessLog& log) {
    auto text = read_string(p_, node, "access_log");
    if (!text) return;
    if (*text == "stdout") {
      log = {AccessLog::Kind::stdout_stream, {}};
    } else if (*text == "off") {
      log = {AccessLog::Kind::off, {}};
    } else if (text->empty()) {
      p_.add(node, "access_log", "expected stdout, off or a file path, got \"\"");
    } else {
      log = {AccessLog::Kind::file, *text};
    }
  }

  void read_timeouts(const YAML::Node& node, Timeouts& timeouts) {
    MapReader map(p_, node, "timeouts", kTimeoutsKeys);
    read_key(map, "idle", timeouts.idle, &Loader::positive_duration);
    // Zero grace: close every connection at once on SIGTERM.
    read_key(map, "shutdown_grace", timeouts.shutdown_grace, &Loader::duration);
  }

  // ---- checks across sections ----

  void check_listener_names(const Config& config) {
    std::map<std::string, int> first_line;
    for (size_t i = 0; i < config.listeners.size(); ++i) {
      const auto& source = listener_sources_[i];
      if (!source.name) continue;
      const auto& name = config.listeners[i].name;
      auto [it, inserted] = first_line.emplace(name, detail::line_of(*source.name));
      if (!inserted)
        p_.add(*source.name, source.path + ".name",
               "duplicate listener name " + quote(name) + " (first at line " +
                   std::to_string(it->second) + ")");
    }
  }

  // Two bind addresses collide when they are equal, or when one is the wildcard of its family
  // on the same port. IPv6 sockets are bound IPV6_V6ONLY, so [::] does not cover IPv4. Port 0
  // leaves the port to the kernel and never collides.
  void check_listen_overlap(const Config& config) {
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
      const auto& source = listener_sources_[i];
      for (size_t k = 0; k < listener.listen.size(); ++k) {
        const auto& address = listener.listen[k];
        if (auto other = clash_with(address)) {
          p_.add(source.listen[k], source.path + ".listen[" + std::to_string(k) + "]",
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
    if (config.metrics_listen && metrics_listen_)
      if (auto other = clash_with(*config.metrics_listen))
        p_.add(*metrics_listen_, "metrics.listen", describe_clash(*config.metrics_listen, *other));
  }

  void check_references(const Config& config) {
    std::set<std::string_view> tables;
    for (const auto& table : config.tables) tables.insert(table.name);
    std::set<std::string_view> backends;
    for (const auto& backend : config.backends) backends.insert(backend.name);
    for (size_t i = 0; i < config.listeners.size(); ++i) {
      const auto& source = listener_sources_[i];
      if (source.table && !tables.contains(config.listeners[i].table))
        p_.add(*source.table, source.path + ".table",
               "undefined table " + quote(config.listeners[i].table));
    }
    for (size_t t = 0; t < config.tables.size(); ++t) {
      const auto& routes = config.tables[t].routes;
      for (size_t r = 0; r < routes.size(); ++r) {
        const auto& source = route_sources_[t][r];
        if (routes[r].action == RouteAction::backend && !backends.contains(routes[r].backend))
          p_.add(*source.backend, source.path + ".backend",
                 "undefined backend " + quote(routes[r].backend));
      }
    }
  }

  // `port: original` and `action: original_dst` need the original destination, which only
  // a transparent (TPROXY) listener knows.
  void check_transparent_only(const Config& config) {
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
        const auto& source = route_sources_[t][r];
        if (!source.original) continue;
        bool is_port = table.routes[r].action == RouteAction::resolve;
        p_.add(*source.original, source.path + (is_port ? ".resolve.port" : ".action"),
               std::string(is_port ? "port \"original\"" : "action \"original_dst\"") +
                   " works only on transparent listeners; table " + quote(table.name) +
                   " is used by non-transparent listener" +
                   (users->second.size() > 1 ? "s " : " ") + quoted_list(users->second));
      }
    }
  }

  Problems& p_;
  std::vector<ListenerSource> listener_sources_;         // parallel to Config::listeners
  std::vector<std::vector<RouteSource>> route_sources_;  // parallel to Config::tables
  std::optional<YAML::Node> metrics_listen_;
};

bool is_document_marker(std::string_view line, std::string_view marker) {
  return line.starts_with(marker) &&
         (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
}

// The line where a second YAML document starts, 0 when there is none. Found by scanning
// rather than with YAML::LoadAll, which loops forever allocating on some malformed input
// (yaml-cpp 0.7; found by fuzz_config). A "---" or "..." at the start of a line is always a
// document marker in YAML, even inside block and quoted scalars.
int second_document_line(std::string_view text) {
  bool seen_content = false;  // of the first document
  bool ended = false;         // by "..."
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (is_document_marker(line, "---")) {
      if (seen_content || ended) return line_number;
      line.remove_prefix(3);
    } else if (is_document_marker(line, "...")) {
      ended = true;
      continue;
    }
    size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || line[first] == '#' || (first == 0 && line[0] == '%'))
      continue;
    if (ended) return line_number;
    seen_content = true;
  }
  return 0;
}

}  // namespace

LoadResult load_config_text(std::string_view yaml, std::string_view file_name) {
  Problems problems(file_name);
  Config config;
  config.source_path = std::string(file_name);
  try {
    if (int line = second_document_line(yaml))
      problems.add(line, "", "syntax error: only one YAML document is allowed");
    Loader(problems).load(YAML::Load(std::string(yaml)), config);
  } catch (const detail::TooManyValues& e) {
    problems.add(e.line, "",
                 "more than " + std::to_string(Problems::kMaxValues) +
                     " values (aliases repeating large parts of the file?)");
  } catch (const YAML::Exception& e) {
    problems.add(e.mark.line < 0 ? 0 : e.mark.line + 1, "", "syntax error: " + e.msg);
  } catch (const std::exception& e) {
    problems.add(0, "", std::string("cannot load: ") + e.what());
  }
  if (!problems.empty()) return tl::unexpected(problems.lines());
  return config;
}

LoadResult load_config_file(const std::string& path) {
  auto failed = [&](int error) {
    return tl::unexpected(
        std::vector<std::string>{path + ": cannot read: " + std::strerror(error)});
  };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return failed(errno);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return failed(errno);
  if (S_ISDIR(info.st_mode)) return failed(EISDIR);
  std::string text;
  char buffer[16384];
  while (true) {
    ssize_t got = ::read(fd.get(), buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return failed(errno);
    if (got == 0) break;
    if (text.size() + static_cast<size_t>(got) > kMaxFileBytes) return failed(EFBIG);
    text.append(buffer, static_cast<size_t>(got));
  }
  return load_config_text(text, path);
}

}  // namespace snisplice::config
