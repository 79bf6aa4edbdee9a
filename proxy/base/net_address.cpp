#include "base/net_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace snisplice {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton reads a C string: an embedded NUL would end it early and let "127.0.0.1\0junk"
  // pass as 127.0.0.1.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos)
    return std::nullopt;
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  IpAddress out;
  if (::inet_pton(AF_INET, buf, out.bytes.data()) == 1) {
    out.family = Family::v4;
    return out;
  }
  if (::inet_pton(AF_INET6, buf, out.bytes.data()) == 1) {
    out.family = Family::v6;
    return out;
  }
  return std::nullopt;
}

IpAddress IpAddress::from_sockaddr(const sockaddr* sa) {
  IpAddress out;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    std::memcpy(out.bytes.data(), &in->sin_addr, 4);
  } else {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    out.family = Family::v6;
    std::memcpy(out.bytes.data(), &in6->sin6_addr, 16);
  }
  return out;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

IpAddress IpAddress::unmapped() const {
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (is_v4() || std::memcmp(bytes.data(), kMappedPrefix, 12) != 0) return *this;
  IpAddress v4;
  std::memcpy(v4.bytes.data(), bytes.data() + 12, 4);
  return v4;
}

bool ends_in_a_number(std::string_view name) {
  if (name.ends_with('.')) name.remove_suffix(1);
  std::string_view last = name.substr(name.rfind('.') + 1);  // npos + 1 == 0: the whole name
  auto digits = [](std::string_view s, auto is_digit) { return std::all_of(s.begin(), s.end(), is_digit); };
  if (!last.empty() && digits(last, [](char c) { return c >= '0' && c <= '9'; })) return true;
  return last.size() >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') &&
         digits(last.substr(2), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

std::optional<SocketAddress> SocketAddress::parse(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // v6 needs brackets
  }
  auto ip = IpAddress::parse(host);
  if (!ip || (text.starts_with('[') && ip->is_v4())) return std::nullopt;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535)
    return std::nullopt;
  return SocketAddress{*ip, static_cast<uint16_t>(value)};
}

SocketAddress SocketAddress::from_sockaddr(const sockaddr* sa) {
  SocketAddress out{IpAddress::from_sockaddr(sa), 0};
  out.port = ntohs(sa->sa_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(sa)->sin_port
                                            : reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  return out;
}

socklen_t SocketAddress::to_sockaddr(sockaddr_storage& out) const {
  std::memset(&out, 0, sizeof out);
  if (ip.is_v4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, ip.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  std::memcpy(&in6->sin6_addr, ip.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

std::string SocketAddress::to_string() const {
  // Appended, not "[" + ...: GCC 12 at -O3 warns (-Wrestrict) on that form of operator+.
  std::string out = ip.is_v4() ? std::string() : std::string("[");
  out += ip.to_string();
  out += ip.is_v4() ? ":" : "]:";
  out += std::to_string(port);
  return out;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto ip = IpAddress::parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  unsigned max_len = ip->is_v4() ? 32 : 128;
  unsigned len = max_len;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || len > max_len)
      return std::nullopt;
  }
  Cidr out{*ip, static_cast<uint8_t>(len)};
  for (unsigned bit = len; bit < max_len; ++bit) out.network.bytes[bit / 8] &= ~(0x80u >> (bit % 8));
  return out;
}

bool Cidr::contains(const IpAddress& address) const {
  if (address.family != network.family) return false;
  unsigned full = prefix_len / 8;
  if (std::memcmp(address.bytes.data(), network.bytes.data(), full) != 0) return false;
  unsigned rest = prefix_len % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
  return (address.bytes[full] & mask) == network.bytes[full];
}

std::string Cidr::to_string() const { return network.to_string() + "/" + std::to_string(prefix_len); }

}  // namespace snisplice
