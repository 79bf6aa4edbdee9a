#include "flow/hello/tls_client_hello.h"

#include <doctest/doctest.h>

#include "feed_check.h"
#include "hello_cases.h"

namespace snisplice::hello {
namespace {

using testing::Bytes;

TEST_CASE("tls: every case table entry gives its outcome however the bytes arrive") {
  for (const auto& c : testing::tls_cases()) {
    CAPTURE(c.name);
    auto mismatch = testing::check_feeds([&] { return TlsClientHelloParser(c.max_bytes); },
                                         c.bytes, c.expected);
    CHECK_MESSAGE(!mismatch, c.name << ": " << mismatch.value_or(""));
  }
}

TEST_CASE("tls: not_tls is decided from the first byte") {
  TlsClientHelloParser parser;
  Bytes one = {'G'};
  CHECK(parser.feed(one) == Outcome::rejected(Reject::not_tls));
}

TEST_CASE("tls: a partial record never yields a verdict before the record is whole") {
  Bytes hello = testing::hello_with({testing::sni("example.com")});
  TlsClientHelloParser parser;
  for (size_t n = 0; n < hello.size(); ++n)
    REQUIRE(parser.feed(std::span(hello).first(n)).state == Outcome::State::need_more);
  CHECK(parser.feed(hello).hello.host == "example.com");
}

TEST_CASE("tls: parse_client_hello checks the handshake header against the message") {
  Bytes message = testing::client_hello_message(testing::ClientHelloSpec{});
  CHECK(parse_client_hello(message).state == Outcome::State::done);
  Bytes longer = message;
  longer.push_back(0);
  CHECK(parse_client_hello(longer) == Outcome::rejected(Reject::length_mismatch));
  CHECK(parse_client_hello(std::span(message).first(3)) == Outcome::rejected(Reject::length_mismatch));
}

}  // namespace
}  // namespace snisplice::hello
