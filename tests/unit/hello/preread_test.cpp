#include "flow/hello/preread.h"

#include <doctest/doctest.h>

#include <cctype>
#include <set>

#include "tls_builder.h"

namespace snisplice::hello {
namespace {

TEST_CASE("preread: the listener protocol picks the parser") {
  auto tls = testing::hello_with({testing::sni("example.com")});
  auto http = testing::bytes_of("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");

  PrereadParser tls_on_tls(Protocol::tls, 16384);
  CHECK(tls_on_tls.feed(tls).hello.host == "example.com");
  PrereadParser http_on_tls(Protocol::tls, 16384);
  CHECK(http_on_tls.feed(http) == Outcome::rejected(Reject::not_tls));

  PrereadParser http_on_http(Protocol::http, 16384);
  CHECK(http_on_http.feed(http).hello.host == "example.com");
  PrereadParser tls_on_http(Protocol::http, 16384);
  CHECK(tls_on_http.feed(tls) == Outcome::rejected(Reject::not_http));
}

TEST_CASE("preread: max_bytes reaches the parser") {
  auto tls = testing::hello_with({testing::sni("example.com")});
  PrereadParser small(Protocol::tls, tls.size() - 1);
  CHECK(small.feed(tls) == Outcome::rejected(Reject::too_large));
}

TEST_CASE("reject labels are distinct metric-safe names, and kAllRejects lists every reason") {
  std::set<std::string_view> labels;
  for (Reject reason : kAllRejects) {
    auto label = reject_label(reason);
    CAPTURE(label);
    CHECK(!label.empty());
    for (char c : label) CHECK((std::islower(static_cast<unsigned char>(c)) || c == '_'));
    labels.insert(label);
  }
  CHECK(labels.size() == kAllRejects.size());
  CHECK(labels.count("unknown") == 0);
  // Any value with a real label must be in kAllRejects (enum values are dense from 0).
  for (int i = 0; i < 64; ++i) {
    auto label = reject_label(static_cast<Reject>(i));
    CHECK((label == "unknown") == (i >= static_cast<int>(kAllRejects.size())));
  }
}

}  // namespace
}  // namespace snisplice::hello
