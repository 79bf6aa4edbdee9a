#include <doctest/doctest.h>

#include "events/filter.h"

using namespace snisplice;
using namespace snisplice::events;

namespace {

SocketAddress address(const char* text) { return *SocketAddress::parse(text); }
Filter parse(std::string_view query) {
  auto filter = Filter::parse(query);
  REQUIRE_MESSAGE(filter.has_value(), filter.error());
  return *filter;
}
std::string error_of(std::string_view query) {
  auto filter = Filter::parse(query);
  REQUIRE_FALSE(filter.has_value());
  return filter.error();
}

const Payload kClosed = Closed{"tls", address("10.1.2.3:4000"), "a.example", "edge/a", "", "", 0, 0, {}, "proxied"};
const Payload kRefused = Refused{"http", address("192.0.2.9:4000"), "b.example", "no_route"};
const Payload kDns = DnsLookup{"a.example", "resolved", false};
const Payload kXdp = XdpVerdict{"eth0", *IpAddress::parse("10.9.9.9"), 443, "drop", ""};

}  // namespace

TEST_CASE("url_decode") {
  CHECK(url_decode("10.0.0.0%2F8") == "10.0.0.0/8");
  CHECK(url_decode("a+b%20c") == "a b c");
  CHECK(url_decode("%2f%2F") == "//");
  CHECK_FALSE(url_decode("%").has_value());
  CHECK_FALSE(url_decode("%2").has_value());
  CHECK_FALSE(url_decode("%zz").has_value());
}

TEST_CASE("an empty query matches everything") {
  Filter all = parse("");
  for (const auto& payload : {kClosed, kRefused, kDns, kXdp}) CHECK(all.matches(payload));
  CHECK_FALSE(all.aggregate_ms.has_value());
}

TEST_CASE("repeated values of one key: any matches - different keys: all must") {
  Filter types = parse("type=closed&type=refused");
  CHECK(types.matches(kClosed));
  CHECK(types.matches(kRefused));
  CHECK_FALSE(types.matches(kDns));

  Filter both = parse("type=closed&type=refused&listener=tls");
  CHECK(both.matches(kClosed));
  CHECK_FALSE(both.matches(kRefused));

  Filter results = parse("result=no_route&result=denied_address");
  CHECK(results.matches(kRefused));
  CHECK_FALSE(results.matches(kClosed));

  Filter route = parse("route=edge%2Fa");
  CHECK(route.matches(kClosed));
  CHECK_FALSE(route.matches(kRefused));
}

TEST_CASE("an event without the field does not match a filter on it") {
  CHECK_FALSE(parse("listener=tls").matches(kDns));
  CHECK_FALSE(parse("route=edge/a").matches(kXdp));
  CHECK_FALSE(parse("client=0.0.0.0/0").matches(kDns));
}

TEST_CASE("client: CIDRs of either family - xdp events match on their source") {
  Filter ten = parse("client=10.0.0.0%2F8");
  CHECK(ten.matches(kClosed));
  CHECK(ten.matches(kXdp));
  CHECK_FALSE(ten.matches(kRefused));
  CHECK(parse("client=192.0.2.9").matches(kRefused));  // a bare address: that host
  CHECK_FALSE(parse("client=::/0").matches(kClosed));  // families never mix
  CHECK(parse("client=10.1.0.0/16&client=192.0.2.0/24").matches(kRefused));
  Payload mapped = Accepted{"tls", address("[::ffff:10.1.2.3]:1")};
  CHECK(ten.matches(mapped));  // an IPv4-mapped client is an IPv4 client
}

TEST_CASE("aggregate: milliseconds within bounds") {
  CHECK(parse("aggregate=500").aggregate_ms == 500u);
  CHECK(error_of("aggregate=50").find("aggregate") == 0);
  CHECK(error_of("aggregate=1s").find("aggregate") == 0);
  CHECK(error_of("aggregate=999999999999").find("aggregate") == 0);
}

TEST_CASE("bad queries are refused with the key named") {
  CHECK(error_of("type=bogus") == "type: unknown event type \"bogus\"");
  CHECK(error_of("client=10.0.0.0/33").find("client:") == 0);
  CHECK(error_of("client=example.com").find("client:") == 0);
  CHECK(error_of("colour=red").find("unknown filter \"colour\"") == 0);
  CHECK(error_of("listener=") == "listener: a value is required");
  CHECK(error_of("listener").find("listener") == 0);
  CHECK(error_of("route=%zz").find("bad percent-encoding") == 0);
}

TEST_CASE("empty pairs are ignored") {
  CHECK(parse("&&type=dns&").matches(kDns));
}
