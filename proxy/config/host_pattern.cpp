#include "config/host_pattern.h"

#include <re2/re2.h>

#include <cstdint>

namespace snisplice::config {
namespace {

constexpr size_t kMaxLabel = 63;
constexpr size_t kMaxName = 253;

bool is_name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

// Well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    size_t extra = 0;
    uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      extra = 1, code = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2, code = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3, code = c & 0x07;
    } else {
      return false;
    }
    if (text.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code = (code << 6) | (next & 0x3f);
    }
    if ((extra == 2 && (code < 0x800 || (code >= 0xd800 && code <= 0xdfff))) ||
        (extra == 3 && (code < 0x10000 || code > 0x10ffff)))
      return false;
    i += extra + 1;
  }
  return true;
}

std::string quoted_char(unsigned char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[c >> 4] + kHex[c & 0xf];
}

// `name` is the part after any "*." or "." prefix.
std::optional<std::string> name_error(std::string_view name) {
  if (name.ends_with('.')) name.remove_suffix(1);
  if (name.empty()) return "empty name";
  if (name.size() > kMaxName) return "name longer than 253 characters";
  bool non_ascii = false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view label = name.substr(start, end - start);
    if (label.empty()) return "empty label";
    bool label_non_ascii = false;
    for (unsigned char c : label) {
      if (c == '*') return "a wildcard '*' is allowed only as a leading \"*.\" or alone";
      if (c >= 0x80) {
        label_non_ascii = true;
      } else if (!is_name_char(c)) {
        return "invalid character " + quoted_char(c);
      }
    }
    if (!label_non_ascii && label.size() > kMaxLabel) return "label longer than 63 characters";
    non_ascii = non_ascii || label_non_ascii;
    start = end + 1;
  }
  if (non_ascii && !is_valid_utf8(name)) return "invalid UTF-8";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> host_pattern_error(std::string_view pattern) {
  if (pattern == "*") return std::nullopt;
  if (pattern.starts_with('~')) {
    std::string_view expression = pattern.substr(1);
    if (expression.empty()) return "empty regex";
    RE2::Options options;
    options.set_log_errors(false);
    RE2 regex(re2::StringPiece(expression.data(), expression.size()), options);
    if (!regex.ok()) return "bad regex: " + regex.error();
    return std::nullopt;
  }
  if (pattern.empty()) return "empty host pattern";
  if (pattern.starts_with("*.")) return name_error(pattern.substr(2));
  if (pattern.starts_with('.')) return name_error(pattern.substr(1));
  return name_error(pattern);
}

std::string host_pattern_key(std::string_view pattern) {
  if (pattern.starts_with('~')) return std::string(pattern);
  if (pattern.size() > 1 && pattern.ends_with('.')) pattern.remove_suffix(1);
  std::string key(pattern);
  for (char& c : key)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return key;
}

}  // namespace snisplice::config
