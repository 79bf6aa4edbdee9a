#include "config/load.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

using namespace snisplice;
using namespace snisplice::config;
using namespace std::chrono_literals;

namespace {

// Lines joined with '\n', so line N of the file is the Nth string.
std::string yaml_lines(std::initializer_list<std::string_view> lines) {
  std::string out;
  for (auto line : lines) out.append(line).append("\n");
  return out;
}

// A valid file: one listener, one route, one backend. Tests append to it from line 12.
const std::initializer_list<std::string_view> kMinimal = {
    "listeners:",                         // 1
    "  - name: tls",                      // 2
    "    listen: [\"127.0.0.1:8443\"]",   // 3
    "    table: edge",                    // 4
    "tables:",                            // 5
    "  edge:",                            // 6
    "    - host: \"*\"",                  // 7
    "      backend: web",                 // 8
    "backends:",                          // 9
    "  web:",                             // 10
    "    servers: [\"127.0.0.1:9001\"]",  // 11
};

std::string minimal_plus(std::initializer_list<std::string_view> extra) {
  return yaml_lines(kMinimal) + yaml_lines(extra);
}

std::vector<std::string> errors_of(const std::string& yaml) {
  auto result = load_config_text(yaml, "t.yaml");
  REQUIRE_MESSAGE(!result, yaml);
  return result.error();
}

// The file must be refused with exactly these lines.
void check_errors(const std::string& yaml, const std::vector<std::string>& expected) {
  auto errors = errors_of(yaml);
  CHECK(errors == expected);
  if (errors != expected)
    for (const auto& line : errors) MESSAGE("got: " << line);
}

Config load_ok(const std::string& yaml) {
  auto result = load_config_text(yaml, "t.yaml");
  if (!result)
    for (const auto& line : result.error()) MESSAGE(line);
  REQUIRE(result);
  return std::move(*result);
}

// A file with `tables.edge` holding the given routes (from line 7) and backends web and api.
std::string with_routes(std::initializer_list<std::string_view> routes) {
  std::string out = yaml_lines({
      "listeners:",                        // 1
      "  - name: tls",                     // 2
      "    listen: [\"127.0.0.1:8443\"]",  // 3
      "    table: edge",                   // 4
      "tables:",                           // 5
      "  edge:",                           // 6
  });
  out += yaml_lines(routes);
  out += yaml_lines({
      "backends:",
      "  web: {servers: [\"127.0.0.1:9001\"]}",
      "  api: {servers: [\"127.0.0.1:9002\"]}",
  });
  return out;
}

}  // namespace

TEST_CASE("a minimal file gets every default") {
  Config config = load_ok(yaml_lines(kMinimal));
  CHECK(config.source_path == "t.yaml");
  CHECK(config.workers == 0);
  CHECK(config.user.empty());
  REQUIRE(config.listeners.size() == 1);
  const Listener& listener = config.listeners[0];
  CHECK(listener.name == "tls");
  CHECK(listener.line == 2);
  REQUIRE(listener.listen.size() == 1);
  CHECK(listener.listen[0].to_string() == "127.0.0.1:8443");
  CHECK(listener.protocol == Protocol::tls);
  CHECK(listener.table == "edge");
  CHECK_FALSE(listener.transparent);
  CHECK(listener.proxy_protocol_from.empty());
  CHECK(listener.client_hello_timeout == 5s);
  CHECK(listener.client_hello_max_bytes == 16384);
  CHECK(listener.max_connections == 100000);
  CHECK(listener.per_ip_max_connections == 1000);
  REQUIRE(config.tables.size() == 1);
  CHECK(config.tables[0].name == "edge");
  CHECK(config.tables[0].line == 6);
  REQUIRE(config.tables[0].routes.size() == 1);
  const Route& route = config.tables[0].routes[0];
  CHECK(route.host == "*");
  CHECK(route.alpn.empty());
  CHECK(route.action == RouteAction::backend);
  CHECK(route.backend == "web");
  CHECK(route.line == 7);
  REQUIRE(config.backends.size() == 1);
  const Backend& backend = config.backends[0];
  CHECK(backend.name == "web");
  CHECK(backend.line == 10);
  CHECK(backend.balance == Balance::round_robin);
  CHECK(backend.proxy_protocol == ProxyProtocol::off);
  CHECK(backend.connect_timeout == 3s);
  CHECK_FALSE(backend.health_check.enabled);
  CHECK(config.dns.servers.empty());
  CHECK(config.dns.timeout == 2s);
  CHECK(config.dns.tries == 2);
  CHECK(config.dns.min_ttl == 5s);
  CHECK(config.dns.max_ttl == 300s);
  CHECK(config.dns.negative_ttl == 5s);
  CHECK(config.dns.cache_size == 65536);
  CHECK(config.splice == SpliceMode::automatic);
  CHECK(config.xdp.interfaces.empty());
  CHECK(config.xdp.mode == XdpMode::automatic);
  CHECK(config.xdp.policy == XdpPolicy::enforce);
  CHECK(config.xdp.ports.empty());
  CHECK(config.xdp.allow.empty());
  CHECK(config.bpf_pin_path == "/sys/fs/bpf/snisplice");
  REQUIRE(config.metrics_listen);
  CHECK(config.metrics_listen->to_string() == "127.0.0.1:9446");
  CHECK(config.access_log.kind == AccessLog::Kind::stdout_stream);
  CHECK(config.log_level == LogLevel::info);
  CHECK(config.timeouts.idle == 300s);
  CHECK(config.timeouts.shutdown_grace == 30s);
  CHECK(config.find_table("edge") == &config.tables[0]);
  CHECK(config.find_table("nope") == nullptr);
  CHECK(config.find_backend("web") == &config.backends[0]);
  CHECK(config.find_backend("edge") == nullptr);
}

