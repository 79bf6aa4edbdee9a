#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace snisplice::config {

// "250ms", "5s", "2m", "1h": one unsigned decimal integer followed by one unit. Compound forms
// such as "1m30s" are refused: one number and one unit per value reads one way only, which is
// what the reference file uses ("90s" says the same). Values that overflow are refused too.
std::optional<Duration> parse_duration(std::string_view text);

// The shortest exact spelling in the same syntax ("300s" -> "5m"), for messages.
std::string format_duration(Duration value);

}  // namespace snisplice::config
