#pragma once
// Server-side filters of the event stream, from the query string of /events and
// /events.ndjson: type, listener, route, result (each may repeat: any of the values matches),
// client (a CIDR; may repeat). Different keys must all match; an event without the field a
// key asks about does not match it (a `route` filter passes no dns event).
//
// One more key shapes the stream rather than selecting from it: `aggregate=MS` asks for one
// summary every MS milliseconds instead of every event (see aggregate.h).
#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "base/net_address.h"
#include "events/event.h"

namespace snisplice::events {

struct Filter {
  std::bitset<kTypeCount> types;  // none set: every type
  std::vector<std::string> listeners;
  std::vector<std::string> routes;
  std::vector<std::string> results;
  std::vector<Cidr> clients;
  std::optional<uint32_t> aggregate_ms;

  // "type=closed&type=refused&client=10.0.0.0%2F8"; an unknown key or a bad value is an
  // error naming it.
  static tl::expected<Filter, std::string> parse(std::string_view query);
  bool matches(const Payload& payload) const;
};

// Percent-decoding of one query component ("+" is a space); nullopt on a bad escape.
std::optional<std::string> url_decode(std::string_view text);

}  // namespace snisplice::events