TEST_CASE("the reference configuration loads with every value it states") {
  const char* path = SNISPLICE_REFERENCE_CONFIG;
  auto result = load_config_file(path);
  if (!result)
    for (const auto& line : result.error()) MESSAGE(line);
  REQUIRE(result);
  const Config& config = *result;
  CHECK(config.source_path == path);
  CHECK(config.workers == 0);
  CHECK(config.user == "");
  REQUIRE(config.listeners.size() == 3);
  const Listener& tls = config.listeners[0];
  CHECK(tls.name == "tls");
  REQUIRE(tls.listen.size() == 1);
  CHECK(tls.listen[0].to_string() == "127.0.0.1:8443");
  CHECK(tls.protocol == Protocol::tls);
  CHECK(tls.table == "edge");
  CHECK_FALSE(tls.transparent);
  CHECK(tls.proxy_protocol_from.empty());
  CHECK(tls.client_hello_timeout == 5s);
  CHECK(tls.client_hello_max_bytes == 16384);
  CHECK(tls.max_connections == 100000);
  CHECK(tls.per_ip_max_connections == 1000);
  CHECK(config.listeners[1].name == "plain");
  CHECK(config.listeners[1].protocol == Protocol::http);
  CHECK(config.listeners[1].listen[0].to_string() == "127.0.0.1:8080");
  CHECK(config.listeners[2].name == "intercept");
  CHECK(config.listeners[2].transparent);
  CHECK(config.listeners[2].table == "egress");

  const Table* edge = config.find_table("edge");
  REQUIRE(edge);
  REQUIRE(edge->routes.size() == 6);
  CHECK(edge->routes[0].host == "api.example.com");
  CHECK(edge->routes[0].alpn == std::vector<std::string>{"acme-tls/1"});
  CHECK(edge->routes[0].action == RouteAction::backend);
  CHECK(edge->routes[0].backend == "acme");
  CHECK(edge->routes[1].host == "api.example.com");
  CHECK(edge->routes[1].alpn.empty());
  CHECK(edge->routes[1].backend == "api");
  CHECK(edge->routes[2].host == "*.example.com");
  CHECK(edge->routes[2].backend == "web");
  CHECK(edge->routes[3].host == ".example.org");
  CHECK(edge->routes[3].action == RouteAction::resolve);
  CHECK(edge->routes[3].resolve.port == 443);
  CHECK_FALSE(edge->routes[3].resolve.allow_networks);
  CHECK(edge->routes[4].host == "~shop[0-9]+\\.example\\.net");
  CHECK(edge->routes[4].resolve.port == 443);
  REQUIRE(edge->routes[4].resolve.allow_networks);
  REQUIRE(edge->routes[4].resolve.allow_networks->size() == 1);
  CHECK((*edge->routes[4].resolve.allow_networks)[0].to_string() == "203.0.113.0/24");
  CHECK(edge->routes[5].host == "*");
  CHECK(edge->routes[5].action == RouteAction::reject);

  const Table* egress = config.find_table("egress");
  REQUIRE(egress);
  REQUIRE(egress->routes.size() == 3);
  CHECK(egress->routes[0].host == ".partner.example");
  CHECK(egress->routes[0].action == RouteAction::resolve);
  CHECK_FALSE(egress->routes[0].resolve.port);
  CHECK(egress->routes[1].action == RouteAction::original_dst);
  CHECK(egress->routes[2].action == RouteAction::reject);

  const Backend* api = config.find_backend("api");
  REQUIRE(api);
  REQUIRE(api->servers.size() == 2);
  CHECK(api->servers[0].to_string() == "127.0.0.1:9001");
  CHECK(api->servers[1].to_string() == "127.0.0.1:9002");
  CHECK(api->balance == Balance::round_robin);
  CHECK(api->proxy_protocol == ProxyProtocol::v2);
  CHECK(api->connect_timeout == 3s);
  CHECK(api->health_check.enabled);
  CHECK(api->health_check.interval == 5s);
  CHECK(api->health_check.timeout == 1s);
  const Backend* acme = config.find_backend("acme");
  REQUIRE(acme);
  CHECK(acme->servers.at(0).to_string() == "127.0.0.1:9004");
  CHECK_FALSE(acme->health_check.enabled);
  CHECK(acme->proxy_protocol == ProxyProtocol::off);
  REQUIRE(config.find_backend("web"));
  CHECK(config.find_backend("web")->servers.at(0).to_string() == "127.0.0.1:9003");

  CHECK(config.dns.servers.empty());
  CHECK(config.dns.timeout == 2s);
  CHECK(config.dns.tries == 2);
  CHECK(config.dns.min_ttl == 5s);
  CHECK(config.dns.max_ttl == 300s);
  CHECK(config.dns.negative_ttl == 5s);
  CHECK(config.dns.cache_size == 65536);
  CHECK(config.splice == SpliceMode::automatic);
  CHECK(config.xdp.interfaces.empty());
  CHECK(config.xdp.mode == XdpMode::automatic);
  CHECK(config.xdp.policy == XdpPolicy::enforce);
  CHECK(config.xdp.ports.empty());
  REQUIRE(config.xdp.allow.size() == 2);
  CHECK(config.xdp.allow[0].to_string() == "127.0.0.0/8");
  CHECK(config.xdp.allow[1].to_string() == "::1/128");
  CHECK(config.xdp.rate_limit == XdpRateLimit{});
  CHECK(config.xdp.syncookie == XdpSyncookie{});
  CHECK(config.bpf_pin_path == "/sys/fs/bpf/snisplice");
  REQUIRE(config.metrics_listen);
  CHECK(config.metrics_listen->to_string() == "127.0.0.1:9446");
  CHECK(config.events == Events{});
  CHECK(config.access_log.kind == AccessLog::Kind::stdout_stream);
  CHECK(config.log_level == LogLevel::info);
  CHECK(config.timeouts.idle == 300s);
  CHECK(config.timeouts.shutdown_grace == 30s);
}

TEST_CASE("the SYN-defence and live-event keys are read with their values") {
  const Config config = load_ok(minimal_plus(
      {"xdp:", "  rate_limit: {mode: enforce, syn_per_second: 20, burst: 40, prefix_v4: 24,"
               " prefix_v6: 48, exempt: [\"10.0.0.0/8\"]}",
       "  syncookie: {mode: auto, syn_threshold: 5000}",
       "metrics: {token_file: /etc/snisplice/token, max_subscribers: 4}"}));
  CHECK(config.xdp.rate_limit.mode == RateLimitMode::enforce);
  CHECK(config.xdp.rate_limit.syn_per_second == 20);
  CHECK(config.xdp.rate_limit.burst == 40);
  CHECK(config.xdp.rate_limit.prefix_v4 == 24);
  CHECK(config.xdp.rate_limit.prefix_v6 == 48);
  REQUIRE(config.xdp.rate_limit.exempt.size() == 1);
  CHECK(config.xdp.rate_limit.exempt[0].to_string() == "10.0.0.0/8");
  CHECK(config.xdp.syncookie.mode == SyncookieMode::automatic);
  CHECK(config.xdp.syncookie.syn_threshold == 5000);
  CHECK(config.events.token_file == "/etc/snisplice/token");
  CHECK(config.events.max_subscribers == 4);
  check_errors(minimal_plus({"xdp:", "  rate_limit: {mode: sometimes}"}),
               {"t.yaml:13: xdp.rate_limit.mode: unknown value \"sometimes\" (allowed: off, monitor, "
                "enforce)"});
  check_errors(minimal_plus({"xdp:", "  rate_limit: {prefix_v4: 33}"}),
               {"t.yaml:13: xdp.rate_limit.prefix_v4: must be between 1 and 32, got 33"});
  check_errors(minimal_plus({"metrics: {max_subscribers: 1025}"}),
               {"t.yaml:12: metrics.max_subscribers: must be between 0 and 1024, got 1025"});
}

