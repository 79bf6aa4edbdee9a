#pragma once
// The typed configuration: what snisplice.yaml means, with every default filled in.
// A Config is immutable once loaded; the daemon shares it as shared_ptr<const Config> and
// each connection keeps the snapshot it started with.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/net_address.h"

namespace snisplice::config {

using Duration = std::chrono::milliseconds;

enum class Protocol { tls, http };
enum class Balance { round_robin, least_conn, source_hash };
enum class ProxyProtocol { off, v1, v2 };
enum class SpliceMode { automatic, sockmap, userspace };
enum class XdpMode { automatic, native, generic };
enum class XdpPolicy { off, monitor, enforce };
enum class RateLimitMode { off, monitor, enforce };
enum class SyncookieMode { off, automatic, on };
enum class LogLevel { error, warn, info, debug };

struct Listener {
  std::string name;
  std::vector<SocketAddress> listen;
  Protocol protocol = Protocol::tls;
  std::string table;
  bool transparent = false;
  std::vector<Cidr> proxy_protocol_from;
  Duration client_hello_timeout = std::chrono::seconds(5);
  uint32_t client_hello_max_bytes = 16384;
  uint32_t max_connections = 100000;
  uint32_t per_ip_max_connections = 1000;
  int line = 0;  // where it was defined, for messages
};

enum class RouteAction { backend, resolve, reject, original_dst };

struct ResolveTarget {
  std::optional<uint16_t> port;  // nullopt: "original", the port the client originally dialled
  // Present: only these networks may be dialled. Absent: the default policy (every
  // special-purpose range refused).
  std::optional<std::vector<Cidr>> allow_networks;
};

struct Route {
  std::string host;                // the pattern as written: "a.b", "*.b", ".b", "~re", "*"
  std::vector<std::string> alpn;   // empty: no condition
  RouteAction action = RouteAction::reject;
  std::string backend;             // action == backend
  ResolveTarget resolve;           // action == resolve
  int line = 0;
};

struct Table {
  std::string name;
  std::vector<Route> routes;  // in file order
  int line = 0;
};

struct HealthCheck {
  bool enabled = false;
  Duration interval = std::chrono::seconds(5);
  Duration timeout = std::chrono::seconds(1);
};

struct Backend {
  std::string name;
  std::vector<SocketAddress> servers;
  Balance balance = Balance::round_robin;
  ProxyProtocol proxy_protocol = ProxyProtocol::off;
  Duration connect_timeout = std::chrono::seconds(3);
  HealthCheck health_check;
  int line = 0;
};

struct Dns {
  std::vector<SocketAddress> servers;  // empty: /etc/resolv.conf
  Duration timeout = std::chrono::seconds(2);
  uint32_t tries = 2;
  Duration min_ttl = std::chrono::seconds(5);
  Duration max_ttl = std::chrono::seconds(300);
  Duration negative_ttl = std::chrono::seconds(5);
  uint32_t cache_size = 65536;
};

// Per-source SYN token bucket judged in XDP.
struct XdpRateLimit {
  RateLimitMode mode = RateLimitMode::off;
  uint32_t syn_per_second = 50;
  uint32_t burst = 100;
  uint8_t prefix_v4 = 32;
  uint8_t prefix_v6 = 64;
  std::vector<Cidr> exempt;
  bool operator==(const XdpRateLimit&) const = default;
};

// SYN cookies answered by XDP under a flood.
struct XdpSyncookie {
  SyncookieMode mode = SyncookieMode::off;
  uint32_t syn_threshold = 10000;  // SYN/s per port, for mode auto
  bool operator==(const XdpSyncookie&) const = default;
};

struct Xdp {
  std::vector<std::string> interfaces;
  XdpMode mode = XdpMode::automatic;
  XdpPolicy policy = XdpPolicy::enforce;
  std::vector<uint16_t> ports;  // empty: every listener port
  std::vector<Cidr> allow;
  XdpRateLimit rate_limit;
  XdpSyncookie syncookie;
};

// Each event stream holds a server thread for its life, started with the server.
inline constexpr uint32_t kMaxEventSubscribers = 1024;

// The metrics listener's live-event endpoints.
struct Events {
  std::string token_file;  // empty: no token asked for
  uint32_t max_subscribers = 16;  // 0: no event streams
  bool operator==(const Events&) const = default;
};

struct AccessLog {
  enum class Kind { stdout_stream, off, file };
  Kind kind = Kind::stdout_stream;
  std::string path;  // Kind::file
};

struct Timeouts {
  Duration idle = std::chrono::seconds(300);
  Duration shutdown_grace = std::chrono::seconds(30);
};

struct Config {
  std::string source_path;
  unsigned workers = 0;  // 0: one per CPU ("auto")
  std::string user;
  std::vector<Listener> listeners;
  std::vector<Table> tables;
  std::vector<Backend> backends;
  Dns dns;
  SpliceMode splice = SpliceMode::automatic;
  Xdp xdp;
  std::string bpf_pin_path = "/sys/fs/bpf/snisplice";
  std::optional<SocketAddress> metrics_listen = SocketAddress::parse("127.0.0.1:9446");
  Events events;
  AccessLog access_log;
  LogLevel log_level = LogLevel::info;
  Timeouts timeouts;

  const Table* find_table(std::string_view name) const;
  const Backend* find_backend(std::string_view name) const;
};

// The spelling each enum value has in the YAML file, for logs and messages.
std::string_view to_string(Protocol value);
std::string_view to_string(Balance value);
std::string_view to_string(ProxyProtocol value);
std::string_view to_string(SpliceMode value);
std::string_view to_string(XdpMode value);
std::string_view to_string(XdpPolicy value);
std::string_view to_string(RateLimitMode value);
std::string_view to_string(SyncookieMode value);
std::string_view to_string(LogLevel value);
std::string_view to_string(RouteAction value);

}  // namespace snisplice::config
