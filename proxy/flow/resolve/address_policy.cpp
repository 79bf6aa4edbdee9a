#include "flow/resolve/address_policy.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>

namespace snisplice::resolve {
namespace {

// A prefix as bytes; only the first `prefix_len` bits count.
struct Range {
  std::array<uint8_t, 16> bytes;
  uint8_t prefix_len;
  std::string_view reason;
};

bool in_range(const std::array<uint8_t, 16>& address, const Range& range) {
  unsigned full = range.prefix_len / 8;
  if (!std::equal(range.bytes.begin(), range.bytes.begin() + full, address.begin())) return false;
  unsigned rest = range.prefix_len % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff00u >> rest);
  return (address[full] & mask) == (range.bytes[full] & mask);
}

const Range* find_range(const std::array<uint8_t, 16>& address, std::span<const Range> ranges) {
  auto it = std::find_if(ranges.begin(), ranges.end(), [&](const Range& r) { return in_range(address, r); });
  return it == ranges.end() ? nullptr : &*it;
}

// IANA IPv4 Special-Purpose Address Registry (RFC 6890, RFC 8190 and later entries): every block
// not globally reachable; plus 224.0.0.0/4 multicast (IPv4 Multicast Address Space registry) and
// 192.88.99.0/24, the 6to4 relay anycast deprecated by RFC 7526. The registry's few globally
// reachable anycast addresses inside 192.0.0.0/24 (PCP 192.0.0.9, TURN 192.0.0.10) are refused
// with their block: no TLS service lives there, and allow_networks can open them.
// Blocks the registry marks globally reachable (AS112 192.31.196.0/24, 192.175.48.0/24, AMT
// 192.52.193.0/24) are ordinary destinations.
constexpr Range kV4Denied[] = {
    {{0}, 8, "this network 0.0.0.0/8"},
    {{10}, 8, "private 10.0.0.0/8"},
    {{100, 64}, 10, "shared address space (CGNAT) 100.64.0.0/10"},
    {{127}, 8, "loopback 127.0.0.0/8"},
    {{169, 254}, 16, "link-local 169.254.0.0/16"},
    {{172, 16}, 12, "private 172.16.0.0/12"},
    {{192, 0, 0}, 24, "IETF protocol assignments 192.0.0.0/24"},
    {{192, 0, 2}, 24, "documentation 192.0.2.0/24"},
    {{192, 88, 99}, 24, "deprecated 6to4 relay anycast 192.88.99.0/24"},
    {{192, 168}, 16, "private 192.168.0.0/16"},
    {{198, 18}, 15, "benchmarking 198.18.0.0/15"},
    {{198, 51, 100}, 24, "documentation 198.51.100.0/24"},
    {{203, 0, 113}, 24, "documentation 203.0.113.0/24"},
    {{224}, 4, "multicast 224.0.0.0/4"},
    {{255, 255, 255, 255}, 32, "limited broadcast 255.255.255.255/32"},
    {{240}, 4, "reserved 240.0.0.0/4"},
};

// IPv6 prefixes that carry an IPv4 address, judged by that address (RFC 4291 2.5.5.2,
// RFC 6052 2.1, RFC 3056 2). Mapped addresses are handled by IpAddress::unmapped().
constexpr Range kNat64 = {{0x00, 0x64, 0xff, 0x9b}, 96, "NAT64 64:ff9b::/96"};
constexpr Range k6to4 = {{0x20, 0x02}, 16, "6to4 2002::/16"};
constexpr std::string_view kMapped = "IPv4-mapped ::ffff:0:0/96";

// IANA IPv6 Special-Purpose Address Registry (RFC 6890, RFC 8190; with 3fff::/20 RFC 9637,
// 5f00::/16 RFC 9602, 100:0:0:1::/64 RFC 9780), plus fec0::/10 (deprecated site-local,
// RFC 3879), ff00::/8 multicast, and ::/96 IPv4-compatible (deprecated, RFC 4291 2.5.5.1).
// 2001::/23 is refused whole, Teredo (2001::/32, which tunnels to an embedded IPv4 server)
// included; like 192.0.0.0/24, its globally reachable anycast sub-blocks (PCP, TURN, AMT,
// AS112, ORCHIDv2, DRIP) hold no TLS service. Checked in order: the first match decides.
constexpr Range kV6Denied[] = {
    {{}, 128, "unspecified ::/128"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback ::1/128"},
    {{}, 96, "IPv4-compatible ::/96"},
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "local-use NAT64 64:ff9b:1::/48"},
    {{0x01, 0x00, 0, 0, 0, 0, 0, 0}, 64, "discard-only 100::/64"},
    {{0x01, 0x00, 0, 0, 0, 0, 0, 1}, 64, "dummy prefix 100:0:0:1::/64"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation 2001:db8::/32"},
    {{0x20, 0x01, 0x00}, 23, "IETF protocol assignments 2001::/23"},
    {{0x3f, 0xff, 0x00}, 20, "documentation 3fff::/20"},
    {{0x5f, 0x00}, 16, "segment routing SIDs 5f00::/16"},
    {{0xfc}, 7, "unique local fc00::/7"},
    {{0xfe, 0x80}, 10, "link-local fe80::/10"},
    {{0xfe, 0xc0}, 10, "site-local fec0::/10"},
    {{0xff}, 8, "multicast ff00::/8"},
};

// Everything outside 2000::/3 (other than the prefixes above) is reserved by the IETF (IPv6
// Address Space registry) and never a legitimate destination.
constexpr Range kGlobalUnicast = {{0x20}, 3, "global unicast 2000::/3"};
constexpr std::string_view kReservedV6 = "reserved, outside 2000::/3";

constexpr std::string_view kOwnAddress = "proxy's own address";
constexpr std::string_view kOwnListener = "proxy's own listener";
constexpr std::string_view kOrdinary = "not special-purpose";
constexpr std::string_view kInAllowNetworks = "in allow_networks";
constexpr std::string_view kNotInAllowNetworks = "not in allow_networks";

IpAddress embedded_v4(const IpAddress& v6, size_t offset) {
  IpAddress v4;
  std::copy_n(v6.bytes.begin() + static_cast<std::ptrdiff_t>(offset), 4, v4.bytes.begin());
  return v4;
}

// A CIDR inside ::ffff:0:0/96 with a prefix of 96 or more describes IPv4 addresses.
Cidr unmapped_cidr(const Cidr& cidr) {
  if (cidr.network.is_v4() || cidr.prefix_len < 96 || cidr.network.unmapped().family != IpAddress::Family::v4)
    return cidr;
  return Cidr{cidr.network.unmapped(), static_cast<uint8_t>(cidr.prefix_len - 96)};
}

bool is_unspecified(const IpAddress& address) {
  return std::all_of(address.bytes.begin(), address.bytes.begin() + static_cast<std::ptrdiff_t>(address.size()),
                     [](uint8_t b) { return b == 0; });
}

bool is_loopback(const IpAddress& address) {
  if (address.is_v4()) return address.bytes[0] == 127;
  static constexpr std::array<uint8_t, 16> kLoopback6 = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return address.bytes == kLoopback6;
}

// The address connect() delivers to: 0.0.0.0 and :: are loopback to the kernel (Linux
// ip_route_connect / ip6_route_output).
IpAddress delivered_to(const IpAddress& address) {
  if (!is_unspecified(address)) return address;
  IpAddress loopback = address;
  loopback.bytes[address.size() - 1] = 1;
  if (address.is_v4()) loopback.bytes[0] = 127;
  return loopback;
}

}  // namespace

AddressPolicy::AddressPolicy(Mode mode, ThisHost host, std::vector<Cidr> networks)
    : mode_(mode), own_(std::move(host.addresses)), listeners_(std::move(host.listeners)), networks_(std::move(networks)) {
  for (auto& address : own_) address = address.unmapped();
  for (auto& listener : listeners_) listener.ip = listener.ip.unmapped();
}

AddressPolicy AddressPolicy::special_ranges_denied(ThisHost host) {
  return AddressPolicy(Mode::special_ranges_denied, std::move(host), {});
}

AddressPolicy AddressPolicy::allow_only(std::vector<Cidr> networks, ThisHost host) {
  for (auto& network : networks) network = unmapped_cidr(network);
  return AddressPolicy(Mode::allow_only, std::move(host), std::move(networks));
}

bool AddressPolicy::reaches_own_listener(const SocketAddress& target) const {
  const IpAddress address = delivered_to(target.ip.unmapped());
  const bool local = is_loopback(address) || std::find(own_.begin(), own_.end(), address) != own_.end();
  return std::any_of(listeners_.begin(), listeners_.end(), [&](const SocketAddress& listener) {
    if (listener.port != target.port || listener.ip.family != address.family) return false;
    return is_unspecified(listener.ip) ? local : delivered_to(listener.ip) == address;
  });
}

Verdict AddressPolicy::check(const SocketAddress& target) const {
  Verdict verdict = check(target.ip);
  if (verdict.allowed && reaches_own_listener(target)) return {false, kOwnListener, {}};
  return verdict;
}

Verdict AddressPolicy::check_v4(const IpAddress& v4, std::string_view embedded_in) const {
  if (const Range* range = find_range(v4.bytes, kV4Denied)) return {false, range->reason, embedded_in};
  if (std::find(own_.begin(), own_.end(), v4) != own_.end()) return {false, kOwnAddress, embedded_in};
  return {true, kOrdinary, embedded_in};
}

Verdict AddressPolicy::check(const IpAddress& address) const {
  IpAddress plain = address.unmapped();
  switch (mode_) {
    case Mode::allow_only: {
      bool inside = std::any_of(networks_.begin(), networks_.end(), [&](const Cidr& c) { return c.contains(plain); });
      return {inside, inside ? kInAllowNetworks : kNotInAllowNetworks, {}};
    }
    case Mode::special_ranges_denied:
      break;
  }
  if (plain.is_v4()) return check_v4(plain, address.is_v4() ? std::string_view{} : kMapped);
  if (in_range(plain.bytes, kNat64)) return check_v4(embedded_v4(plain, 12), kNat64.reason);
  if (in_range(plain.bytes, k6to4)) return check_v4(embedded_v4(plain, 2), k6to4.reason);
  if (const Range* range = find_range(plain.bytes, kV6Denied)) return {false, range->reason, {}};
  if (!in_range(plain.bytes, kGlobalUnicast)) return {false, kReservedV6, {}};
  if (std::find(own_.begin(), own_.end(), plain) != own_.end()) return {false, kOwnAddress, {}};
  return {true, kOrdinary, {}};
}

}  // namespace snisplice::resolve
