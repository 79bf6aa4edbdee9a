#include "config/duration.h"

#include <doctest/doctest.h>

using snisplice::config::Duration;
using snisplice::config::format_duration;
using snisplice::config::parse_duration;

TEST_CASE("durations take one number and one unit") {
  struct Case {
    const char* text;
    int64_t milliseconds;
  };
  for (auto [text, milliseconds] :
       {Case{"250ms", 250}, Case{"0ms", 0}, Case{"5s", 5000}, Case{"0s", 0}, Case{"2m", 120000},
        Case{"1h", 3600000}, Case{"300s", 300000}, Case{"007s", 7000}}) {
    auto value = parse_duration(text);
    REQUIRE_MESSAGE(value, text);
    CHECK_MESSAGE(value->count() == milliseconds, text);
  }
}

TEST_CASE("durations without a unit, with unknown units, signs, spaces or combos are refused") {
  for (const char* text : {"", "5", "s", "ms", "5 s", " 5s", "5s ", "-5s", "+5s", "5S", "5sec",
                           "1.5s", "1m30s", "5d", "5us", "0x10s", "5ss", "1h1", "5mss"})
    CHECK_MESSAGE(!parse_duration(text), text);
}

TEST_CASE("durations that overflow 64-bit milliseconds are refused") {
  CHECK(parse_duration("9223372036854775807ms"));
  CHECK_FALSE(parse_duration("9223372036854775808ms"));
  CHECK_FALSE(parse_duration("9223372036854776s"));
  CHECK_FALSE(parse_duration("99999999999999999999999h"));
}

TEST_CASE("durations print in the largest exact unit") {
  CHECK(format_duration(Duration(300000)) == "5m");
  CHECK(format_duration(Duration(5000)) == "5s");
  CHECK(format_duration(Duration(1500)) == "1500ms");
  CHECK(format_duration(Duration(7200000)) == "2h");
  CHECK(format_duration(Duration(0)) == "0ms");
}
