#include "events/filter.h"

#include <algorithm>
#include <charconv>

namespace snisplice::events {
namespace {

// Summaries more often than this would be the event stream again; rarer ones are useless live.
constexpr uint32_t kMinAggregateMs = 100;
constexpr uint32_t kMaxAggregateMs = 60'000;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool any_of_equals(const std::vector<std::string>& wanted, std::string_view value) {
  return std::find(wanted.begin(), wanted.end(), value) != wanted.end();
}

}  // namespace

std::optional<std::string> url_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int high = hex_digit(text[i + 1]);
      int low = hex_digit(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

tl::expected<Filter, std::string> Filter::parse(std::string_view query) {
  Filter filter;
  while (!query.empty()) {
    size_t end = query.find('&');
    std::string_view pair = query.substr(0, end);
    query = end == std::string_view::npos ? std::string_view{} : query.substr(end + 1);
    if (pair.empty()) continue;
    size_t equals = pair.find('=');
    auto key = url_decode(pair.substr(0, equals));
    auto value = url_decode(equals == std::string_view::npos ? std::string_view{} : pair.substr(equals + 1));
    if (!key || !value) return tl::unexpected("bad percent-encoding in \"" + std::string(pair) + "\"");
    if (value->empty()) return tl::unexpected(*key + ": a value is required");
    if (*key == "type") {
      auto type = parse_type(*value);
      if (!type) return tl::unexpected("type: unknown event type \"" + *value + "\"");
      filter.types.set(static_cast<size_t>(*type));
    } else if (*key == "listener") {
      filter.listeners.push_back(std::move(*value));
    } else if (*key == "route") {
      filter.routes.push_back(std::move(*value));
    } else if (*key == "result") {
      filter.results.push_back(std::move(*value));
    } else if (*key == "client") {
      auto cidr = Cidr::parse(*value);
      if (!cidr) return tl::unexpected("client: \"" + *value + "\" is not an address or CIDR");
      filter.clients.push_back(*cidr);
    } else if (*key == "aggregate") {
      uint32_t ms = 0;
      auto [rest, error] = std::from_chars(value->data(), value->data() + value->size(), ms);
      if (error != std::errc() || rest != value->data() + value->size() || ms < kMinAggregateMs ||
          ms > kMaxAggregateMs)
        return tl::unexpected("aggregate: milliseconds between summaries, " + std::to_string(kMinAggregateMs) +
                              " to " + std::to_string(kMaxAggregateMs));
      filter.aggregate_ms = ms;
    } else {
      return tl::unexpected("unknown filter \"" + *key + "\" (type, listener, route, result, client, aggregate)");
    }
  }
  return filter;
}

bool Filter::matches(const Payload& payload) const {
  if (types.any() && !types.test(static_cast<size_t>(type_of(payload)))) return false;
  if (!listeners.empty() && !any_of_equals(listeners, listener_of(payload))) return false;
  if (!routes.empty() && !any_of_equals(routes, route_of(payload))) return false;
  if (!results.empty() && !any_of_equals(results, result_of(payload))) return false;
  if (!clients.empty()) {
    auto client = client_of(payload);
    if (!client) return false;
    IpAddress address = client->unmapped();
    if (std::none_of(clients.begin(), clients.end(), [&](const Cidr& cidr) { return cidr.contains(address); }))
      return false;
  }
  return true;
}

}  // namespace snisplice::events
