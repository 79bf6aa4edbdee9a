#include "flow/proxy_protocol/proxy_header.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace snisplice::proxy_protocol {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
// Spec 2.2: the v2 signature, chosen so it cannot begin a valid v1 line, HTTP request or TLS record.
constexpr uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr size_t kV2FixedBytes = 16;  // signature, ver_cmd, fam, len
const std::span<const uint8_t> kV1Signature(reinterpret_cast<const uint8_t*>(kV1Prefix.data()), kV1Prefix.size());

// How bytes begin against a signature: all of it, a proper prefix of it (or nothing yet), or
// something else. Every header check goes through here, so a prefix never contradicts the whole.
HeaderPresence against_signature(std::span<const uint8_t> in, std::span<const uint8_t> signature) {
  const size_t n = std::min(in.size(), signature.size());
  if (n > 0 && std::memcmp(in.data(), signature.data(), n) != 0) return HeaderPresence::absent;
  return n == signature.size() ? HeaderPresence::present : HeaderPresence::undecided;
}

// Spec 2.2, 13th byte: version in the high nibble, command in the low one.
constexpr uint8_t kV2Version = 0x2;
constexpr uint8_t kCommandLocal = 0x0;
constexpr uint8_t kCommandProxy = 0x1;
// 14th byte: address family in the high nibble, transport in the low one.
constexpr uint8_t kFamilyUnspec = 0x0;
constexpr uint8_t kFamilyInet = 0x1;
constexpr uint8_t kFamilyInet6 = 0x2;
constexpr uint8_t kFamilyUnix = 0x3;
constexpr uint8_t kTransportStream = 0x1;
constexpr uint8_t kTransportDgram = 0x2;
// Address block sizes: two addresses then two ports (inet), two 108-byte paths (unix).
constexpr size_t kInetBlock = 12;
constexpr size_t kInet6Block = 36;
constexpr size_t kUnixBlock = 216;
constexpr size_t kTlvHeader = 3;  // type, 16-bit length

void append_u16(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value & 0xff));
}

std::vector<uint8_t> encode_v1(const IpAddress& src, uint16_t sport, const IpAddress& dst, uint16_t dport) {
  std::string line;
  if (src.family != dst.family) {
    line = "PROXY UNKNOWN\r\n";
  } else {
    line = std::string(src.is_v4() ? "PROXY TCP4 " : "PROXY TCP6 ") + src.to_string() + " " + dst.to_string() +
           " " + std::to_string(sport) + " " + std::to_string(dport) + "\r\n";
  }
  return std::vector<uint8_t>(line.begin(), line.end());
}

std::vector<uint8_t> encode_v2(const IpAddress& src, uint16_t sport, const IpAddress& dst, uint16_t dport) {
  std::vector<uint8_t> out(std::begin(kV2Signature), std::end(kV2Signature));
  out.push_back(static_cast<uint8_t>(kV2Version << 4 | kCommandProxy));
  if (src.family != dst.family) {
    out.push_back(kFamilyUnspec << 4);
    append_u16(out, 0);
    return out;
  }
  bool v4 = src.is_v4();
  out.push_back(static_cast<uint8_t>((v4 ? kFamilyInet : kFamilyInet6) << 4 | kTransportStream));
  append_u16(out, static_cast<uint16_t>(v4 ? kInetBlock : kInet6Block));
  out.insert(out.end(), src.bytes.begin(), src.bytes.begin() + src.size());
  out.insert(out.end(), dst.bytes.begin(), dst.bytes.begin() + dst.size());
  append_u16(out, sport);
  append_u16(out, dport);
  return out;
}

std::optional<uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

// `line` is everything between "PROXY " and CRLF.
Outcome parse_v1_line(std::string_view line, size_t consumed) {
  Done done{Version::v1, std::nullopt, std::nullopt, consumed, false};
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) return done;

  std::string_view fields[5];
  for (size_t i = 0; i < 5; ++i) {
    size_t space = line.find(' ');
    if (i < 4 && space == std::string_view::npos) return Rejected{RejectReason::v1_syntax};
    fields[i] = line.substr(0, space);
    if (fields[i].empty()) return Rejected{RejectReason::v1_syntax};
    line = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
    if (i == 4 && space != std::string_view::npos) return Rejected{RejectReason::v1_syntax};
  }
  IpAddress::Family family;
  if (fields[0] == "TCP4") family = IpAddress::Family::v4;
  else if (fields[0] == "TCP6") family = IpAddress::Family::v6;
  else return Rejected{RejectReason::v1_syntax};

  auto src = IpAddress::parse(fields[1]);
  auto dst = IpAddress::parse(fields[2]);
  if (!src || !dst || src->family != family || dst->family != family) return Rejected{RejectReason::v1_bad_address};
  auto sport = parse_port(fields[3]);
  auto dport = parse_port(fields[4]);
  if (!sport || !dport) return Rejected{RejectReason::v1_bad_port};
  done.source = SocketAddress{src->unmapped(), *sport};
  done.destination = SocketAddress{dst->unmapped(), *dport};
  return done;
}

