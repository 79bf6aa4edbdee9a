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
  // "proxy's own listener", "not in allow_networks", ... Static strings, valid for the life of
  // the program.
  std::string_view reason;
  // Set when an IPv6 address was judged by the IPv4 address it embeds: "IPv4-mapped ::ffff:0:0/96",
  // "NAT64 64:ff9b::/96" or "6to4 2002::/16"; empty otherwise.
  std::string_view embedded_in;
};

// This host as a destination.
struct ThisHost {
  std::vector<IpAddress> addresses;      // every interface's address and every listen address
  std::vector<SocketAddress> listeners;  // the proxy's own listening sockets, wildcards included
};

class AddressPolicy {
 public:
  // The default: refuse the special-purpose ranges listed in address_policy.cpp and this host's
  // addresses (IPv4-mapped forms are unmapped first), allow the rest.
  static AddressPolicy special_ranges_denied(ThisHost host);
  // `allow_networks`: allow an address iff it lies inside one of `networks`; the special ranges
  // and this host's addresses are not consulted. IPv4-mapped addresses, and CIDRs written
  // inside ::ffff:0:0/96, count as IPv4.
  static AddressPolicy allow_only(std::vector<Cidr> networks, ThisHost host);

  // The verdict on dialling `target`: the address's own verdict, then, in every mode, a refusal
  // of the proxy's own listening sockets. Dialling one would connect the proxy to itself with
  // the same hello, and one client connection would multiply until a limit stopped it; so even
  // an allow_networks list that covers this host cannot reach them ("127.0.0.1:8443" is refused
  // when the proxy listens there, "127.0.0.1:9001" is the list's to decide). A wildcard
  // listener ("0.0.0.0:443") is reached through any local address of its family: loopback,
  // the unspecified address (the kernel dials loopback for it) and this host's addresses.
  Verdict check(const SocketAddress& target) const;
  // The address's verdict whatever the port (no listener check).
  Verdict check(const IpAddress& address) const;

 private:
  enum class Mode { special_ranges_denied, allow_only };
  AddressPolicy(Mode mode, ThisHost host, std::vector<Cidr> networks);

  Verdict check_v4(const IpAddress& v4, std::string_view embedded_in) const;
  bool reaches_own_listener(const SocketAddress& target) const;

  Mode mode_;
  std::vector<IpAddress> own_;            // unmapped
  std::vector<SocketAddress> listeners_;  // unmapped
  std::vector<Cidr> networks_;            // mapped prefixes rewritten as IPv4
};

}  // namespace snisplice::resolve
