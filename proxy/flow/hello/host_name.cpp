#include "flow/hello/host_name.h"

#include "base/net_address.h"

namespace snisplice::hello {

namespace {

constexpr size_t kMaxNameBytes = 255;  // RFC 1035 section 2.3.4
constexpr size_t kMaxLabelBytes = 63;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

}  // namespace

std::optional<std::string> normalize_host_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return std::nullopt;
  if (name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return std::nullopt;
  std::string out;
  out.reserve(name.size());
  size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
    } else {
      if (!is_name_char(c) || ++label > kMaxLabelBytes) return std::nullopt;
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    out.push_back(c);
  }
  if (label == 0) return std::nullopt;
  // A name that ends in a number must be an IPv4 address in its one strict spelling, so every
  // component that reads the name (router, resolver, address policy, backend) sees the same
  // address; other spellings of an address are refused rather than looked up in DNS.
  if (ends_in_a_number(out) && !IpAddress::parse(out)) return std::nullopt;
  return out;
}

std::optional<std::string> normalize_ipv6_literal(std::string_view literal) {
  if (literal.find(':') == std::string_view::npos) return std::nullopt;
  auto ip = IpAddress::parse(literal);
  if (!ip || ip->is_v4()) return std::nullopt;
  return ip->to_string();
}

}  // namespace snisplice::hello
