#pragma once
// IP addresses, socket addresses and CIDRs as plain values, parsed from and printed to the
// forms the configuration and the logs use ("1.2.3.4:80", "[::1]:443", "10.0.0.0/8").
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace snisplice {

// An IPv4 or IPv6 address. IPv4 is kept as 4 bytes, never as ::ffff:a.b.c.d.
struct IpAddress {
  enum class Family : uint8_t { v4, v6 };
  Family family = Family::v4;
  std::array<uint8_t, 16> bytes{};  // v4 uses the first 4

  // A bare literal in inet_pton's strict forms: dotted-quad IPv4 with no leading zeros, short
  // forms or other bases ("127.1", "0x7f000001", "0177.0.0.1", "2130706433") refused; IPv6 without
  // brackets or a zone.
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress from_sockaddr(const sockaddr* sa);
  std::string to_string() const;
  size_t size() const { return family == Family::v4 ? 4 : 16; }
  bool is_v4() const { return family == Family::v4; }
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes the IPv4 address it carries.
  IpAddress unmapped() const;
  auto operator<=>(const IpAddress&) const = default;
};

// An address with a port, convertible to a sockaddr for bind/connect.
struct SocketAddress {
  IpAddress ip;
  uint16_t port = 0;

  // "1.2.3.4:80" or "[2001:db8::1]:80"; the port is required.
  static std::optional<SocketAddress> parse(std::string_view text);
  static SocketAddress from_sockaddr(const sockaddr* sa);
  socklen_t to_sockaddr(sockaddr_storage& out) const;
  std::string to_string() const;
  auto operator<=>(const SocketAddress&) const = default;
};

// The URL Standard's "ends in a number" (WHATWG URL, host parsing): the last label (one trailing
// dot ignored) is decimal digits, or "0x" and hex digits. inet_aton(3), c-ares and browsers read
// such names as IPv4 addresses, each by its own rules ("0177.0.0.1" is 127.0.0.1 to a browser
// and 177.0.0.1 to c-ares 1.18); a DNS name never ends that way (RFC 1123 section 2.1).
bool ends_in_a_number(std::string_view name);

struct Cidr {
  IpAddress network;  // host bits cleared
  uint8_t prefix_len = 0;

  // "10.0.0.0/8", "2001:db8::/32"; a bare address means a host route (/32 or /128).
  static std::optional<Cidr> parse(std::string_view text);
  bool contains(const IpAddress& address) const;  // families must match
  std::string to_string() const;
  auto operator<=>(const Cidr&) const = default;
};

}  // namespace snisplice