Outcome parse_v1(std::span<const uint8_t> in) {
  if (against_signature(in, kV1Signature) == HeaderPresence::absent) return Rejected{RejectReason::bad_signature};
  size_t prefix = std::min(in.size(), kV1Prefix.size());
  size_t scan = std::min(in.size(), kV1MaxBytes);
  for (size_t i = prefix; i < scan; ++i) {
    uint8_t c = in[i];
    if (c == '\r') {
      if (i + 2 > kV1MaxBytes) return Rejected{RejectReason::v1_too_long};
      if (i + 1 == in.size()) return NeedMore{};
      if (in[i + 1] != '\n') return Rejected{RejectReason::v1_syntax};
      std::string_view line(reinterpret_cast<const char*>(in.data()) + prefix, i - prefix);
      return parse_v1_line(line, i + 2);
    }
    if (c < 0x20 || c > 0x7e) return Rejected{RejectReason::v1_syntax};  // includes a bare LF
  }
  if (in.size() >= kV1MaxBytes) return Rejected{RejectReason::v1_too_long};
  return NeedMore{};
}

uint16_t read_u16(std::span<const uint8_t> in, size_t at) { return static_cast<uint16_t>(in[at] << 8 | in[at + 1]); }

// Checks run in a fixed order, each as soon as its bytes are present, so a prefix can only be
// rejected for the reason the whole header would be.
Outcome parse_v2(std::span<const uint8_t> in, size_t max_bytes) {
  if (against_signature(in, kV2Signature) == HeaderPresence::absent) return Rejected{RejectReason::bad_signature};
  if (in.size() <= 12) return NeedMore{};
  uint8_t version = in[12] >> 4;
  uint8_t command = in[12] & 0x0f;
  if (version != kV2Version) return Rejected{RejectReason::v2_bad_version};
  if (command != kCommandLocal && command != kCommandProxy) return Rejected{RejectReason::v2_bad_command};
  if (in.size() <= 13) return NeedMore{};
  uint8_t family = in[13] >> 4;
  uint8_t transport = in[13] & 0x0f;
  // LOCAL: the receiver ignores the family and the address block (spec 2.2).
  if (command == kCommandProxy && (family > kFamilyUnix || transport > kTransportDgram))
    return Rejected{RejectReason::v2_bad_family};
  if (in.size() < kV2FixedBytes) return NeedMore{};
  size_t total = kV2FixedBytes + read_u16(in, 14);
  if (total > max_bytes) return Rejected{RejectReason::v2_too_long};
  if (in.size() < total) return NeedMore{};

  Done done{Version::v2, std::nullopt, std::nullopt, total, command == kCommandLocal};
  if (done.is_local) return done;

  size_t block = family == kFamilyInet ? kInetBlock
                 : family == kFamilyInet6 ? kInet6Block
                 : family == kFamilyUnix  ? kUnixBlock
                                          : 0;
  if (total - kV2FixedBytes < block) return Rejected{RejectReason::v2_short_address};
  for (size_t at = kV2FixedBytes + block; at < total;) {
    if (total - at < kTlvHeader) return Rejected{RejectReason::v2_bad_tlv};
    size_t value_len = read_u16(in, at + 1);
    if (total - at - kTlvHeader < value_len) return Rejected{RejectReason::v2_bad_tlv};
    at += kTlvHeader + value_len;
  }

  // Anything but TCP over IPv4/IPv6 is accepted as "unknown": the caller keeps the real endpoints.
  if (transport != kTransportStream || (family != kFamilyInet && family != kFamilyInet6)) return done;
  size_t addr_len = family == kFamilyInet ? 4 : 16;
  auto address_at = [&](size_t at) {
    IpAddress ip;
    ip.family = family == kFamilyInet ? IpAddress::Family::v4 : IpAddress::Family::v6;
    std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(at), addr_len, ip.bytes.begin());
    return ip.unmapped();
  };
  size_t base = kV2FixedBytes;
  done.source = SocketAddress{address_at(base), read_u16(in, base + 2 * addr_len)};
  done.destination = SocketAddress{address_at(base + addr_len), read_u16(in, base + 2 * addr_len + 2)};
  return done;
}

}  // namespace

std::vector<uint8_t> encode(Version version, const SocketAddress& source, const SocketAddress& destination) {
  IpAddress src = source.ip.unmapped();
  IpAddress dst = destination.ip.unmapped();
  switch (version) {
    case Version::v1: return encode_v1(src, source.port, dst, destination.port);
    case Version::v2: return encode_v2(src, source.port, dst, destination.port);
  }
  return {};
}

std::string_view to_string(RejectReason reason) {
  switch (reason) {
    case RejectReason::bad_signature: return "bad_signature";
    case RejectReason::v1_too_long: return "v1_too_long";
    case RejectReason::v1_syntax: return "v1_syntax";
    case RejectReason::v1_bad_address: return "v1_bad_address";
    case RejectReason::v1_bad_port: return "v1_bad_port";
    case RejectReason::v2_bad_version: return "v2_bad_version";
    case RejectReason::v2_bad_command: return "v2_bad_command";
    case RejectReason::v2_bad_family: return "v2_bad_family";
    case RejectReason::v2_too_long: return "v2_too_long";
    case RejectReason::v2_short_address: return "v2_short_address";
    case RejectReason::v2_bad_tlv: return "v2_bad_tlv";
  }
  return "unknown";
}

Outcome parse(std::span<const uint8_t> buffered, size_t v2_max_bytes) {
  if (buffered.empty()) return NeedMore{};
  if (buffered[0] == kV2Signature[0]) return parse_v2(buffered, v2_max_bytes);
  return parse_v1(buffered);
}

HeaderPresence proxy_header_presence(std::span<const uint8_t> buffered) {
  // The two signatures differ in their first byte: at most one can match.
  return std::max(against_signature(buffered, kV1Signature), against_signature(buffered, kV2Signature));
}

}  // namespace snisplice::proxy_protocol
