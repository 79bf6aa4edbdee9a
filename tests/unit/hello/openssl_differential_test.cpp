// Every hand-built hello our parser accepts must look the same to OpenSSL's server code.
#include <doctest/doctest.h>

#include "hello_cases.h"
#include "openssl_view.h"

namespace snisplice::hello {
namespace {

TEST_CASE("openssl agrees on SNI, ALPN and ECH for every accepted hand-built hello") {
  int compared = 0;
  for (const auto& c : testing::tls_cases()) {
    if (c.expected.state != Outcome::State::done) continue;
    CAPTURE(c.name);
    const Hello& ours = c.expected.hello;
    std::string difference =
        testing::compare_with_openssl(c.bytes, ours.host, ours.alpn, ours.ech_offered);
    CHECK_MESSAGE(difference.empty(), c.name << ": " << difference);
    ++compared;
  }
  CHECK(compared >= 20);
}

TEST_CASE("openssl view: a rejected-by-everyone input is not seen as a hello") {
  auto view = testing::openssl_view(testing::bytes_of("GET / HTTP/1.1\r\n\r\n"));
  CHECK_FALSE(view.hello_seen);
}

}  // namespace
}  // namespace snisplice::hello
