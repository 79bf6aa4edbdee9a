#include <doctest/doctest.h>
#include <fmt/format.h>

#include "events/aggregate.h"

using namespace snisplice;
using namespace snisplice::events;
using namespace std::chrono_literals;

namespace {

SocketAddress address(const char* text) { return *SocketAddress::parse(text); }
void add(Aggregator& aggregator, Payload what) {
  Event event{std::chrono::system_clock::time_point{}, std::move(what)};
  aggregator.add(event, to_json(event));
}
bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("source_prefix: /24 for IPv4, /64 for IPv6, mapped addresses as IPv4") {
  CHECK(source_prefix(*IpAddress::parse("203.0.113.77")) == "203.0.113.0/24");
  CHECK(source_prefix(*IpAddress::parse("2001:db8:1:2:3:4:5:6")) == "2001:db8:1:2::/64");
  CHECK(source_prefix(*IpAddress::parse("::ffff:203.0.113.77")) == "203.0.113.0/24");
}

TEST_CASE("a summary counts by type, listener, route and result, then starts afresh") {
  Aggregator aggregator;
  for (int i = 0; i < 3; ++i)
    add(aggregator, Closed{"tls", address("192.0.2.1:1"), "a.example", "edge/a", "", "sockmap", 0, 0, {}, "proxied"});
  add(aggregator, Refused{"tls", address("192.0.2.1:1"), "b.example", "no_route"});
  add(aggregator, Routed{"tls", address("192.0.2.1:1"), "a.example", {}, "edge/a", "web"});
  add(aggregator, Spliced{address("192.0.2.1:1"), "sockmap"});
  add(aggregator, Paused{address("192.0.2.1:1"), "backend_to_client"});
  add(aggregator, XdpVerdict{"eth0", *IpAddress::parse("203.0.113.5"), 443, "drop", ""});
  add(aggregator, XdpVerdict{"eth0", *IpAddress::parse("203.0.113.6"), 443, "drop", ""});
  add(aggregator, XdpVerdict{"eth0", *IpAddress::parse("203.0.113.7"), 443, "would_drop", ""});

  std::string summary = aggregator.summary(std::chrono::system_clock::time_point{}, 500ms);
  CHECK(summary.starts_with(R"({"type":"aggregate","time":"1970-01-01T00:00:00.000Z","interval_ms":500,"events":10,)"));
  CHECK(contains(summary, R"({"type":"closed","listener":"tls","route":"edge/a","result":"proxied","count":3})"));
  CHECK(contains(summary, R"({"type":"refused","listener":"tls","route":"","result":"no_route","count":1})"));
  CHECK(contains(summary, R"("names":[{"name":"a.example","count":1},{"name":"b.example","count":1}])"));
  CHECK(contains(summary, R"("xdp_drops":[{"prefix":"203.0.113.0/24","count":2}])"));
  CHECK(contains(summary, R"("splice":{"sockmap":1})"));
  CHECK(contains(summary, R"("paused":1,"resumed":0)"));
  CHECK(contains(summary, R"("recent":[{"type":"closed")"));

  std::string empty = aggregator.summary(std::chrono::system_clock::time_point{}, 500ms);
  CHECK(contains(empty, R"("events":0,"overflow":0,"counts":[],"names":[],"xdp_drops":[],"splice":{})"));
  CHECK(contains(empty, R"("recent":[])"));
}

TEST_CASE("names are ranked, the top ones kept") {
  Aggregator aggregator;
  for (size_t i = 0; i < Aggregator::kTopNames + 5; ++i)
    add(aggregator, Refused{"tls", address("192.0.2.1:1"), fmt::format("n{}.example", i), "no_route"});
  for (int i = 0; i < 4; ++i) add(aggregator, Refused{"tls", address("192.0.2.1:1"), "popular.example", "no_route"});
  std::string summary = aggregator.summary({}, 1000ms);
  CHECK(contains(summary, R"("names":[{"name":"popular.example","count":4})"));
  size_t rows = 0;
  for (size_t at = summary.find("\"name\":"); at != std::string::npos; at = summary.find("\"name\":", at + 1)) ++rows;
  CHECK(rows == Aggregator::kTopNames);
}

TEST_CASE("bounded whatever it is fed: rows past the cap are counted as overflow, recent keeps the last") {
  Aggregator aggregator;
  size_t fed = Aggregator::kMaxKeys + 10;
  for (size_t i = 0; i < fed; ++i)
    add(aggregator, Refused{fmt::format("l{}", i), address("192.0.2.1:1"), "", "no_route"});
  std::string summary = aggregator.summary({}, 1000ms);
  CHECK(contains(summary, R"("overflow":10,)"));
  size_t recent = 0;
  for (size_t at = summary.find(R"({"type":"refused","time")"); at != std::string::npos;
       at = summary.find(R"({"type":"refused","time")", at + 1))
    ++recent;
  CHECK(recent == Aggregator::kRecent);
  CHECK(contains(summary, fmt::format("\"listener\":\"l{}\"", fed - 1)));
}
