#include "address_literal.h"
#include "flow/resolve/address_policy.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using snisplice::Cidr;
using snisplice::IpAddress;
using snisplice::SocketAddress;
using snisplice::resolve::AddressPolicy;
using snisplice::resolve::ThisHost;
using snisplice::resolve::Verdict;

namespace {

using snisplice::test::ip;

Cidr cidr(std::string_view text) {
  auto parsed = Cidr::parse(text);
  REQUIRE_MESSAGE(parsed, text);
  return *parsed;
}

// First and last address of a CIDR, and their outside neighbours (absent at the ends of the space).
IpAddress last_of(const Cidr& c) {
  IpAddress out = c.network;
  unsigned bits = static_cast<unsigned>(out.size() * 8);
  for (unsigned bit = c.prefix_len; bit < bits; ++bit) out.bytes[bit / 8] |= static_cast<uint8_t>(0x80u >> (bit % 8));
  return out;
}

std::optional<IpAddress> step(IpAddress address, int delta) {
  for (size_t i = address.size(); i-- > 0;) {
    if (delta > 0 ? address.bytes[i]++ != 0xff : address.bytes[i]-- != 0x00) return address;
  }
  return std::nullopt;  // wrapped around
}

struct RangeCase {
  const char* cidr;
  const char* reason;
  bool whole = true;  // false: a sub-block whose neighbours may share the reason
};

// Written from the registries independently of the implementation's table.
const RangeCase kV4Ranges[] = {
    {"0.0.0.0/8", "0.0.0.0/8"},         {"10.0.0.0/8", "10.0.0.0/8"},
    {"100.64.0.0/10", "100.64.0.0/10"}, {"127.0.0.0/8", "127.0.0.0/8"},
    {"169.254.0.0/16", "169.254.0.0/16"}, {"172.16.0.0/12", "172.16.0.0/12"},
    {"192.0.0.0/24", "192.0.0.0/24"},   {"192.0.2.0/24", "192.0.2.0/24"},
    {"192.88.99.0/24", "192.88.99.0/24"}, {"192.168.0.0/16", "192.168.0.0/16"},
    {"198.18.0.0/15", "198.18.0.0/15"}, {"198.51.100.0/24", "198.51.100.0/24"},
    {"203.0.113.0/24", "203.0.113.0/24"}, {"224.0.0.0/4", "224.0.0.0/4"},
    {"240.0.0.0/5", "240.0.0.0/4", false},     {"248.0.0.0/6", "240.0.0.0/4", false},
    {"255.255.255.255/32", "255.255.255.255"},
};

const RangeCase kV6Ranges[] = {
    {"::/128", "::/128"},
    {"::1/128", "::1/128"},
    {"::2/127", "::/96", false},
    {"::0.0.1.0/120", "::/96", false},
    {"::1:0:0/96", "outside 2000::/3", false},
    {"64:ff9b:1::/48", "64:ff9b:1::/48"},
    {"100::/64", "100::/64"},
    {"100:0:0:1::/64", "100:0:0:1::/64"},
    {"2001::/32", "2001::/23", false},
    {"2001:1::/32", "2001::/23", false},
    {"2001:1fe::/31", "2001::/23", false},
    {"2001::/23", "2001::/23"},
    {"2001:db8::/32", "2001:db8::/32"},
    {"3fff::/20", "3fff::/20"},
    {"5f00::/16", "5f00::/16"},
    {"fc00::/7", "fc00::/7"},
    {"fe80::/10", "fe80::/10"},
    {"fec0::/10", "fec0::/10"},
    {"ff00::/8", "ff00::/8"},
    {"4000::/3", "outside 2000::/3", false},
    {"e000::/4", "outside 2000::/3", false},
};

const AddressPolicy kDefault = AddressPolicy::special_ranges_denied({});

void check_denied(const AddressPolicy& policy, const IpAddress& address, std::string_view reason) {
  CAPTURE(address.to_string());
  Verdict v = policy.check(address);
  CHECK_FALSE(v.allowed);
  CHECK_MESSAGE(v.reason.find(reason) != std::string_view::npos, v.reason);
}

// Just outside a range: either allowed or refused for a different range.
void check_outside(const AddressPolicy& policy, const std::optional<IpAddress>& address, std::string_view reason) {
  if (!address) return;
  CAPTURE(address->to_string());
  Verdict v = policy.check(*address);
  CHECK((v.allowed || v.reason.find(reason) == std::string_view::npos));
}

void check_range(const RangeCase& c) {
  std::string range_text = c.cidr;
  CAPTURE(range_text);
  Cidr range = cidr(c.cidr);
  IpAddress first = range.network;
  IpAddress last = last_of(range);
  check_denied(kDefault, first, c.reason);
  check_denied(kDefault, last, c.reason);
  if (auto middle = step(first, 1); middle && range.contains(*middle)) check_denied(kDefault, *middle, c.reason);
  if (c.whole) {
    check_outside(kDefault, step(first, -1), c.reason);
    check_outside(kDefault, step(last, 1), c.reason);
  }
}

IpAddress nat64(const IpAddress& v4) {
  IpAddress out = ip("64:ff9b::");
  std::copy_n(v4.bytes.begin(), 4, out.bytes.begin() + 12);
  return out;
}

IpAddress six_to_four(const IpAddress& v4) {
  IpAddress out = ip("2002::1");
  std::copy_n(v4.bytes.begin(), 4, out.bytes.begin() + 2);
  return out;
}

IpAddress mapped(const IpAddress& v4) {
  IpAddress out = ip("::ffff:0:0");
  std::copy_n(v4.bytes.begin(), 4, out.bytes.begin() + 12);
  return out;
}

}  // namespace

