#include "config/host_pattern.h"

#include <idn2.h>
#include <re2/re2.h>

#include <algorithm>
#include <cstdint>
#include <memory>

namespace snisplice::config {
namespace {

// RFC 1035 section 2.3.4: 63 octets per label, 255 on the wire = 253 as dotted text.
constexpr size_t kMaxLabel = 63;
constexpr size_t kMaxName = 253;

bool is_name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

std::string quoted_char(unsigned char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[c >> 4] + kHex[c & 0xf];
}

// IDNA2008 with UTS#46 mapping, exactly as flow/route converts U-labels, so that a name the
// router would refuse is refused here, and both compare the same A-label forms.
tl::expected<std::string, std::string> to_a_labels(std::string_view name) {
  if (name.find('\0') != std::string_view::npos)
    return tl::unexpected(std::string("invalid character byte 0x00"));
  std::string input(name);
  uint8_t* output = nullptr;
  int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(input.c_str()), &output,
                          IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  std::unique_ptr<uint8_t, decltype(&idn2_free)> owned(output, &idn2_free);
  if (rc != IDN2_OK)
    return tl::unexpected(std::string("not a valid international name: ") + idn2_strerror(rc));
  return std::string(reinterpret_cast<const char*>(output));
}

// `name` is the part after any "*." or "." prefix, without the trailing dot; returns it in
// lower case with A-labels.
tl::expected<std::string, std::string> name_key(std::string_view name) {
  std::string out(name);
  bool non_ascii = std::any_of(name.begin(), name.end(),
                               [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  if (non_ascii) {
    auto converted = to_a_labels(name);
    if (!converted) return converted;
    out = std::move(*converted);
  }
  if (out.empty()) return tl::unexpected(std::string("empty name"));
  if (out.size() > kMaxName) return tl::unexpected(std::string("name longer than 253 characters"));
  size_t label = 0;
  for (char& c : out) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '.') {
      if (label == 0) return tl::unexpected(std::string("empty label"));
      label = 0;
      continue;
    }
    if (c == '*')
      return tl::unexpected(
          std::string("a wildcard '*' is allowed only as a leading \"*.\" or alone"));
    if (!is_name_char(byte)) return tl::unexpected("invalid character " + quoted_char(byte));
    if (++label > kMaxLabel) return tl::unexpected(std::string("label longer than 63 characters"));
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (label == 0) return tl::unexpected(std::string("empty label"));
  return out;
}

}  // namespace

tl::expected<std::string, std::string> host_pattern_key(std::string_view pattern) {
  if (pattern == "*") return std::string(pattern);
  if (pattern.starts_with('~')) {
    std::string_view expression = pattern.substr(1);
    if (expression.empty()) return tl::unexpected(std::string("empty regex"));
    RE2::Options options;
    options.set_log_errors(false);
    RE2 regex(re2::StringPiece(expression.data(), expression.size()), options);
    if (!regex.ok()) return tl::unexpected("bad regex: " + regex.error());
    return std::string(pattern);
  }
  if (pattern.empty()) return tl::unexpected(std::string("empty host pattern"));
  std::string_view prefix = pattern.starts_with("*.") ? "*." : pattern.starts_with('.') ? "." : "";
  std::string_view name_part = pattern.substr(prefix.size());
  if (name_part.ends_with('.')) name_part.remove_suffix(1);
  auto name = name_key(name_part);
  if (!name) return name;
  return std::string(prefix) + *name;
}

}  // namespace snisplice::config
