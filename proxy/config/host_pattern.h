#pragma once
// Syntax of the `host:` patterns of a route table (the router gives them meaning):
//   "name.example"    exact name
//   "*.example"       every name below example, not example itself
//   ".example"        example and every name below it
//   "~regex"          RE2 syntax, matched against the whole name
//   "*"               everything, including connections with no name
// Names: letters, digits, '-', '_' and '.', labels of 1-63 bytes, at most 253 bytes, one
// trailing dot allowed. Labels with non-ASCII bytes (IDN U-labels) must be valid UTF-8; the
// router converts them to A-labels, so their length is checked there.
#include <optional>
#include <string>
#include <string_view>

namespace snisplice::config {

// Why `pattern` is not a valid host pattern, or nullopt when it is.
std::optional<std::string> host_pattern_error(std::string_view pattern);

// The form in which two patterns are the same pattern: ASCII lower case with one trailing dot
// dropped; regexes exactly as written.
std::string host_pattern_key(std::string_view pattern);

}  // namespace snisplice::config
