// Open-proxy spellings and Host confusion at the parsers: every way a client can write this
// host's addresses in SNI or Host, and every way an HTTP request can name two hosts. The parser
// either refuses the name or returns the one strict spelling the resolver and the address policy
// read (tests/unit/resolve/address_policy_test.cpp refuses those; tests/e2e/test_hostile.py
// runs the same spellings through the daemon).
#include <doctest/doctest.h>

#include <string>

#include "feed_check.h"
#include "flow/hello/host_name.h"
#include "flow/hello/http_host.h"
#include "flow/hello/tls_client_hello.h"
#include "tls_builder.h"

namespace snisplice::hello {
namespace {

using testing::bytes_of;
using testing::hello_with;
using testing::sni;

// What inet_aton(3), ping and browsers read as an IPv4 address but no strict parser does.
constexpr const char* kNonStrictIpv4[] = {
    "127.1",      "127.0.1",      "2130706433",       "0x7f000001",     "0X7F000001",  "0x7f.0.0.1",
    "0177.0.0.1", "0177.1",       "127.000.000.001",  "127.0.0.01",     "017700000001", "0",
    "0x",         "0x0",          "127.0.0.256",      "1.2.3.4.5",      "a.b.c.1",     "localhost.127",
    "127.1.",     "2130706433.",  "x.0x7f000001",     "0.0.0.0.0",    "a.0x",
};

// Strict literals of this host's addresses: valid names, returned as that literal (the policy
// refuses them).
constexpr std::pair<const char*, const char*> kStrictIpv4[] = {
    {"127.0.0.1", "127.0.0.1"}, {"127.0.0.1.", "127.0.0.1"}, {"127.255.255.254", "127.255.255.254"},
    {"0.0.0.0", "0.0.0.0"},     {"0.0.0.0.", "0.0.0.0"},     {"127.0.0.2", "127.0.0.2"},
};

// Names that merely contain digits stay names.
constexpr std::pair<const char*, const char*> kNamesWithDigits[] = {
    {"127.0.0.1.nip.io", "127.0.0.1.nip.io"}, {"0x7f000001.example", "0x7f000001.example"},
    {"LOCALHOST", "localhost"},               {"localhost.", "localhost"},
    {"1e100.net", "1e100.net"},               {"0xdead.beef", "0xdead.beef"},
    {"a.0xg", "a.0xg"},
};

TEST_CASE("host name: non-strict IPv4 spellings are invalid names, strict ones pass as themselves") {
  for (const char* text : kNonStrictIpv4) {
    CAPTURE(text);
    CHECK_FALSE(normalize_host_name(text));
  }
  for (auto [text, normalised] : kStrictIpv4) {
    CAPTURE(text);
    CHECK(normalize_host_name(text) == normalised);
  }
  for (auto [text, normalised] : kNamesWithDigits) {
    CAPTURE(text);
    CHECK(normalize_host_name(text) == normalised);
  }
}

TEST_CASE("host name: IPv6 spellings of this host are never names, only bracketed HTTP literals") {
  for (const char* text : {"::1", "[::1]", "::ffff:127.0.0.1", "[::ffff:127.0.0.1]", "64:ff9b::7f00:1", "::"}) {
    CAPTURE(text);
    CHECK_FALSE(normalize_host_name(text));
  }
  CHECK(normalize_ipv6_literal("0:0:0:0:0:0:0:1") == "::1");
  CHECK(normalize_ipv6_literal("::FFFF:7F00:1") == "::ffff:127.0.0.1");
  CHECK(normalize_ipv6_literal("::127.0.0.1") == "::127.0.0.1");
  CHECK(normalize_ipv6_literal("64:FF9B::127.0.0.1") == "64:ff9b::7f00:1");
  CHECK(normalize_ipv6_literal("64:ff9b:1::7f00:1") == "64:ff9b:1::7f00:1");
  CHECK_FALSE(normalize_ipv6_literal("::1%lo"));
  CHECK_FALSE(normalize_ipv6_literal(std::string_view("::1\0", 4)));
}

Outcome tls_outcome(const std::string& host) {
  auto bytes = hello_with({sni(host)});
  return TlsClientHelloParser().feed(bytes);
}

TEST_CASE("tls: SNI carrying a non-strict IPv4 spelling or any IPv6 form is refused") {
  for (const char* text : kNonStrictIpv4) {
    CAPTURE(text);
    CHECK(tls_outcome(text) == Outcome::rejected(Reject::invalid_host_name));
  }
  for (const char* text : {"::1", "[::1]", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "127.0.0.1:443"}) {
    CAPTURE(text);
    CHECK(tls_outcome(text) == Outcome::rejected(Reject::invalid_host_name));
  }
  auto nul = hello_with({sni(std::string("allowed.test\0" "127.0.0.1", 22))});
  CHECK(TlsClientHelloParser().feed(nul) == Outcome::rejected(Reject::invalid_host_name));
  for (auto [text, normalised] : kStrictIpv4) {
    CAPTURE(text);
    auto outcome = tls_outcome(text);
    REQUIRE(outcome.state == Outcome::State::done);
    CHECK(outcome.hello.host == normalised);
  }
  CHECK(tls_outcome("LocalHost.").hello.host == "localhost");
}

Outcome http_outcome(const std::string& head) { return HttpHostParser().feed(bytes_of(head)); }

std::string with_host(const std::string& host) { return "GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"; }

TEST_CASE("http: Host spellings of this host are refused or returned in their one strict form") {
  for (const char* text : kNonStrictIpv4) {
    CAPTURE(text);
    CHECK(http_outcome(with_host(text)) == Outcome::rejected(Reject::invalid_host_name));
    CHECK(http_outcome("GET http://" + std::string(text) + "/ HTTP/1.1\r\n\r\n") ==
          Outcome::rejected(Reject::invalid_host_name));
  }
  const std::pair<const char*, const char*> literals[] = {
      {"[::1]", "::1"},
      {"[0:0:0:0:0:0:0:1]:443", "::1"},
      {"[::]", "::"},
      {"[::ffff:127.0.0.1]", "::ffff:127.0.0.1"},
      {"[::FFFF:7F00:1]:80", "::ffff:127.0.0.1"},
      {"[::127.0.0.1]", "::127.0.0.1"},
      {"[64:ff9b::127.0.0.1]", "64:ff9b::7f00:1"},
      {"[64:ff9b:1::7f00:1]", "64:ff9b:1::7f00:1"},
      {"127.0.0.1:8080", "127.0.0.1"},
      {"127.0.0.1.:8080", "127.0.0.1"},
      {"0.0.0.0", "0.0.0.0"},
      {"LOCALHOST.", "localhost"},
  };
  for (auto [text, normalised] : literals) {
    CAPTURE(text);
    auto outcome = http_outcome(with_host(text));
    REQUIRE(outcome.state == Outcome::State::done);
    CHECK(outcome.hello.host == normalised);
  }
  for (const char* text : {"::1", "[::1%lo]", "[127.0.0.1]", "[::1]:99999", "[::1]x", "127.0.0.1:80:80"}) {
    CAPTURE(text);
    CHECK(http_outcome(with_host(text)) == Outcome::rejected(Reject::invalid_host_name));
  }
}

TEST_CASE("http: a Host with a port or userinfo trick is refused") {
  for (const char* text : {"allowed.test:443@127.0.0.1", "allowed.test@127.0.0.1", "user:pw@allowed.test",
                           "127.0.0.1#@allowed.test", "allowed.test:99999", "allowed.test:-1", "allowed.test:+80",
                           "allowed.test:0x50", "allowed.test:80 127.0.0.1", "allowed.test 127.0.0.1",
                           "allowed.test,127.0.0.1", "allowed.test/127.0.0.1", "allowed.test\\@127.0.0.1",
                           "allowed.test%2f127.0.0.1", "[::1]@allowed.test"}) {
    CAPTURE(text);
    CHECK(http_outcome(with_host(text)) == Outcome::rejected(Reject::invalid_host_name));
  }
  std::string nul_host = "GET / HTTP/1.1\r\nHost: allowed.test";
  nul_host += '\0';
  nul_host += "127.0.0.1\r\n\r\n";
  CHECK(http_outcome(nul_host) == Outcome::rejected(Reject::http_bad_header));
}

TEST_CASE("http: several Host headers, or a target naming another host, are refused") {
  struct Confusion {
    const char* head;
    Reject reason;
  };
  const Confusion cases[] = {
      {"GET / HTTP/1.1\r\nHost: allowed.test\r\nHost: 127.0.0.1\r\n\r\n", Reject::http_multiple_host},
      {"GET / HTTP/1.1\r\nHost: allowed.test\r\nHost: allowed.test\r\n\r\n", Reject::http_multiple_host},
      {"GET / HTTP/1.1\r\nHost: allowed.test\r\nX: y\r\nhost: 127.0.0.1\r\n\r\n", Reject::http_multiple_host},
      {"GET / HTTP/1.1\r\nHost: allowed.test\r\nHost:\r\n\r\n", Reject::http_multiple_host},
      {"GET / HTTP/1.1\r\nHost: allowed.test\r\n Host: 127.0.0.1\r\n\r\n", Reject::http_bad_header},
      {"GET / HTTP/1.1\r\nHost : 127.0.0.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_header},
      {"GET / HTTP/1.1\r\nHost: allowed.test\rHost: 127.0.0.1\r\n\r\n", Reject::http_bad_header},
      {"GET http://other.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_host_conflict},
      {"GET http://127.0.0.1/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_host_conflict},
      {"GET http://[::1]:443/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_host_conflict},
      {"GET HTTPS://127.0.0.1 HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_host_conflict},
      {"GET http://allowed.test@127.0.0.1/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
      {"GET http://127.0.0.1@allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
      {"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_host_conflict},
      {"CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
      {"CONNECT allowed.test:443/x HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
      {"CONNECT u@allowed.test:443 HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
      {"CONNECT [::1] HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
      {"GET ftp://127.0.0.1/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
      {"GET gopher://127.0.0.1:70/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
      {"GET http:127.0.0.1 HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
      {"GET 127.0.0.1:22 HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
      {"GET allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
      {"GET * HTTP/1.1\r\nHost: allowed.test\r\n\r\n", Reject::http_bad_request_line},
  };
  for (const auto& c : cases) {
    CAPTURE(c.head);
    auto mismatch = testing::check_feeds([] { return HttpHostParser(); }, bytes_of(c.head), Outcome::rejected(c.reason));
    CHECK_MESSAGE(!mismatch, mismatch.value_or(""));
  }
  // Agreeing forms pass: the port is no part of the host routed on.
  for (const char* head : {"GET http://allowed.test:8080/x HTTP/1.1\r\nHost: ALLOWED.test.:80\r\n\r\n",
                           "CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n",
                           "CONNECT allowed.test:443 HTTP/1.1\r\n\r\n", "OPTIONS * HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
                           "GET //127.0.0.1/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n"}) {
    CAPTURE(head);
    auto outcome = http_outcome(head);
    REQUIRE(outcome.state == Outcome::State::done);
    CHECK(outcome.hello.host == "allowed.test");
  }
}

}  // namespace
}  // namespace snisplice::hello