TEST_CASE("default: every IPv4 special range is refused at both edges, not beyond") {
  for (const auto& c : kV4Ranges) check_range(c);
}

TEST_CASE("default: every IPv6 special range is refused at both edges, not beyond") {
  for (const auto& c : kV6Ranges) check_range(c);
}

TEST_CASE("default: neighbours of the ranges are allowed") {
  for (const char* ok : {"1.0.0.0", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255",
                         "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "192.0.1.0",
                         "192.0.3.0", "192.88.98.255", "192.88.100.0", "192.167.255.255", "192.169.0.0",
                         "198.17.255.255", "198.20.0.0", "198.51.99.255", "198.51.101.0", "203.0.112.255",
                         "203.0.114.0", "223.255.255.255", "8.8.8.8", "192.31.196.1", "192.52.193.1",
                         "2001:200::1", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::", "2606:4700::1",
                         "3ffe:ffff::1", "3fff:1000::", "2620:4f:8000::1", "2003::1"}) {
    std::string text = ok;
    CAPTURE(text);
    Verdict v = kDefault.check(ip(ok));
    CHECK(v.allowed);
    CHECK(v.embedded_in.empty());
  }
}

TEST_CASE("default: IPv6 outside 2000::/3 is reserved space") {
  for (const char* reserved : {"5eff:ffff::1", "5f01::", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1fff::1",
                               "4000::1", "::1:0:0:0"}) {
    std::string text = reserved;
    CAPTURE(text);
    auto v = kDefault.check(ip(reserved));
    CHECK_FALSE(v.allowed);
    CHECK(v.reason.find("outside 2000::/3") != std::string_view::npos);
  }
}

TEST_CASE("default: IPv4-mapped addresses are judged as their IPv4") {
  for (const auto& c : kV4Ranges) {
    std::string range_text = c.cidr;
  CAPTURE(range_text);
    auto v = kDefault.check(mapped(cidr(c.cidr).network));
    CHECK_FALSE(v.allowed);
    CHECK(v.reason.find(c.reason) != std::string_view::npos);
    CHECK(v.embedded_in.find("::ffff:0:0/96") != std::string_view::npos);
  }
  auto ok = kDefault.check(ip("::ffff:8.8.8.8"));
  CHECK(ok.allowed);
  CHECK(kDefault.check(ip("::ffff:169.254.169.254")).reason.find("169.254.0.0/16") != std::string_view::npos);
}

TEST_CASE("default: NAT64 64:ff9b::/96 is judged by the embedded IPv4") {
  for (const auto& c : kV4Ranges) {
    std::string range_text = c.cidr;
  CAPTURE(range_text);
    auto v = kDefault.check(nat64(last_of(cidr(c.cidr))));
    CHECK_FALSE(v.allowed);
    CHECK(v.reason.find(c.reason) != std::string_view::npos);
    CHECK(v.embedded_in.find("64:ff9b::/96") != std::string_view::npos);
  }
  CHECK(kDefault.check(ip("64:ff9b::8.8.8.8")).allowed);
  // Outside the /96 but inside 64:ff9b::/32: reserved space.
  CHECK_FALSE(kDefault.check(ip("64:ff9b:0:1::8.8.8.8")).allowed);
}

TEST_CASE("default: 6to4 2002::/16 is judged by the embedded IPv4") {
  for (const auto& c : kV4Ranges) {
    std::string range_text = c.cidr;
  CAPTURE(range_text);
    auto v = kDefault.check(six_to_four(cidr(c.cidr).network));
    CHECK_FALSE(v.allowed);
    CHECK(v.reason.find(c.reason) != std::string_view::npos);
    CHECK(v.embedded_in.find("2002::/16") != std::string_view::npos);
  }
  auto ok = kDefault.check(ip("2002:808:808::1"));
  CHECK(ok.allowed);
  CHECK(ok.embedded_in.find("2002::/16") != std::string_view::npos);
}

