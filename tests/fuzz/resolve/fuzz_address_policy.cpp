// The address policy on addresses, networks, host addresses and listeners built from the input.
// Invariants: an IPv4 address gets the same verdict in its IPv4-mapped, NAT64 and 6to4 forms
// under the default policy; loopback and unspecified addresses are always refused by default;
// allow_networks allows exactly the addresses inside a listed network (mapped CIDRs read as
// IPv4), except the proxy's own listening sockets, which no mode allows; every verdict has a
// reason.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "flow/resolve/address_policy.h"
#include "require.h"

using namespace snisplice;
using snisplice::resolve::AddressPolicy;
using snisplice::resolve::ThisHost;

namespace {

using snisplice::fuzzing::require;

// The input read front to back; past its end every value is 0.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(byte() << 8 | byte()); }
  unsigned below(unsigned bound) { return (static_cast<unsigned>(byte()) << 8 | byte()) % bound; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

IpAddress take_address(Input& in) {
  IpAddress out;
  // Bias toward interesting IPv6 prefixes: mapped, NAT64, 6to4, loopback.
  switch (in.below(6)) {
    case 0: {
      out.family = IpAddress::Family::v4;
      for (size_t i = 0; i < 4; ++i) out.bytes[i] = in.byte();
      return out;
    }
    case 1: out.bytes[10] = out.bytes[11] = 0xff; break;
    case 2: out.bytes[1] = 0x64; out.bytes[2] = 0xff; out.bytes[3] = 0x9b; break;
    case 3: out.bytes[0] = 0x20; out.bytes[1] = 0x02; break;
    case 4: out.bytes[15] = 1; break;
    default: {
      // Filled apart, then copied: filling out.bytes in place, GCC 12 at -O3 warns
      // (-Wstringop-overflow) of a 15-byte region.
      std::array<uint8_t, 16> raw;
      for (auto& b : raw) b = in.byte();
      out.bytes = raw;
    }
  }
  out.family = IpAddress::Family::v6;
  for (size_t i = 12; i < 16; ++i) out.bytes[i] ^= in.byte();
  return out;
}

IpAddress v6_with(const IpAddress& v4, std::initializer_list<uint8_t> prefix, size_t offset) {
  IpAddress out;
  out.family = IpAddress::Family::v6;
  std::copy(prefix.begin(), prefix.end(), out.bytes.begin());
  std::copy_n(v4.bytes.begin(), 4, out.bytes.begin() + static_cast<std::ptrdiff_t>(offset));
  return out;
}

bool inside(const std::vector<Cidr>& networks, const IpAddress& address) {
  const IpAddress plain = address.unmapped();
  for (const Cidr& network : networks) {
    Cidr c = network;
    if (!c.network.is_v4() && c.prefix_len >= 96 && c.network.unmapped().is_v4())
      c = Cidr{c.network.unmapped(), static_cast<uint8_t>(c.prefix_len - 96)};
    if (c.contains(plain)) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  ThisHost host;
  for (unsigned n = in.below(4); n > 0; --n) host.addresses.push_back(take_address(in));
  for (unsigned n = in.below(4); n > 0; --n)
    host.listeners.push_back(SocketAddress{take_address(in), in.u16()});
  std::vector<Cidr> networks;
  for (unsigned n = in.below(4); n > 0; --n) {
    IpAddress network = take_address(in);
    const unsigned bits = network.is_v4() ? 32 : 128;
    networks.push_back(*Cidr::parse(network.to_string() + "/" +
                                    std::to_string(in.below(bits + 1))));
  }
  const IpAddress target = take_address(in);
  const uint16_t port = in.u16();

  const auto by_default = AddressPolicy::special_ranges_denied(host);
  const auto listed = AddressPolicy::allow_only(networks, host);

  for (const AddressPolicy* policy : {&by_default, &listed}) {
    auto verdict = policy->check(target);
    require(!verdict.reason.empty());
    auto with_port = policy->check(SocketAddress{target, port});
    require(!with_port.reason.empty());
    require(!with_port.allowed || verdict.allowed);
    for (const SocketAddress& listener : host.listeners) require(!policy->check(listener).allowed);
  }
  require(listed.check(target).allowed == inside(networks, target));

  const IpAddress plain = target.unmapped();
  if (plain.is_v4()) {
    const bool allowed = by_default.check(plain).allowed;
    require(by_default.check(v6_with(plain, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 12)).allowed == allowed);
    require(by_default.check(v6_with(plain, {0x00, 0x64, 0xff, 0x9b}, 12)).allowed == allowed);
    require(by_default.check(v6_with(plain, {0x20, 0x02}, 2)).allowed == allowed);
    if (plain.bytes[0] == 127 || plain.bytes[0] == 0) require(!allowed);
  } else if (std::all_of(plain.bytes.begin(), plain.bytes.begin() + 15, [](uint8_t b) { return b == 0; }) &&
             plain.bytes[15] <= 1) {
    require(!by_default.check(plain).allowed);  // :: and ::1
  }
  return 0;
}