TEST_CASE("the shipped conf/snisplice.yaml loads") {
  auto result = load_config_file(SNISPLICE_DEFAULT_CONFIG);
  if (!result)
    for (const auto& line : result.error()) MESSAGE(line);
  REQUIRE(result);
  CHECK(result->listeners.size() == 2);
  CHECK(result->xdp.interfaces.empty());
  REQUIRE(result->metrics_listen);
  CHECK(result->metrics_listen->to_string() == "127.0.0.1:9446");
}

TEST_CASE("every key of every section can be set") {
  Config config = load_ok(yaml_lines({
      "workers: 4",
      "user: proxy",
      "listeners:",
      "  - name: v6",
      "    listen: [\"[::1]:443\", \"127.0.0.2:443\"]",
      "    protocol: http",
      "    table: edge",
      "    transparent: true",
      "    proxy_protocol_from: [\"10.0.0.0/8\", \"2001:db8::/32\"]",
      "    client_hello_timeout: 250ms",
      "    client_hello_max_bytes: 1024",
      "    max_connections: 10",
      "    per_ip_max_connections: 2",
      "tables:",
      "  edge:",
      "    - host: Api.Example.COM.",
      "      alpn: [h2, \"http/1.1\"]",
      "      resolve: {port: original, allow_networks: []}",
      "    - host: \".intranet\"",
      "      action: original_dst",
      "backends:",
      "  unused:",
      "    servers: [\"[2001:db8::1]:443\"]",
      "    balance: source_hash",
      "    proxy_protocol: v1",
      "    connect_timeout: 2m",
      "    health_check: {}",
      "dns:",
      "  servers: [\"9.9.9.9:53\", \"[2620:fe::fe]:53\"]",
      "  timeout: 1h",
      "  tries: 5",
      "  min_ttl: 0s",
      "  max_ttl: 0s",
      "  negative_ttl: 0s",
      "  cache_size: 1",
      "splice: userspace",
      "xdp:",
      "  interfaces: [eth0, lo]",
      "  mode: generic",
      "  policy: monitor",
      "  ports: [443, 1]",
      "  allow: [\"0.0.0.0/0\"]",
      "bpf_pin_path: /sys/fs/bpf/other",
      "metrics:",
      "  listen: \"\"",
      "access_log: /var/log/snisplice.json",
      "log_level: debug",
      "timeouts:",
      "  idle: 1s",
      "  shutdown_grace: 0s",
  }));
  CHECK(config.workers == 4);
  CHECK(config.user == "proxy");
  const Listener& listener = config.listeners.at(0);
  CHECK(listener.listen.at(0).to_string() == "[::1]:443");
  CHECK(listener.protocol == Protocol::http);
  CHECK(listener.transparent);
  CHECK(listener.proxy_protocol_from.at(1).to_string() == "2001:db8::/32");
  CHECK(listener.client_hello_timeout == 250ms);
  CHECK(listener.client_hello_max_bytes == 1024);
  CHECK(listener.max_connections == 10);
  CHECK(listener.per_ip_max_connections == 2);
  const Route& route = config.tables.at(0).routes.at(0);
  CHECK(route.host == "Api.Example.COM.");
  CHECK(route.alpn == std::vector<std::string>{"h2", "http/1.1"});
  CHECK_FALSE(route.resolve.port);
  REQUIRE(route.resolve.allow_networks);
  CHECK(route.resolve.allow_networks->empty());
  CHECK(config.tables.at(0).routes.at(1).action == RouteAction::original_dst);
  const Backend& backend = config.backends.at(0);
  CHECK(backend.servers.at(0).to_string() == "[2001:db8::1]:443");
  CHECK(backend.balance == Balance::source_hash);
  CHECK(backend.proxy_protocol == ProxyProtocol::v1);
  CHECK(backend.connect_timeout == 2min);
  CHECK(backend.health_check.enabled);
  CHECK(backend.health_check.interval == 5s);
  CHECK(backend.health_check.timeout == 1s);
  CHECK(config.dns.servers.size() == 2);
  CHECK(config.dns.timeout == 1h);
  CHECK(config.dns.tries == 5);
  CHECK(config.dns.min_ttl == 0s);
  CHECK(config.dns.max_ttl == 0s);
  CHECK(config.dns.negative_ttl == 0s);
  CHECK(config.dns.cache_size == 1);
  CHECK(config.splice == SpliceMode::userspace);
  CHECK(config.xdp.interfaces == std::vector<std::string>{"eth0", "lo"});
  CHECK(config.xdp.mode == XdpMode::generic);
  CHECK(config.xdp.policy == XdpPolicy::monitor);
  CHECK(config.xdp.ports == std::vector<uint16_t>{443, 1});
  CHECK(config.xdp.allow.at(0).to_string() == "0.0.0.0/0");
  CHECK(config.bpf_pin_path == "/sys/fs/bpf/other");
  CHECK_FALSE(config.metrics_listen);
  CHECK(config.access_log.kind == AccessLog::Kind::file);
  CHECK(config.access_log.path == "/var/log/snisplice.json");
  CHECK(config.log_level == LogLevel::debug);
  CHECK(config.timeouts.idle == 1s);
  CHECK(config.timeouts.shutdown_grace == 0s);
}