TEST_CASE("default: the cloud metadata address is refused in every form") {
  for (const char* form : {"169.254.169.254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::"}) {
    std::string text = form;
    CAPTURE(text);
    CHECK_FALSE(kDefault.check(ip(form)).allowed);
  }
  CHECK_FALSE(kDefault.check(ip("fd00:ec2::254")).allowed);  // AWS IPv6 metadata (ULA)
}

TEST_CASE("default: the proxy's own addresses are refused") {
  auto policy = AddressPolicy::special_ranges_denied({{ip("8.8.4.4"), ip("::ffff:1.1.1.1"), ip("2606:4700::1111")}, {}});
  for (const char* own : {"8.8.4.4", "::ffff:8.8.4.4", "64:ff9b::8.8.4.4", "2002:808:404::", "1.1.1.1",
                          "2606:4700::1111"}) {
    std::string text = own;
    CAPTURE(text);
    auto v = policy.check(ip(own));
    CHECK_FALSE(v.allowed);
    CHECK(v.reason == "proxy's own address");
  }
  CHECK(policy.check(ip("8.8.4.5")).allowed);
  CHECK(policy.check(ip("2606:4700::1112")).allowed);
  // Special ranges keep their own reason even when they are also the proxy's address.
  auto loopback = AddressPolicy::special_ranges_denied({{ip("127.0.0.1")}, {}}).check(ip("127.0.0.1"));
  CHECK(loopback.reason.find("loopback") != std::string_view::npos);
}

TEST_CASE("allowlist: allowed iff inside a listed network") {
  auto policy = AddressPolicy::allow_only({cidr("203.0.113.0/24"), cidr("10.1.0.0/16"), cidr("fd00:1::/32")}, {});
  CHECK(policy.check(ip("203.0.113.0")).allowed);
  CHECK(policy.check(ip("203.0.113.255")).allowed);
  CHECK(policy.check(ip("10.1.255.255")).allowed);
  CHECK(policy.check(ip("fd00:1:ffff::1")).allowed);
  CHECK(policy.check(ip("203.0.113.7")).reason == "in allow_networks");
  for (const char* outside : {"203.0.112.255", "203.0.114.0", "10.0.255.255", "10.2.0.0", "8.8.8.8", "127.0.0.1",
                              "fd00:2::1", "2606:4700::1"}) {
    std::string text = outside;
    CAPTURE(text);
    auto v = policy.check(ip(outside));
    CHECK_FALSE(v.allowed);
    CHECK(v.reason == "not in allow_networks");
  }
}

TEST_CASE("allowlist: replaces the default, so listed private ranges are allowed") {
  auto policy = AddressPolicy::allow_only({cidr("127.0.0.0/8"), cidr("::1/128")}, {});
  CHECK(policy.check(ip("127.0.0.1")).allowed);
  CHECK(policy.check(ip("::1")).allowed);
  CHECK_FALSE(policy.check(ip("8.8.8.8")).allowed);
}

TEST_CASE("allowlist: mapped addresses and mapped CIDRs count as IPv4") {
  auto policy = AddressPolicy::allow_only({cidr("203.0.113.0/24"), cidr("::ffff:10.0.0.0/104")}, {});
  CHECK(policy.check(ip("::ffff:203.0.113.9")).allowed);
  CHECK(policy.check(ip("10.200.0.1")).allowed);
  CHECK(policy.check(ip("::ffff:10.200.0.1")).allowed);
  CHECK_FALSE(policy.check(ip("::ffff:11.0.0.1")).allowed);
  // NAT64 forms are not the listed IPv4 network.
  CHECK_FALSE(policy.check(ip("64:ff9b::203.0.113.9")).allowed);
}

TEST_CASE("allowlist: empty list allows nothing") {
  auto policy = AddressPolicy::allow_only({}, {});
  CHECK_FALSE(policy.check(ip("8.8.8.8")).allowed);
  CHECK_FALSE(policy.check(ip("2606:4700::1")).allowed);
}

