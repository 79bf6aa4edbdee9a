#include "config/host_pattern.h"

#include <doctest/doctest.h>

#include <string>

using snisplice::config::host_pattern_key;

TEST_CASE("valid host patterns") {
  for (const char* pattern : {"*", "example.com", "Example.COM.", "*.example.com", ".example.org",
                              "a", "x_y-z.example", "1.2.3.4", "~shop[0-9]+\\.example\\.net", "~.*",
                              "bücher.example", "*.例え.jp", ".xn--bcher-kva.example"})
    CHECK_MESSAGE(host_pattern_key(pattern), pattern);
  std::string longest_label(63, 'a');
  CHECK(host_pattern_key(longest_label + ".example"));
  // 4 * 63 + 3 dots = 255 > 253; 3 * 63 + 61 + 3 dots = 253.
  std::string label(63, 'b');
  std::string name_253 = label + "." + label + "." + label + "." + std::string(61, 'c');
  REQUIRE(name_253.size() == 253);
  CHECK(host_pattern_key(name_253));
  CHECK(host_pattern_key(name_253 + "."));
  CHECK(host_pattern_key("*." + name_253));
}

TEST_CASE("invalid host patterns say why") {
  struct Case {
    std::string pattern;
    const char* error;
  };
  std::string label(63, 'b');
  const Case cases[] = {
      {"", "empty host pattern"},
      {"~", "empty regex"},
      {"~a(", "bad regex: missing ): a("},
      {"a.*.example", "a wildcard '*' is allowed only as a leading \"*.\" or alone"},
      {"*example.com", "a wildcard '*' is allowed only as a leading \"*.\" or alone"},
      {"*.*.example", "a wildcard '*' is allowed only as a leading \"*.\" or alone"},
      {"**", "a wildcard '*' is allowed only as a leading \"*.\" or alone"},
      {"*.", "empty name"},
      {".", "empty name"},
      {"..example", "empty label"},
      {"a..example", "empty label"},
      {"example..", "empty label"},
      {"exa mple", "invalid character ' '"},
      {"example.com/", "invalid character '/'"},
      {"example:443", "invalid character ':'"},
      {std::string("a\tb"), "invalid character byte 0x09"},
      {std::string("a\0b", 3), "invalid character byte 0x00"},
      {std::string("bü\0cher", 8), "invalid character byte 0x00"},
      {std::string(64, 'a') + ".example", "label longer than 63 characters"},
      {label + "." + label + "." + label + "." + std::string(62, 'c'),
       "name longer than 253 characters"},
      // 60 bytes of UTF-8 would become a 64-byte A-label.
      {"ü" + std::string(56, 'a') + "ü.example",
       "not a valid international name: punycode encoded data will be too large"},
      {"b\xc3r.example", "not a valid international name: string encoding error"},
      {"\xed\xa0\x80.example", "not a valid international name: string encoding error"},
      {"☃.example", "not a valid international name: string contains a disallowed character"},
  };
  for (const auto& [pattern, error] : cases) {
    auto result = host_pattern_key(pattern);
    REQUIRE_MESSAGE(!result, pattern);
    CHECK_MESSAGE(result.error() == error, pattern);
  }
}

TEST_CASE("pattern keys: lower case, A-labels, one trailing dot dropped; regexes as written") {
  CHECK(host_pattern_key("*.Example.COM.") == "*.example.com");
  CHECK(host_pattern_key("Example.com") == "example.com");
  CHECK(host_pattern_key(".Example.org.") == ".example.org");
  CHECK(host_pattern_key("BÜCHER.example") == "xn--bcher-kva.example");
  CHECK(host_pattern_key("*.bücher.example.") == "*.xn--bcher-kva.example");
  CHECK(host_pattern_key("~Shop.") == "~Shop.");
  CHECK(host_pattern_key("*") == "*");
}