TEST_CASE("workers: auto, a positive integer, nothing else") {
  CHECK(load_ok(minimal_plus({"workers: auto"})).workers == 0);
  CHECK(load_ok(minimal_plus({"workers: 16"})).workers == 16);
  check_errors(minimal_plus({"workers: 0"}),
               {"t.yaml:12: workers: must be between 1 and 1024, got 0"});
  check_errors(minimal_plus({"workers: many"}),
               {"t.yaml:12: workers: expected an integer, got \"many\""});
  check_errors(minimal_plus({"workers: [1]"}),
               {"t.yaml:12: workers: expected \"auto\" or a positive integer, got a list"});
}

TEST_CASE("access_log: stdout, off or a path") {
  CHECK(load_ok(minimal_plus({"access_log: stdout"})).access_log.kind ==
        AccessLog::Kind::stdout_stream);
  CHECK(load_ok(minimal_plus({"access_log: off"})).access_log.kind == AccessLog::Kind::off);
  auto file = load_ok(minimal_plus({"access_log: log.json"})).access_log;
  CHECK(file.kind == AccessLog::Kind::file);
  CHECK(file.path == "log.json");
  check_errors(minimal_plus({"access_log: \"\""}),
               {"t.yaml:12: access_log: expected stdout, off or a file path, got \"\""});
}

TEST_CASE("metrics.listen: an address, or empty to disable") {
  CHECK_FALSE(load_ok(minimal_plus({"metrics: {listen: \"\"}"})).metrics_listen);
  auto moved = load_ok(minimal_plus({"metrics: {listen: \"[::1]:9000\"}"})).metrics_listen;
  REQUIRE(moved);
  CHECK(moved->to_string() == "[::1]:9000");
  check_errors(minimal_plus({"metrics:", "  listen: \"127.0.0.1:8443\""}),
               {"t.yaml:13: metrics.listen: address 127.0.0.1:8443 is already used by listener "
                "\"tls\" (line 2)"});
  check_errors(minimal_plus({"metrics:", "  listen: \"0.0.0.0:8443\""}),
               {"t.yaml:13: metrics.listen: 0.0.0.0:8443 overlaps 127.0.0.1:8443 by listener "
                "\"tls\" (line 2)"});
}

TEST_CASE("unknown keys are reported at every level, with a suggestion when close") {
  check_errors(yaml_lines({
                   "listeners:",                                    // 1
                   "  - name: tls",                                 // 2
                   "    lisen: [\"127.0.0.1:8443\"]",               // 3
                   "    listen: [\"127.0.0.1:8443\"]",              // 4
                   "    table: edge",                               // 5
                   "tables:",                                       // 6
                   "  edge:",                                       // 7
                   "    - host: \"*\"",                             // 8
                   "      backend: web",                            // 9
                   "      weight: 3",                               // 10
                   "backends:",                                     // 11
                   "  web:",                                        // 12
                   "    servers: [\"127.0.0.1:9001\"]",             // 13
                   "    health_check: {interval: 1s, timout: 1s}",  // 14
                   "dns: {ttl: 5s}",                                // 15
                   "xdp: {interface: [eth0]}",                      // 16
                   "metrics: {address: \"\"}",                      // 17
                   "timeouts: {idle: 1s, connect: 1s}",             // 18
                   "worker: 2",                                     // 19
                   "Splice: auto",                                  // 20
               }),
               {
                   "t.yaml:3: listeners[0].lisen: unknown key \"lisen\" (did you mean 'listen'?)",
                   "t.yaml:10: tables.edge[0].weight: unknown key \"weight\"",
                   "t.yaml:14: backends.web.health_check.timout: unknown key \"timout\" (did you "
                   "mean 'timeout'?)",
                   "t.yaml:15: dns.ttl: unknown key \"ttl\"",
                   "t.yaml:16: xdp.interface: unknown key \"interface\" (did you mean "
                   "'interfaces'?)",
                   "t.yaml:17: metrics.address: unknown key \"address\"",
                   "t.yaml:18: timeouts.connect: unknown key \"connect\"",
                   "t.yaml:19: worker: unknown key \"worker\" (did you mean 'workers'?)",
                   "t.yaml:20: Splice: unknown key \"Splice\" (did you mean 'splice'?)",
               });
}

TEST_CASE("a repeated key is reported") {
  check_errors(minimal_plus({"log_level: info", "log_level: debug"}),
               {"t.yaml:13: log_level: duplicate key \"log_level\" (first at line 12)"});
}

TEST_CASE("wrong types are reported with what was found") {
  check_errors(yaml_lines({
                   "listeners:",                      // 1
                   "  - name: tls",                   // 2
                   "    listen: \"127.0.0.1:8443\"",  // 3
                   "    table: edge",                 // 4
                   "    transparent: 3",              // 5
                   "    max_connections: lots",       // 6
                   "tables:",                         // 7
                   "  edge:",                         // 8
                   "    host: \"*\"",                 // 9
                   "backends: [web]",                 // 10
                   "dns: 5",                          // 11
                   "user: {name: x}",                 // 12
                   "xdp:",                            // 13
                   "  interfaces:",                   // 14
                   "timeouts: []",                    // 15
               }),
               {
                   "t.yaml:3: listeners[0].listen: expected a list, got \"127.0.0.1:8443\"",
                   "t.yaml:5: listeners[0].transparent: expected true or false, got \"3\"",
                   "t.yaml:6: listeners[0].max_connections: expected an integer, got \"lots\"",
                   "t.yaml:9: tables.edge: expected a list, got a mapping",
                   "t.yaml:10: backends: expected a mapping, got a list",
                   "t.yaml:11: dns: expected a mapping, got \"5\"",
                   "t.yaml:12: user: expected a string, got a mapping",
                   "t.yaml:14: xdp.interfaces: missing value",
                   "t.yaml:15: timeouts: expected a mapping, got a list",
               });
}

TEST_CASE("required keys are reported where their parent starts") {
  check_errors(yaml_lines({
                   "listeners:",                    // 1
                   "  - protocol: tls",             // 2
                   "tables:",                       // 3
                   "  edge:",                       // 4
                   "    - backend: web",            // 5
                   "backends:",                     // 6
                   "  web: {balance: least_conn}",  // 7
               }),
               {
                   "t.yaml:2: listeners[0].name: missing required key",
                   "t.yaml:2: listeners[0].listen: missing required key",
                   "t.yaml:2: listeners[0].table: missing required key",
                   "t.yaml:5: tables.edge[0].host: missing required key",
                   "t.yaml:7: backends.web.servers: missing required key",
               });
  check_errors("", {"t.yaml:1: listeners: missing required key"});
  check_errors("listeners: []\n", {"t.yaml:1: listeners: at least one listener is needed"});
}

