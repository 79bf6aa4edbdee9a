#include "flow/hello/host_name.h"

#include <doctest/doctest.h>

#include <string>

namespace snisplice::hello {
namespace {

TEST_CASE("host name: valid names are lower-cased and lose one trailing dot") {
  CHECK(normalize_host_name("example.com") == "example.com");
  CHECK(normalize_host_name("EXAMPLE.Com.") == "example.com");
  CHECK(normalize_host_name("a") == "a");
  CHECK(normalize_host_name("x-1_y.example") == "x-1_y.example");
  CHECK(normalize_host_name("10.0.0.1") == "10.0.0.1");
  CHECK(normalize_host_name(std::string(63, 'z')) == std::string(63, 'z'));
}

TEST_CASE("host name: length limits") {
  std::string a63(63, 'a');
  std::string n255 = a63 + "." + a63 + "." + a63 + "." + a63;
  CHECK(normalize_host_name(n255) == n255);
  CHECK_FALSE(normalize_host_name(n255 + "."));  // 256 bytes, even though the dot is dropped
  CHECK_FALSE(normalize_host_name(std::string(64, 'a')));
  CHECK_FALSE(normalize_host_name(""));
}

TEST_CASE("host name: empty labels and bad characters are invalid") {
  for (const char* bad : {".", "..", ".a", "a..b", "a.b..", "a b", "a\tb", "a:1", "a/b", "a@b",
                          "*.a", "a\xff", "caf\xc3\xa9", "[::1]", "a\\b"}) {
    CAPTURE(bad);
    CHECK_FALSE(normalize_host_name(bad));
  }
  CHECK_FALSE(normalize_host_name(std::string("a\0b", 3)));
}

TEST_CASE("host name: ipv6 literals") {
  CHECK(normalize_ipv6_literal("2001:DB8::0:1") == "2001:db8::1");
  CHECK(normalize_ipv6_literal("::") == "::");
  CHECK_FALSE(normalize_ipv6_literal("192.0.2.1"));
  CHECK_FALSE(normalize_ipv6_literal("::g"));
  CHECK_FALSE(normalize_ipv6_literal("fe80::1%lo"));
  CHECK_FALSE(normalize_ipv6_literal(""));
}

}  // namespace
}  // namespace snisplice::hello
