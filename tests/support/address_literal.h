#pragma once
// An address written in a doctest test: one that does not parse fails the test, naming it.
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "base/net_address.h"

namespace snisplice::test {

inline IpAddress ip(std::string_view text) {
  auto parsed = IpAddress::parse(text);
  REQUIRE_MESSAGE(parsed.has_value(), std::string(text));
  return *parsed;
}

}  // namespace snisplice::test
