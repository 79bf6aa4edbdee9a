// Address literals and host names as a client or a config writes them: IpAddress, SocketAddress
// and Cidr parsing, the host name rules shared by SNI and Host, and the Host authority parser.
// Never crashes; agrees with inet_pton; whatever is accepted prints to a text that parses back to
// the same value; normalised names are fixed points and end in a number only as strict IPv4.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/net_address.h"
#include "flow/hello/host_name.h"
#include "flow/hello/http_host.h"
#include "require.h"

using namespace snisplice;

namespace {

using snisplice::fuzzing::require;

void check_ip(std::string_view text) {
  auto ip = IpAddress::parse(text);
  if (text.find('\0') != std::string_view::npos) {
    require(!ip);
  } else if (text.size() < INET6_ADDRSTRLEN) {
    const std::string copy(text);
    uint8_t buffer[16];
    const bool v4 = ::inet_pton(AF_INET, copy.c_str(), buffer) == 1;
    const bool v6 = ::inet_pton(AF_INET6, copy.c_str(), buffer) == 1;
    require(ip.has_value() == (v4 || v6));
    if (ip) require(ip->is_v4() == v4);
  }
  if (!ip) return;
  auto again = IpAddress::parse(ip->to_string());
  require(again && *again == *ip);
  const IpAddress plain = ip->unmapped();
  require(plain.unmapped() == plain);
  require(ip->is_v4() ? plain == *ip : (plain.is_v4() || plain == *ip));
}

void check_socket_address(std::string_view text) {
  auto address = SocketAddress::parse(text);
  if (!address) return;
  auto again = SocketAddress::parse(address->to_string());
  require(again && *again == *address);
  sockaddr_storage storage;
  address->to_sockaddr(storage);
  require(SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage)) == *address);
}

void check_cidr(std::string_view text) {
  auto cidr = Cidr::parse(text);
  if (!cidr) return;
  require(cidr->contains(cidr->network));
  auto again = Cidr::parse(cidr->to_string());
  require(again && *again == *cidr);
}

void check_names(std::string_view text) {
  if (auto name = hello::normalize_host_name(text)) {
    require(!name->empty() && name->back() != '.');
    require(hello::normalize_host_name(*name) == name);
    for (char c : *name) require(!(c >= 'A' && c <= 'Z'));
    auto literal = IpAddress::parse(*name);
    require(!literal || literal->is_v4());
    if (ends_in_a_number(*name)) require(literal && literal->to_string() == *name);
  }
  if (auto literal = hello::normalize_ipv6_literal(text)) require(hello::normalize_ipv6_literal(*literal) == literal);
  if (auto host = hello::parse_authority_host(text)) {
    require(hello::normalize_host_name(*host) == host || hello::normalize_ipv6_literal(*host) == host);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  check_ip(text);
  check_socket_address(text);
  check_cidr(text);
  check_names(text);
  (void)ends_in_a_number(text);
  return 0;
}