TEST_CASE("bad durations") {
  check_errors(minimal_plus({"timeouts:", "  idle: 5", "  shutdown_grace: 1m30s"}),
               {
                   "t.yaml:13: timeouts.idle: bad duration \"5\" (expected a number and a unit: "
                   "ms, s, m or h, e.g. \"250ms\", \"5s\")",
                   "t.yaml:14: timeouts.shutdown_grace: bad duration \"1m30s\" (expected a "
                   "number and a unit: ms, s, m or h, e.g. \"250ms\", \"5s\")",
               });
  check_errors(minimal_plus({"timeouts: {idle: 0s}"}),
               {"t.yaml:12: timeouts.idle: must be longer than 0"});
}

TEST_CASE("bad addresses") {
  check_errors(yaml_lines({
                   "listeners:",                                     // 1
                   "  - name: tls",                                  // 2
                   "    listen: [\"localhost:8443\", \"::1:443\"]",  // 3
                   "    table: edge",                                // 4
                   "tables:",                                        // 5
                   "  edge: [{host: \"*\", backend: web}]",          // 6
                   "backends:",                                      // 7
                   "  web:",                                         // 8
                   "    servers:",                                   // 9
                   "      - 127.0.0.1",                              // 10
                   "      - \"127.0.0.1:0\"",                        // 11
                   "dns: {servers: [\"1.1.1.1:99999\"]}",            // 12
               }),
               {
                   "t.yaml:3: listeners[0].listen[0]: bad address \"localhost:8443\" (expected "
                   "\"ip:port\" or \"[ipv6]:port\")",
                   "t.yaml:3: listeners[0].listen[1]: bad address \"::1:443\" (expected "
                   "\"ip:port\" or \"[ipv6]:port\")",
                   "t.yaml:10: backends.web.servers[0]: bad address \"127.0.0.1\" (expected "
                   "\"ip:port\" or \"[ipv6]:port\")",
                   "t.yaml:11: backends.web.servers[1]: bad port 0 in \"127.0.0.1:0\"",
                   "t.yaml:12: dns.servers[0]: bad address \"1.1.1.1:99999\" (expected "
                   "\"ip:port\" or \"[ipv6]:port\")",
               });
}

TEST_CASE("bad CIDRs") {
  check_errors(minimal_plus({"xdp:",
                             "  allow: [\"10.0.0.0/33\", \"fe80::/129\", \"10.0.0.0/\", "
                             "\"example.com/8\"]"}),
               {
                   "t.yaml:13: xdp.allow[0]: bad CIDR \"10.0.0.0/33\" (expected e.g. "
                   "\"10.0.0.0/8\" or \"2001:db8::/32\")",
                   "t.yaml:13: xdp.allow[1]: bad CIDR \"fe80::/129\" (expected e.g. "
                   "\"10.0.0.0/8\" or \"2001:db8::/32\")",
                   "t.yaml:13: xdp.allow[2]: bad CIDR \"10.0.0.0/\" (expected e.g. "
                   "\"10.0.0.0/8\" or \"2001:db8::/32\")",
                   "t.yaml:13: xdp.allow[3]: bad CIDR \"example.com/8\" (expected e.g. "
                   "\"10.0.0.0/8\" or \"2001:db8::/32\")",
               });
}

TEST_CASE("bad resolve ports") {
  check_errors(with_routes({
                   "    - host: a.example",                // 7
                   "      resolve: {port: 0}",             // 8
                   "    - host: b.example",                // 9
                   "      resolve: {port: 65536}",         // 10
                   "    - host: c.example",                // 11
                   "      resolve: {port: https}",         // 12
                   "    - host: d.example",                // 13
                   "      resolve: {allow_networks: []}",  // 14
               }),
               {
                   "t.yaml:8: tables.edge[0].resolve.port: bad port \"0\" (expected 1-65535 or "
                   "\"original\")",
                   "t.yaml:10: tables.edge[1].resolve.port: bad port \"65536\" (expected 1-65535 "
                   "or \"original\")",
                   "t.yaml:12: tables.edge[2].resolve.port: bad port \"https\" (expected 1-65535 "
                   "or \"original\")",
                   "t.yaml:14: tables.edge[3].resolve.port: missing required key",
               });
}

TEST_CASE("xdp ports out of range") {
  check_errors(minimal_plus({"xdp:", "  ports: [0, 443, 65536]"}),
               {
                   "t.yaml:13: xdp.ports[0]: must be between 1 and 65535, got 0",
                   "t.yaml:13: xdp.ports[2]: must be between 1 and 65535, got 65536",
               });
}

TEST_CASE("a host regex must compile with RE2") {
  check_errors(with_routes({"    - host: \"~shop(\"", "      backend: web"}),
               {"t.yaml:7: tables.edge[0].host: bad host pattern \"~shop(\": bad regex: missing "
                "): shop("});
}

TEST_CASE("host pattern syntax is checked") {
  check_errors(with_routes({
                   "    - host: \"a.*.example\"",     // 7
                   "      backend: web",              // 8
                   "    - host: \"exa mple.com\"",    // 9
                   "      backend: web",              // 10
                   "    - host: \"*.\"",              // 11
                   "      backend: web",              // 12
                   "    - host: \"a..b\"",            // 13
                   "      backend: web",              // 14
                   "    - host: \"bücher.example\"",  // 15
                   "      backend: web",              // 16
               }),
               {
                   "t.yaml:7: tables.edge[0].host: bad host pattern \"a.*.example\": a wildcard "
                   "'*' is allowed only as a leading \"*.\" or alone",
                   "t.yaml:9: tables.edge[1].host: bad host pattern \"exa mple.com\": invalid "
                   "character ' '",
                   "t.yaml:11: tables.edge[2].host: bad host pattern \"*.\": empty name",
                   "t.yaml:13: tables.edge[3].host: bad host pattern \"a..b\": empty label",
               });
}

