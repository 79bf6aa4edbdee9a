#pragma once
// Syntax of the `host:` patterns of a route table (flow/route gives them meaning):
//   "name.example"    exact name
//   "*.example"       every name below example, not example itself
//   ".example"        example and every name below it
//   "~regex"          RE2 syntax, matched against the whole name
//   "*"               everything, including connections with no name
// Names: letters, digits, '-', '_' and '.', labels of 1-63 bytes, at most 253 bytes, one
// trailing dot allowed. Names with non-ASCII characters (IDN U-labels) are checked in the
// A-label form the router converts them to, with the same libidn2 conversion.
#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace snisplice::config {

// The form in which two patterns are the same pattern (ASCII lower case, A-labels, one
// trailing dot dropped; regexes exactly as written), or why `pattern` is not a valid pattern.
tl::expected<std::string, std::string> host_pattern_key(std::string_view pattern);

}  // namespace snisplice::config
