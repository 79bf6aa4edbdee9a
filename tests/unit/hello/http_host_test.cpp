#include "flow/hello/http_host.h"

#include <doctest/doctest.h>

#include "feed_check.h"
#include "hello_cases.h"

namespace snisplice::hello {
namespace {

TEST_CASE("http: every case table entry gives its outcome however the bytes arrive") {
  for (const auto& c : testing::http_cases()) {
    CAPTURE(c.name);
    auto mismatch = testing::check_feeds([&] { return HttpHostParser(c.max_bytes); }, c.bytes,
                                         c.expected);
    CHECK_MESSAGE(!mismatch, c.name << ": " << mismatch.value_or(""));
  }
}

TEST_CASE("http: consumed stops at the end of the head, before any body") {
  std::string text = "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\nbody";
  HttpHostParser parser;
  auto outcome = parser.feed(testing::bytes_of(text));
  REQUIRE(outcome.state == Outcome::State::done);
  CHECK(outcome.hello.consumed == text.size() - 4);
}

TEST_CASE("http: a bad request line is rejected before the head ends") {
  HttpHostParser parser;
  CHECK(parser.feed(testing::bytes_of("GET / HTTP/3\r\n")) ==
        Outcome::rejected(Reject::http_bad_request_line));
}

TEST_CASE("http: parse_authority_host") {
  CHECK(parse_authority_host("Example.COM:443") == "example.com");
  CHECK(parse_authority_host("[::FFFF:192.0.2.1]:1") == "::ffff:192.0.2.1");
  CHECK(parse_authority_host("example.com:65535") == "example.com");
  CHECK_FALSE(parse_authority_host("example.com:65536"));
  CHECK(parse_authority_host("[::1]:") == "::1");  // an empty port is allowed (RFC 3986)
  CHECK_FALSE(parse_authority_host(""));
}

}  // namespace
}  // namespace snisplice::hello