TEST_CASE("duplicate patterns within a table, ignoring case, one trailing dot and alpn order") {
  check_errors(with_routes({
                   "    - host: \"*.example.com\"",    // 7
                   "      backend: web",               // 8
                   "    - host: \"api.example.com\"",  // 9
                   "      alpn: [h2, acme-tls/1]",     // 10
                   "      backend: web",               // 11
                   "    - host: \"*.Example.COM.\"",   // 12
                   "      backend: api",               // 13
                   "    - host: \"API.example.com\"",  // 14
                   "      alpn: [acme-tls/1, h2]",     // 15
                   "      backend: api",               // 16
                   "    - host: \"api.example.com\"",  // 17
                   "      alpn: [http/1.1]",           // 18
                   "      backend: api",               // 19
                   "    - host: \"~a\"",               // 20
                   "      backend: api",               // 21
                   "    - host: \"~A\"",               // 22
                   "      backend: api",               // 23
                   "    - host: \"~a\"",               // 24
                   "      backend: api",               // 25
               }),
               {
                   "t.yaml:12: tables.edge[2].host: duplicate pattern \"*.Example.COM.\"",
                   "t.yaml:14: tables.edge[3].host: duplicate pattern \"API.example.com\" with "
                   "alpn [\"acme-tls/1\", \"h2\"]",
                   "t.yaml:24: tables.edge[7].host: duplicate pattern \"~a\"",
               });
}

TEST_CASE("one alpn id may condition a pattern once") {
  check_errors(with_routes({
                   "    - host: api.example.com",   // 7
                   "      alpn: [h2, acme-tls/1]",  // 8
                   "      backend: web",            // 9
                   "    - host: API.example.com",   // 10
                   "      alpn: [http/1.1, h2]",    // 11
                   "      backend: api",            // 12
                   "    - host: api.example.com",   // 13
                   "      alpn: [x, y, x]",         // 14
                   "      backend: api",            // 15
                   "    - host: api.example.com",   // 16
                   "      alpn: [http/1.1]",        // 17
                   "      backend: api",            // 18
                   "    - host: api.example.com",   // 19
                   "      backend: api",            // 20
               }),
               {
                   "t.yaml:11: tables.edge[1].alpn[1]: alpn \"h2\" already routes pattern "
                   "\"API.example.com\" (line 7)",
                   "t.yaml:14: tables.edge[2].alpn[2]: alpn \"x\" listed twice",
               });
}

TEST_CASE("an IDN pattern and its A-label form are the same pattern") {
  check_errors(with_routes({
                   "    - host: bücher.example",         // 7
                   "      backend: web",                 // 8
                   "    - host: xn--bcher-kva.example",  // 9
                   "      backend: api",                 // 10
                   "    - host: ☃.example",              // 11
                   "      backend: api",                 // 12
               }),
               {
                   "t.yaml:9: tables.edge[1].host: duplicate pattern \"xn--bcher-kva.example\"",
                   "t.yaml:11: tables.edge[2].host: bad host pattern \"☃.example\": not a valid "
                   "international name: string contains a disallowed character",
               });
}

TEST_CASE("the same pattern in two tables is not a duplicate") {
  load_ok(yaml_lines({
      "listeners:",
      "  - {name: a, listen: [\"127.0.0.1:1\"], table: one}",
      "  - {name: b, listen: [\"127.0.0.1:2\"], table: two}",
      "tables:",
      "  one: [{host: \"*\", action: reject}]",
      "  two: [{host: \"*\", action: reject}]",
  }));
}

TEST_CASE("a route has exactly one of backend, resolve or action") {
  check_errors(with_routes({
                   "    - host: a.example",       // 7
                   "    - host: b.example",       // 8
                   "      backend: web",          // 9
                   "      action: reject",        // 10
                   "    - host: c.example",       // 11
                   "      backend: web",          // 12
                   "      resolve: {port: 443}",  // 13
                   "      action: reject",        // 14
               }),
               {
                   "t.yaml:7: tables.edge[0]: route needs one of backend, resolve or action",
                   "t.yaml:8: tables.edge[1]: route has more than one of backend, resolve and "
                   "action",
                   "t.yaml:11: tables.edge[2]: route has more than one of backend, resolve and "
                   "action",
               });
}

TEST_CASE("a route to an undefined backend") {
  check_errors(with_routes({"    - host: a.example", "      backend: nowhere"}),
               {"t.yaml:8: tables.edge[0].backend: undefined backend \"nowhere\""});
}

TEST_CASE("a listener using an undefined table is reported on its table key") {
  check_errors(yaml_lines({
                   "listeners:",                               // 1
                   "  - name: tls",                            // 2
                   "    listen: [\"127.0.0.1:8443\"]",         // 3
                   "    table: edg",                           // 4
                   "tables:",                                  // 5
                   "  edge: [{host: \"*\", action: reject}]",  // 6
               }),
               {"t.yaml:4: listeners[0].table: undefined table \"edg\""});
}

namespace {
// Listeners from line 2 on (one per line), table edge rejecting everything.
std::string with_listeners(std::initializer_list<std::string_view> listeners) {
  std::string out = "listeners:\n" + yaml_lines(listeners);
  out += yaml_lines({"tables:", "  edge: [{host: \"*\", action: reject}]"});
  return out;
}
}  // namespace

TEST_CASE("a listen address used twice, or covered by a wildcard on the same port") {
  check_errors(with_listeners({
                   "  - {name: a, listen: [\"127.0.0.1:443\"], table: edge}",                   // 2
                   "  - {name: b, listen: [\"127.0.0.1:443\"], table: edge}",                   // 3
                   "  - {name: c, listen: [\"0.0.0.0:443\", \"[::]:443\"], table: edge}",       // 4
                   "  - {name: d, listen: [\"[::1]:443\", \"127.0.0.2:80\"], table: edge}",     // 5
                   "  - {name: e, listen: [\"127.0.0.1:80\", \"127.0.0.1:80\"], table: edge}",  // 6
               }),
               {
                   "t.yaml:3: listeners[1].listen[0]: address 127.0.0.1:443 is already used by "
                   "listener \"a\" (line 2)",
                   "t.yaml:4: listeners[2].listen[0]: 0.0.0.0:443 overlaps 127.0.0.1:443 by "
                   "listener \"a\" (line 2)",
                   "t.yaml:5: listeners[3].listen[0]: [::1]:443 overlaps [::]:443 by listener "
                   "\"c\" (line 4)",
                   "t.yaml:6: listeners[4].listen[1]: address 127.0.0.1:80 is already used by "
                   "listener \"e\" (line 6)",
               });
  // IPv6 sockets are IPV6_V6ONLY: [::] and 0.0.0.0 on one port do not collide; port 0 is the
  // kernel's choice each time.
  load_ok(with_listeners({
      "  - {name: a, listen: [\"0.0.0.0:443\"], table: edge}",
      "  - {name: b, listen: [\"[::]:443\"], table: edge}",
      "  - {name: c, listen: [\"127.0.0.1:0\", \"127.0.0.1:0\"], table: edge}",
  }));
}

