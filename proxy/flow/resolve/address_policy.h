#pragma once
// Which addresses a `resolve:` or `original_dst` route may dial. Applied to every address
// actually connected to, after DNS, so a name that resolves to 127.0.0.1 or to the cloud
// metadata address cannot turn the proxy into a way into the internal network.
#include <string_view>
#include <vector>

#include "base/net_address.h"

namespace snisplice::resolve {

struct Verdict {
  bool allowed = false;
  // The range that decided, for the log line: "loopback 127.0.0.0/8", "proxy's own address",
  // "not in allow_networks", ... Static strings, valid for the life of the program.
  std::string_view reason;
  // Set when an IPv6 address was judged by the IPv4 address it embeds: "IPv4-mapped ::ffff:0:0/96",
  // "NAT64 64:ff9b::/96" or "6to4 2002::/16"; empty otherwise.
  std::string_view embedded_in;
};

class AddressPolicy {
 public:
  // The default: refuse the special-purpose ranges listed in address_policy.cpp and the proxy's
  // own addresses (IPv4-mapped forms are unmapped first), allow the rest.
  static AddressPolicy special_ranges_denied(std::vector<IpAddress> own_addresses);
  // `allow_networks`: allow an address iff it lies inside one of `networks`; nothing else is
  // consulted. IPv4-mapped addresses, and CIDRs written inside ::ffff:0:0/96, count as IPv4.
  static AddressPolicy allow_only(std::vector<Cidr> networks);

  Verdict check(const IpAddress& address) const;

 private:
  enum class Mode { special_ranges_denied, allow_only };
  AddressPolicy(Mode mode, std::vector<IpAddress> own, std::vector<Cidr> networks)
      : mode_(mode), own_(std::move(own)), networks_(std::move(networks)) {}

  Verdict check_v4(const IpAddress& v4, std::string_view embedded_in) const;

  Mode mode_;
  std::vector<IpAddress> own_;  // unmapped
  std::vector<Cidr> networks_;  // mapped prefixes rewritten as IPv4
};

}  // namespace snisplice::resolve
