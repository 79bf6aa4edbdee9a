#include <doctest/doctest.h>

#include "events/event.h"
#include "events/finished.h"

using namespace snisplice;
using namespace snisplice::events;
using namespace std::chrono_literals;

namespace {

SocketAddress address(const char* text) { return *SocketAddress::parse(text); }

// 2026-12-06T21:30:05.042Z
const std::chrono::system_clock::time_point kTime =
    std::chrono::sys_days{std::chrono::year{2026} / 12 / 6} + 21h + 30min + 5s + 42ms;

}  // namespace

TEST_CASE("rfc3339_ms: UTC with milliseconds, zero-padded") {
  CHECK(rfc3339_ms(kTime) == "2026-12-06T21:30:05.042Z");
  CHECK(rfc3339_ms(std::chrono::system_clock::time_point{}) == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("every type has a label that parses back to it") {
  for (size_t i = 0; i < kTypeCount; ++i) {
    auto type = static_cast<Type>(i);
    CHECK(parse_type(type_label(type)) == type);
  }
  CHECK_FALSE(parse_type("bogus").has_value());
  CHECK(type_of(Payload{Reload{"ok"}}) == Type::reload);
  CHECK(type_of(Payload{XdpVerdict{}}) == Type::xdp);
}

TEST_CASE("accepted and routed carry listener, client and the routing decision") {
  CHECK(to_json({kTime, Accepted{"tls", address("192.0.2.7:51000")}}) ==
        R"({"type":"accepted","time":"2026-12-06T21:30:05.042Z","listener":"tls","client":"192.0.2.7:51000"})");
  CHECK(to_json({kTime, Routed{"tls", address("[2001:db8::1]:443"), "www.example.com", {"h2", "http/1.1"},
                               "edge/*.example.com", "web"}}) ==
        R"({"type":"routed","time":"2026-12-06T21:30:05.042Z","listener":"tls","client":"[2001:db8::1]:443",)"
        R"("host":"www.example.com","alpn":["h2","http/1.1"],"route":"edge/*.example.com","backend":"web"})");
  CHECK(to_json({kTime, Routed{"http", address("192.0.2.7:1"), "", {}, "r", ""}}).find(R"("alpn":[])") !=
        std::string::npos);
}

TEST_CASE("closed has the access log's fields, duration in milliseconds") {
  Closed closed{"tls", address("192.0.2.7:51000"), "a.example", "edge/a.example", "198.51.100.2:443",
                "sockmap", 517, 4096, 1500us, "proxied"};
  CHECK(to_json({kTime, closed}) ==
        R"({"type":"closed","time":"2026-12-06T21:30:05.042Z","listener":"tls","client":"192.0.2.7:51000",)"
        R"("host":"a.example","route":"edge/a.example","backend":"198.51.100.2:443","splice":"sockmap",)"
        R"("bytes_client_to_backend":517,"bytes_backend_to_client":4096,"duration_ms":1.500,"result":"proxied"})");
}

TEST_CASE("the other types") {
  CHECK(to_json({kTime, Spliced{address("192.0.2.7:1"), "userspace"}}) ==
        R"({"type":"spliced","time":"2026-12-06T21:30:05.042Z","client":"192.0.2.7:1","mode":"userspace"})");
  CHECK(to_json({kTime, Paused{address("192.0.2.7:1"), "backend_to_client"}}) ==
        R"({"type":"paused","time":"2026-12-06T21:30:05.042Z","client":"192.0.2.7:1","direction":"backend_to_client"})");
  CHECK(to_json({kTime, Resumed{address("192.0.2.7:1"), "client_to_backend"}}) ==
        R"({"type":"resumed","time":"2026-12-06T21:30:05.042Z","client":"192.0.2.7:1","direction":"client_to_backend"})");
  CHECK(to_json({kTime, Refused{"tls", address("192.0.2.7:1"), "", "no_route"}}) ==
        R"({"type":"refused","time":"2026-12-06T21:30:05.042Z","listener":"tls","client":"192.0.2.7:1","host":"","result":"no_route"})");
  CHECK(to_json({kTime, DnsLookup{"a.example", "resolved", true}}) ==
        R"({"type":"dns","time":"2026-12-06T21:30:05.042Z","name":"a.example","result":"resolved","cached":true})");
  CHECK(to_json({kTime, Reload{"rejected"}}) ==
        R"({"type":"reload","time":"2026-12-06T21:30:05.042Z","result":"rejected"})");
  CHECK(to_json({kTime, XdpVerdict{"eth0", *IpAddress::parse("203.0.113.9"), 443, "drop", "not_allowed"}}) ==
        R"({"type":"xdp","time":"2026-12-06T21:30:05.042Z","interface":"eth0","source":"203.0.113.9","port":443,)"
        R"("verdict":"drop","reason":"not_allowed"})");
}

TEST_CASE("client-supplied names are escaped") {
  std::string hostile = "a\"b\\c\nd\x01\x7f";
  auto json = to_json({kTime, Refused{"tls", address("192.0.2.7:1"), hostile, "client_hello_error"}});
  CHECK(json.find(R"("host":"a\"b\\c\nd\u0001\u007f")") != std::string::npos);
}

TEST_CASE("field accessors used by the filters") {
  Payload closed = Closed{"tls", address("192.0.2.7:1"), "h", "r", "", "", 0, 0, {}, "proxied"};
  CHECK(listener_of(closed) == "tls");
  CHECK(route_of(closed) == "r");
  CHECK(result_of(closed) == "proxied");
  CHECK(host_of(closed) == "h");
  CHECK(client_of(closed) == IpAddress::parse("192.0.2.7"));
  Payload dns = DnsLookup{"n", "failed", false};
  CHECK(listener_of(dns).empty());
  CHECK(result_of(dns) == "failed");
  CHECK_FALSE(client_of(dns).has_value());
  CHECK(client_of(XdpVerdict{"lo", *IpAddress::parse("::1"), 1, "drop", ""}) == IpAddress::parse("::1"));
}

TEST_CASE("a finished connection: refused when turned away before any backend, closed otherwise") {
  close::AccessRecord record;
  record.listener = "tls";
  record.client = "192.0.2.7:1";
  record.host = "a.example";
  record.route = "edge/a";
  record.result = "no_route";
  auto client = address("192.0.2.7:1");
  auto refused = finished(record, client);
  REQUIRE(std::holds_alternative<Refused>(refused));
  CHECK(std::get<Refused>(refused).result == "no_route");
  CHECK(std::get<Refused>(refused).host == "a.example");

  record.result = "connect_error";  // a backend was tried: the connection was not refused
  CHECK(std::holds_alternative<Closed>(finished(record, client)));

  record.result = "proxied";
  record.backend = "198.51.100.2:443";
  record.splice_mode = "sockmap";
  record.bytes_client_to_backend = 10;
  record.bytes_backend_to_client = 20;
  record.duration = 3ms;
  auto closed = finished(record, client);
  REQUIRE(std::holds_alternative<Closed>(closed));
  const auto& c = std::get<Closed>(closed);
  CHECK(c.backend == "198.51.100.2:443");
  CHECK(c.splice == "sockmap");
  CHECK(c.bytes_client_to_backend == 10);
  CHECK(c.bytes_backend_to_client == 20);
  CHECK(c.duration == 3ms);
  CHECK(c.client == client);

  for (auto label : {"rejected", "no_route", "client_hello_error", "client_hello_timeout", "proxy_protocol_error",
                     "denied_address", "limit_exceeded"})
    CHECK(is_refusal(label));
  for (auto label : {"proxied", "client_closed", "resolve_error", "connect_error", "idle_timeout"})
    CHECK_FALSE(is_refusal(label));
}
