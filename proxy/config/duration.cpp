#include "config/duration.h"

#include <charconv>
#include <cstdint>
#include <limits>

namespace snisplice::config {
namespace {

struct Unit {
  std::string_view suffix;
  int64_t milliseconds;
};

// Longest unit first, so format_duration picks the shortest spelling.
constexpr Unit kUnits[] = {{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  std::string_view suffix = text.substr(digits);
  for (const auto& unit : kUnits) {
    if (suffix != unit.suffix) continue;
    int64_t count = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + digits, count);
    if (ec != std::errc{} || end != text.data() + digits) return std::nullopt;
    if (count > std::numeric_limits<int64_t>::max() / unit.milliseconds) return std::nullopt;
    return Duration(count * unit.milliseconds);
  }
  return std::nullopt;
}

std::string format_duration(Duration value) {
  int64_t ms = value.count();
  for (const auto& unit : kUnits)
    if (ms != 0 && ms % unit.milliseconds == 0)
      return std::to_string(ms / unit.milliseconds) + std::string(unit.suffix);
  return std::to_string(ms) + "ms";
}

}  // namespace snisplice::config
