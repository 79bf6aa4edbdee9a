#pragma once
// Feeds the same bytes to fresh parsers in every way a socket could deliver them (whole, split
// in two at every offset, one byte at a time, with bytes after the hello) and reports the first
// way whose outcome differs from the expected one.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "flow/hello/outcome.h"

namespace snisplice::hello::testing {

std::string describe(const Outcome& outcome);

// Above this size, two-way splits are tried at a stride instead of at every offset, so that
// 16 KiB cases stay fast under sanitizers.
inline constexpr size_t kAllSplitsUpTo = 4096;

template <class MakeParser>
std::optional<std::string> check_feeds(MakeParser make_parser, std::span<const uint8_t> bytes,
                                       const Outcome& expected) {
  auto mismatch = [&](const std::string& how, const Outcome& got) -> std::optional<std::string> {
    if (got == expected) return std::nullopt;
    return how + ": got " + describe(got) + ", expected " + describe(expected);
  };
  {
    auto parser = make_parser();
    if (auto m = mismatch("whole", parser.feed(bytes))) return m;
    if (auto m = mismatch("whole, fed again", parser.feed(bytes))) return m;
  }
  size_t stride = bytes.size() <= kAllSplitsUpTo ? 1 : 97;
  for (size_t cut = 0; cut <= bytes.size(); cut += stride) {
    auto parser = make_parser();
    Outcome first = parser.feed(bytes.first(cut));
    if (first.state != Outcome::State::need_more) {
      if (auto m = mismatch("split at " + std::to_string(cut) + " (first part)", first)) return m;
    }
    if (auto m = mismatch("split at " + std::to_string(cut), parser.feed(bytes))) return m;
  }
  {
    auto parser = make_parser();
    Outcome got;
    for (size_t n = 0; n <= bytes.size(); ++n) {
      got = parser.feed(bytes.first(n));
      if (got.state != Outcome::State::need_more) break;
    }
    if (auto m = mismatch("byte by byte", got)) return m;
    if (auto m = mismatch("byte by byte, fed again", parser.feed(bytes))) return m;
  }
  if (expected.state != Outcome::State::need_more) {
    std::vector<uint8_t> trailing(bytes.begin(), bytes.end());
    for (uint8_t b : {0x17, 0x03, 0x03, 0x00, 0x05, 0x0d, 0x0a, 0x0d, 0x0a, 0x00}) trailing.push_back(b);
    auto parser = make_parser();
    if (auto m = mismatch("with trailing bytes", parser.feed(trailing))) return m;
  }
  return std::nullopt;
}

}  // namespace snisplice::hello::testing
