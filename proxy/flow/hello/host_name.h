#pragma once
// Host name validation shared by TLS SNI and the HTTP Host header, so both listeners accept
// and normalise names the same way.
#include <optional>
#include <string>
#include <string_view>

namespace snisplice::hello {

// A DNS name as a client may send it: 1..255 bytes of letters, digits, '-', '.' and '_'
// ('_' is not a host name character, but appears in real service names and is harmless to
// route on), labels of 1..63 bytes, and at most one trailing dot. Returns the name lower-cased
// without the trailing dot, or nullopt when invalid. IPv4 literals pass as names in their strict
// dotted-quad form only: a name whose last label is a number ("127.1", "2130706433",
// "0x7f000001", "0177.0.0.1", "1.2.3.4.5") is invalid unless it is exactly such a literal.
std::optional<std::string> normalize_host_name(std::string_view name);

// An IPv6 literal without brackets; returns its canonical text (RFC 5952), or nullopt.
std::optional<std::string> normalize_ipv6_literal(std::string_view literal);

}  // namespace snisplice::hello
