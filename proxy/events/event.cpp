#include "events/event.h"

#include <cstdio>
#include <ctime>

#include "events/json.h"

namespace snisplice::events {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

std::string alpn_json(const std::vector<std::string>& alpn) {
  std::string out = "[";
  for (size_t i = 0; i < alpn.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, alpn[i]);
  }
  out += ']';
  return out;
}

}  // namespace

std::string_view type_label(Type type) {
  switch (type) {
    case Type::accepted: return "accepted";
    case Type::routed: return "routed";
    case Type::spliced: return "spliced";
    case Type::paused: return "paused";
    case Type::resumed: return "resumed";
    case Type::closed: return "closed";
    case Type::refused: return "refused";
    case Type::dns: return "dns";
    case Type::reload: return "reload";
    case Type::xdp: return "xdp";
  }
  return "unknown";
}

std::optional<Type> parse_type(std::string_view label) {
  for (size_t i = 0; i < kTypeCount; ++i)
    if (type_label(static_cast<Type>(i)) == label) return static_cast<Type>(i);
  return std::nullopt;
}

std::string_view listener_of(const Payload& payload) {
  return std::visit(Overloaded{[](const Accepted& e) -> std::string_view { return e.listener; },
                               [](const Routed& e) -> std::string_view { return e.listener; },
                               [](const Closed& e) -> std::string_view { return e.listener; },
                               [](const Refused& e) -> std::string_view { return e.listener; },
                               [](const auto&) -> std::string_view { return {}; }},
                    payload);
}

std::string_view route_of(const Payload& payload) {
  return std::visit(Overloaded{[](const Routed& e) -> std::string_view { return e.route; },
                               [](const Closed& e) -> std::string_view { return e.route; },
                               [](const auto&) -> std::string_view { return {}; }},
                    payload);
}

std::string_view result_of(const Payload& payload) {
  return std::visit(Overloaded{[](const Closed& e) -> std::string_view { return e.result; },
                               [](const Refused& e) -> std::string_view { return e.result; },
                               [](const DnsLookup& e) -> std::string_view { return e.result; },
                               [](const Reload& e) -> std::string_view { return e.result; },
                               [](const auto&) -> std::string_view { return {}; }},
                    payload);
}

std::string_view host_of(const Payload& payload) {
  return std::visit(Overloaded{[](const Routed& e) -> std::string_view { return e.host; },
                               [](const Closed& e) -> std::string_view { return e.host; },
                               [](const Refused& e) -> std::string_view { return e.host; },
                               [](const auto&) -> std::string_view { return {}; }},
                    payload);
}

std::optional<IpAddress> client_of(const Payload& payload) {
  return std::visit(Overloaded{[](const XdpVerdict& e) -> std::optional<IpAddress> { return e.source; },
                               [](const DnsLookup&) -> std::optional<IpAddress> { return std::nullopt; },
                               [](const Reload&) -> std::optional<IpAddress> { return std::nullopt; },
                               [](const auto& e) -> std::optional<IpAddress> { return e.client.ip; }},
                    payload);
}

std::string rfc3339_ms(std::chrono::system_clock::time_point time) {
  auto seconds = std::chrono::floor<std::chrono::seconds>(time);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(time - seconds).count();
  std::time_t when = std::chrono::system_clock::to_time_t(seconds);
  std::tm utc{};
  ::gmtime_r(&when, &utc);
  char stamp[64];  // room for any int in each field
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  return stamp;
}

std::string to_json(const Event& event) {
  std::string out;
  out.reserve(256);
  JsonObject object(out);
  object.string("type", type_label(type_of(event.what))).string("time", rfc3339_ms(event.time));
  std::visit(Overloaded{
                 [&](const Accepted& e) {
                   object.string("listener", e.listener).string("client", e.client.to_string());
                 },
                 [&](const Routed& e) {
                   object.string("listener", e.listener)
                       .string("client", e.client.to_string())
                       .string("host", e.host)
                       .raw("alpn", alpn_json(e.alpn))
                       .string("route", e.route)
                       .string("backend", e.backend);
                 },
                 [&](const Spliced& e) { object.string("client", e.client.to_string()).string("mode", e.mode); },
                 [&](const Paused& e) {
                   object.string("client", e.client.to_string()).string("direction", e.direction);
                 },
                 [&](const Resumed& e) {
                   object.string("client", e.client.to_string()).string("direction", e.direction);
                 },
                 [&](const Closed& e) {
                   object.string("listener", e.listener)
                       .string("client", e.client.to_string())
                       .string("host", e.host)
                       .string("route", e.route)
                       .string("backend", e.backend)
                       .string("splice", e.splice)
                       .number("bytes_client_to_backend", e.bytes_client_to_backend)
                       .number("bytes_backend_to_client", e.bytes_backend_to_client)
                       .number("duration_ms", std::chrono::duration<double, std::milli>(e.duration).count())
                       .string("result", e.result);
                 },
                 [&](const Refused& e) {
                   object.string("listener", e.listener)
                       .string("client", e.client.to_string())
                       .string("host", e.host)
                       .string("result", e.result);
                 },
                 [&](const DnsLookup& e) {
                   object.string("name", e.name).string("result", e.result).boolean("cached", e.cached);
                 },
                 [&](const Reload& e) { object.string("result", e.result); },
                 [&](const XdpVerdict& e) {
                   object.string("interface", e.interface)
                       .string("source", e.source.to_string())
                       .number("port", uint64_t{e.port})
                       .string("verdict", e.verdict)
                       .string("reason", e.reason);
                 },
             },
             event.what);
  object.close();
  return out;
}

}  // namespace snisplice::events
