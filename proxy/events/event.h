#pragma once
// One small struct per thing that happens, as INTERFACE.md "Live events" names them, and their
// JSON form. Pure values: the publisher stamps the time, nothing here reads a clock.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/net_address.h"

namespace snisplice::events {

// A connection was accepted on a listener.
struct Accepted {
  std::string listener;
  SocketAddress client;
};

// A hello was read and a route chosen for it.
struct Routed {
  std::string listener;
  SocketAddress client;
  std::string host;
  std::vector<std::string> alpn;  // the client's offer, in its order
  std::string route;              // the route's label (its table and pattern)
  std::string backend;            // the backend's name; "" for resolve and original_dst routes
};

// The connection's bytes are carried from here on, by the kernel or by the relay.
struct Spliced {
  SocketAddress client;
  std::string mode;  // "sockmap" | "userspace"
};

// One direction of a spliced connection was held back (its destination reads slower than
// its source sends), or let go again.
struct Paused {
  SocketAddress client;
  std::string direction;  // "client_to_backend" | "backend_to_client"
};
struct Resumed {
  SocketAddress client;
  std::string direction;
};
// The direction's name in paused/resumed events (and in snisplice_bytes_total).
constexpr std::string_view direction_label(bool client_to_backend) {
  return client_to_backend ? "client_to_backend" : "backend_to_client";
}

// A finished connection: the access log's fields.
struct Closed {
  std::string listener;
  SocketAddress client;
  std::string host;
  std::string route;
  std::string backend;  // address:port dialled, "" when none
  std::string splice;   // "sockmap" | "userspace" | ""
  uint64_t bytes_client_to_backend = 0;
  uint64_t bytes_backend_to_client = 0;
  std::chrono::nanoseconds duration{};
  std::string result;
};

// A connection turned away before any backend was dialled (no route, limit, denied address,
// bad hello, PROXY error, ...): result is the snisplice_connections_total label.
struct Refused {
  std::string listener;
  SocketAddress client;
  std::string host;
  std::string result;
};

// A name lookup for a resolve route.
struct DnsLookup {
  std::string name;
  std::string result;  // "resolved" | "failed" | the failure's label
  bool cached = false;
};

// A configuration reload.
struct Reload {
  std::string result;  // "ok" | "rejected"
};

// A packet the XDP program sampled into its ring buffer.
struct XdpVerdict {
  std::string interface;
  IpAddress source;
  uint16_t port = 0;    // destination port
  std::string verdict;  // snisplice_xdp_packets_total's label
  std::string reason;
};

using Payload = std::variant<Accepted, Routed, Spliced, Paused, Resumed, Closed, Refused, DnsLookup, Reload,
                             XdpVerdict>;

// In the variant's order, so type_of is the variant index.
enum class Type : uint8_t { accepted, routed, spliced, paused, resumed, closed, refused, dns, reload, xdp };
constexpr size_t kTypeCount = std::variant_size_v<Payload>;

struct Event {
  std::chrono::system_clock::time_point time;
  Payload what;
};

constexpr Type type_of(const Payload& payload) { return static_cast<Type>(payload.index()); }
std::string_view type_label(Type type);
std::optional<Type> parse_type(std::string_view label);

// The fields filters look at; empty / nullopt when the event has no such field.
std::string_view listener_of(const Payload& payload);
std::string_view route_of(const Payload& payload);
std::string_view result_of(const Payload& payload);
std::string_view host_of(const Payload& payload);
std::optional<IpAddress> client_of(const Payload& payload);  // the source, for xdp

// "2026-12-06T21:30:00.123Z" (RFC 3339, UTC, milliseconds).
std::string rfc3339_ms(std::chrono::system_clock::time_point time);

// The event as one JSON object, without a newline: {"type":"closed","time":"...",...}.
std::string to_json(const Event& event);

}  // namespace snisplice::events
