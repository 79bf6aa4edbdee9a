#pragma once
// JSON string escaping (RFC 8259 section 7), shared by the access log and the live events:
// client-supplied names may contain anything the parser let through, so every control
// character is escaped.
#include <cstdio>
#include <string>
#include <string_view>

namespace snisplice {

inline void append_json_string(std::string& out, std::string_view value) {
  out += '"';
  for (unsigned char c : value) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

}  // namespace snisplice