TEST_CASE("duplicate listener and backend names") {
  check_errors(yaml_lines({
                   "listeners:",                                               // 1
                   "  - {name: tls, listen: [\"127.0.0.1:1\"], table: edge}",  // 2
                   "  - {name: tls, listen: [\"127.0.0.1:2\"], table: edge}",  // 3
                   "tables:",                                                  // 4
                   "  edge: [{host: \"*\", backend: web}]",                    // 5
                   "backends:",                                                // 6
                   "  web: {servers: [\"127.0.0.1:9001\"]}",                   // 7
                   "  web: {servers: [\"127.0.0.1:9002\"]}",                   // 8
                   "tables:",                                                  // 9
               }),
               {
                   "t.yaml:3: listeners[1].name: duplicate listener name \"tls\" (first at line 2)",
                   "t.yaml:8: backends.web: duplicate backend name \"web\" (first at line 7)",
                   "t.yaml:9: tables: duplicate key \"tables\" (first at line 4)",
               });
}

TEST_CASE("a backend with no servers") {
  check_errors(minimal_plus({"  empty:", "    servers: []"}),
               {"t.yaml:13: backends.empty.servers: backend has no servers"});
}

TEST_CASE("original port and original_dst only on transparent listeners") {
  std::string tables = yaml_lines({
      "tables:",                          // 4
      "  egress:",                        // 5
      "    - host: .partner.example",     // 6
      "      resolve: {port: original}",  // 7
      "    - host: .intranet.example",    // 8
      "      action: original_dst",       // 9
      "    - host: \"*\"",                // 10
      "      action: reject",             // 11
  });
  check_errors(yaml_lines({
                   "listeners:",                                               // 1
                   "  - {name: a, listen: [\"127.0.0.1:1\"], table: egress}",  // 2
                   "  - {name: b, listen: [\"127.0.0.1:2\"], table: egress, transparent: true}",
               }) + tables,
               {
                   "t.yaml:7: tables.egress[0].resolve.port: port \"original\" works only on "
                   "transparent listeners; table \"egress\" is used by non-transparent listener "
                   "\"a\"",
                   "t.yaml:9: tables.egress[1].action: action \"original_dst\" works only on "
                   "transparent listeners; table \"egress\" is used by non-transparent listener "
                   "\"a\"",
               });
  load_ok(yaml_lines({
              "listeners:",
              "  - {name: a, listen: [\"127.0.0.1:1\"], table: egress, transparent: true}",
              "  - {name: b, listen: [\"127.0.0.1:2\"], table: egress, transparent: true}",
          }) +
          tables);
}

TEST_CASE("dns: min_ttl above max_ttl, zero tries, zero cache") {
  check_errors(
      minimal_plus({"dns:", "  min_ttl: 10m", "  max_ttl: 300s", "  tries: 0", "  cache_size: 0"}),
      {
          "t.yaml:13: dns.min_ttl: min_ttl (10m) is greater than max_ttl (5m)",
          "t.yaml:15: dns.tries: must be between 1 and 100, got 0",
          "t.yaml:16: dns.cache_size: must be between 1 and 4294967295, got 0",
      });
}

TEST_CASE("client_hello_max_bytes within [1024, 65536]") {
  auto listener_with = [](std::string_view bytes) {
    return with_listeners({"  - name: a", "    listen: [\"127.0.0.1:1\"]", "    table: edge",
                           std::string("    client_hello_max_bytes: ") + std::string(bytes)});
  };
  CHECK(load_ok(listener_with("1024")).listeners[0].client_hello_max_bytes == 1024);
  CHECK(load_ok(listener_with("65536")).listeners[0].client_hello_max_bytes == 65536);
  check_errors(listener_with("1023"),
               {"t.yaml:5: listeners[0].client_hello_max_bytes: must be between 1024 and 65536, "
                "got 1023"});
  check_errors(listener_with("65537"),
               {"t.yaml:5: listeners[0].client_hello_max_bytes: must be between 1024 and 65536, "
                "got 65537"});
  check_errors(listener_with("-1"),
               {"t.yaml:5: listeners[0].client_hello_max_bytes: expected an integer, got \"-1\""});
}

TEST_CASE("alpn ids are 1 to 255 bytes") {
  std::string id_255(255, 'x');
  std::string id_256(256, 'x');
  load_ok(with_routes(
      {"    - host: a.example", "      alpn: [\"" + id_255 + "\"]", "      backend: web"}));
  check_errors(with_routes({
                   "    - host: a.example",                       // 7
                   "      alpn: [\"\", h2, \"" + id_256 + "\"]",  // 8
                   "      backend: web",                          // 9
               }),
               {
                   "t.yaml:8: tables.edge[0].alpn[0]: empty ALPN id",
                   "t.yaml:8: tables.edge[0].alpn[2]: ALPN id longer than 255 bytes",
               });
}

TEST_CASE("unknown enum values list the allowed ones") {
  check_errors(yaml_lines({
                   "listeners:",                            // 1
                   "  - name: tls",                         // 2
                   "    listen: [\"127.0.0.1:8443\"]",      // 3
                   "    protocol: https",                   // 4
                   "    table: edge",                       // 5
                   "tables:",                               // 6
                   "  edge:",                               // 7
                   "    - host: \"*\"",                     // 8
                   "      action: drop",                    // 9
                   "backends:",                             // 10
                   "  web:",                                // 11
                   "    servers: [\"127.0.0.1:9001\"]",     // 12
                   "    balance: random",                   // 13
                   "    proxy_protocol: v3",                // 14
                   "splice: kernel",                        // 15
                   "xdp: {mode: offload, policy: strict}",  // 16
                   "log_level: trace",                      // 17
               }),
               {
                   "t.yaml:4: listeners[0].protocol: unknown value \"https\" (allowed: tls, http)",
                   "t.yaml:9: tables.edge[0].action: unknown value \"drop\" (allowed: reject, "
                   "original_dst)",
                   "t.yaml:13: backends.web.balance: unknown value \"random\" (allowed: "
                   "round_robin, least_conn, source_hash)",
                   "t.yaml:14: backends.web.proxy_protocol: unknown value \"v3\" (allowed: off, "
                   "v1, v2)",
                   "t.yaml:15: splice: unknown value \"kernel\" (allowed: auto, sockmap, "
                   "userspace)",
                   "t.yaml:16: xdp.mode: unknown value \"offload\" (allowed: native, generic, "
                   "auto)",
                   "t.yaml:16: xdp.policy: unknown value \"strict\" (allowed: off, monitor, "
                   "enforce)",
                   "t.yaml:17: log_level: unknown value \"trace\" (allowed: error, warn, info, "
                   "debug)",
               });
}