// Every strict spelling of this host's addresses a name or literal can carry; the non-strict ones
// ("127.1", "2130706433", "0x7f000001", "0177.0.0.1") are no address at all (net_address_test,
// host_name_test) and never reach the policy.
constexpr const char* kThisHostSpellings[] = {
    "127.0.0.1", "127.0.0.2", "127.1.2.3", "127.255.255.254", "0.0.0.0", "0.1.2.3",
    "::1", "0:0:0:0:0:0:0:1", "::", "::ffff:127.0.0.1", "::FFFF:7F00:1", "0:0:0:0:0:ffff:7f00:1",
    "::ffff:127.0.0.2", "::ffff:0.0.0.0", "::127.0.0.1", "::7f00:1", "::0.0.0.1",
    "64:ff9b::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::7f00:2", "64:ff9b::", "64:ff9b:1::7f00:1",
    "64:ff9b:1:ffff::1", "2002:7f00:1::", "2002:7f00:1::1", "2002::1", "::ffff:64:ff9b:7f00:1",
};

TEST_CASE("default: every spelling of this host's loopback and unspecified addresses is refused") {
  for (const char* text : kThisHostSpellings) {
    CAPTURE(text);
    CHECK_FALSE(kDefault.check(ip(text)).allowed);
    for (uint16_t port : {0, 443, 8443}) CHECK_FALSE(kDefault.check(SocketAddress{ip(text), port}).allowed);
  }
}

TEST_CASE("allowlist of one loopback address: exactly that address, however written, and nothing else") {
  // How the end-to-end tests tell "allowed" from "forbidden" with loopback addresses only.
  auto policy = AddressPolicy::allow_only({cidr("127.0.0.2/32")}, {});
  for (const char* same : {"127.0.0.2", "::ffff:127.0.0.2", "::FFFF:7F00:2", "0:0:0:0:0:ffff:7f00:2"}) {
    CAPTURE(same);
    CHECK(policy.check(SocketAddress{ip(same), 443}).allowed);
  }
  for (const char* text : kThisHostSpellings) {
    std::string spelled = text;
    if (ip(text).unmapped() == ip("127.0.0.2")) continue;
    CAPTURE(spelled);
    auto verdict = policy.check(SocketAddress{ip(text), 443});
    CHECK_FALSE(verdict.allowed);
    CHECK(verdict.reason == "not in allow_networks");
  }
}

TEST_CASE("every mode: the proxy's own listening sockets are refused, other ports are the policy's") {
  ThisHost host{{ip("8.8.4.4"), ip("2606:4700::1111"), ip("127.0.0.5")},
                {*SocketAddress::parse("127.0.0.5:8443"), *SocketAddress::parse("[2606:4700::1111]:443"),
                 *SocketAddress::parse("0.0.0.0:8080"), *SocketAddress::parse("[::]:8080")}};
  auto allow_all = AddressPolicy::allow_only({cidr("0.0.0.0/0"), cidr("::/0")}, host);
  auto check = [&](const char* target) { return allow_all.check(*SocketAddress::parse(target)); };
  for (const char* self : {"127.0.0.5:8443", "[::ffff:127.0.0.5]:8443", "[2606:4700::1111]:443",
                           // a wildcard listener through any local address of its family
                           "127.0.0.1:8080", "127.9.9.9:8080", "0.0.0.0:8080", "8.8.4.4:8080",
                           "127.0.0.5:8080", "[::ffff:127.0.0.1]:8080", "[::1]:8080", "[::]:8080",
                           "[2606:4700::1111]:8080"}) {
    CAPTURE(self);
    auto verdict = check(self);
    CHECK_FALSE(verdict.allowed);
    CHECK(verdict.reason == "proxy's own listener");
  }
  for (const char* other : {"127.0.0.5:8444", "127.0.0.6:8443", "127.0.0.1:8443", "[2606:4700::1112]:443",
                            "8.8.4.4:443", "8.8.4.5:8080", "[2606:4700::1112]:8080", "8.8.8.8:8080",
                            "[2606:4700::1111]:8443"}) {
    CAPTURE(other);
    CHECK(check(other).allowed);
  }
  // 0.0.0.0 is loopback to connect(): a listener on 127.0.0.1 is reached through it.
  auto on_loopback = AddressPolicy::allow_only({cidr("0.0.0.0/0"), cidr("::/0")},
                                               {{}, {*SocketAddress::parse("127.0.0.1:8443"),
                                                     *SocketAddress::parse("[::1]:8443")}});
  CHECK_FALSE(on_loopback.check(*SocketAddress::parse("0.0.0.0:8443")).allowed);
  CHECK_FALSE(on_loopback.check(*SocketAddress::parse("[::]:8443")).allowed);
  CHECK(on_loopback.check(*SocketAddress::parse("127.0.0.2:8443")).allowed);
  // The default refuses this host whatever the port; the listener check changes nothing there.
  auto by_default = AddressPolicy::special_ranges_denied(host);
  CHECK(by_default.check(*SocketAddress::parse("8.8.4.4:1")).reason == "proxy's own address");
  CHECK(by_default.check(*SocketAddress::parse("8.8.8.8:8080")).allowed);
}