TEST_CASE("enum values print as they are written") {
  CHECK(to_string(Protocol::http) == "http");
  CHECK(to_string(Balance::least_conn) == "least_conn");
  CHECK(to_string(ProxyProtocol::v2) == "v2");
  CHECK(to_string(SpliceMode::automatic) == "auto");
  CHECK(to_string(XdpMode::generic) == "generic");
  CHECK(to_string(XdpPolicy::monitor) == "monitor");
  CHECK(to_string(LogLevel::warn) == "warn");
  CHECK(to_string(RouteAction::original_dst) == "original_dst");
  CHECK(to_string(RouteAction::resolve) == "resolve");
}

TEST_CASE("other value rules: bpf_pin_path, interface names, empty names") {
  check_errors(minimal_plus({"bpf_pin_path: sys/fs/bpf",
                             "xdp: {interfaces: [\"\", "
                             "averyveryverylongname0]}"}),
               {
                   "t.yaml:12: bpf_pin_path: must be an absolute path, got \"sys/fs/bpf\"",
                   "t.yaml:13: xdp.interfaces[0]: bad interface name \"\"",
                   "t.yaml:13: xdp.interfaces[1]: bad interface name \"averyveryverylongname0\"",
               });
}

TEST_CASE("YAML syntax errors are error lines too") {
  auto errors = errors_of("listeners:\n  - name: tls\n    listen: [\"127.0.0.1:1\"\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].starts_with("t.yaml:"));
  CHECK(errors[0].find(": syntax error: ") != std::string::npos);
  check_errors("a: b\n  c: d\n", {"t.yaml:2: syntax error: illegal map value"});
  check_errors(yaml_lines(kMinimal) + "---\nworkers: 2\n",
               {"t.yaml:12: syntax error: only one YAML document is allowed"});
  check_errors(yaml_lines(kMinimal) + "...\n# done\nworkers: 2\n",
               {"t.yaml:14: syntax error: only one YAML document is allowed"});
  // A leading marker, directives, comments and a final "..." are one document.
  load_ok("%YAML 1.2\n# comment\n---\n" + yaml_lines(kMinimal) + "...\n");
  load_ok("--- # the only one\n" + yaml_lines(kMinimal));
  // yaml-cpp 0.7's LoadAll never returns on this input (fuzz_config found it).
  CHECK_FALSE(load_config_file(SNISPLICE_CONFIG_TEST_DATA "/yaml_cpp_loadall_loop.yaml"));
}

TEST_CASE("a file with many problems reports all of them, in line order") {
  auto result = load_config_file(SNISPLICE_CONFIG_TEST_DATA "/many_errors.yaml");
  REQUIRE_FALSE(result);
  std::string path = SNISPLICE_CONFIG_TEST_DATA "/many_errors.yaml";
  std::vector<std::string> expected = {
      ":2: listeners[0].table: missing required key",
      ":3: listeners[0].protocol: unknown value \"tcp\" (allowed: tls, http)",
      ":5: listeners[0].client_hello_timeout: bad duration \"5 seconds\" (expected a number and "
      "a unit: ms, s, m or h, e.g. \"250ms\", \"5s\")",
      ":7: listeners[1].listen[0]: address 127.0.0.1:8443 is already used by listener \"tls\" "
      "(line 2)",
      ":8: listeners[1].table: undefined table \"missing\"",
      ":12: tables.edge[1].host: duplicate pattern \"*.example.com\"",
      ":14: tables.edge[2].backend: undefined backend \"nowhere\"",
      ":17: backends.web.servers: backend has no servers",
      ":18: backends.web.conect_timeout: unknown key \"conect_timeout\" (did you mean "
      "'connect_timeout'?)",
  };
  for (auto& line : expected) line = path + line;
  CHECK(result.error() == expected);
}

TEST_CASE("an unreadable file is one error line") {
  auto directory = load_config_file(SNISPLICE_CONFIG_TEST_DATA);
  REQUIRE_FALSE(directory);
  CHECK(directory.error() == std::vector<std::string>{std::string(SNISPLICE_CONFIG_TEST_DATA) +
                                                      ": cannot read: Is a directory"});
  auto result = load_config_file("/nonexistent/snisplice.yaml");
  REQUIRE_FALSE(result);
  CHECK(result.error() ==
        std::vector<std::string>{
            "/nonexistent/snisplice.yaml: cannot read: No such file or directory"});
}

TEST_CASE("aliases that repeat a subtree millions of times are refused, not expanded") {
  std::string text = "listeners:\n  - &l {name: a, table: t, listen: &a [";
  for (int i = 0; i < 1100; ++i) text += i ? ", \"127.0.0.1:1\"" : "\"127.0.0.1:1\"";
  text += "]}\n";
  for (int i = 0; i < 1000; ++i) text += "  - *l\n";
  auto errors = errors_of(text);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].starts_with("t.yaml:"));
  CHECK(
      errors[0].ends_with(": more than 1000000 values (aliases repeating large parts of the "
                          "file?)"));
}

TEST_CASE("past 1000 problems, one line counts the rest") {
  std::string text = "listeners:\n  - {name: a, table: t, listen: [";
  for (int i = 0; i < 1500; ++i) text += i ? ", x" : "x";
  text += "]}\ntables: {t: []}\n";
  auto errors = errors_of(text);
  REQUIRE(errors.size() == 1001);
  CHECK(errors[0] ==
        "t.yaml:2: listeners[0].listen[0]: bad address \"x\" (expected \"ip:port\" "
        "or \"[ipv6]:port\")");
  CHECK(errors[1000] == "t.yaml: 500 more problems not shown");
}

TEST_CASE("long values are cut short in messages") {
  std::string long_name(300, 'x');
  auto errors = errors_of(minimal_plus({"log_level: " + long_name}));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "t.yaml:12: log_level: unknown value \"" + std::string(200, 'x') +
                         "...\" (allowed: error, warn, info, debug)");
}
