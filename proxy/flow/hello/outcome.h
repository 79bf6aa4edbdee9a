#pragma once
// What the preread parsers return: need more bytes, a parsed hello, or a reject with a reason
// from a closed list. A verdict (done or rejected), once returned, never changes.
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace snisplice::hello {

// Why a client's first bytes were refused. Each value has a metric-safe label
// (reject_label); adding a value without a label fails the build (-Werror=switch).
enum class Reject {
  not_tls,              // first record is not a TLS handshake record (includes SSLv2 hellos)
  not_http,             // first byte cannot start an HTTP/1.x request line
  too_large,            // the hello / request head would not fit in max_bytes
  bad_record,           // TLS record header invalid (version, length, content type)
  bad_handshake,        // handshake message is not a well-formed ClientHello
  bad_extension,        // an SNI / ALPN extension body breaks its RFC's rules
  duplicate_extension,  // one extension type appears twice (RFC 8446 section 4.2)
  multiple_host_names,  // SNI lists more than one host_name (RFC 6066 section 3)
  invalid_host_name,    // SNI or Host is not a valid DNS name / IP literal
  length_mismatch,      // a length field disagrees with the bytes of its container
  http_bad_request_line,  // not METHOD SP target SP HTTP/1.x
  http_bad_header,        // malformed header line: no colon, space before colon, obs-fold, bare CR
  http_no_host,           // neither a Host header nor an absolute-form target
  http_multiple_host,     // more than one Host header
  http_host_conflict,     // absolute-form target host differs from the Host header
};

std::string_view reject_label(Reject reason);

// Every reason, e.g. for creating one metric series per label up front.
inline constexpr std::array kAllRejects = {
    Reject::not_tls,          Reject::not_http,          Reject::too_large,
    Reject::bad_record,       Reject::bad_handshake,     Reject::bad_extension,
    Reject::duplicate_extension, Reject::multiple_host_names, Reject::invalid_host_name,
    Reject::length_mismatch,  Reject::http_bad_request_line, Reject::http_bad_header,
    Reject::http_no_host,     Reject::http_multiple_host, Reject::http_host_conflict,
};

struct Hello {
  // Lower-case, without a trailing dot; IPv6 literals (HTTP only) without brackets.
  // "" when a ClientHello carries no SNI.
  std::string host;
  std::vector<std::string> alpn;  // ALPN protocol names in the client's order (TLS only)
  // encrypted_client_hello present: host is the outer (public) name. Also true for the GREASE
  // ECH extension Chrome sends when it has no ECH config, so it does not mean "hidden name".
  bool ech_offered = false;
  size_t consumed = 0;            // bytes of the buffer the hello occupies (see each parser)
  bool operator==(const Hello&) const = default;
};

struct Outcome {
  enum class State { need_more, done, rejected };
  State state = State::need_more;
  Hello hello;          // meaningful when state == done
  Reject reject{};      // meaningful when state == rejected
  bool operator==(const Outcome&) const = default;

  static Outcome need_more() { return {}; }
  static Outcome done(Hello hello) { return {State::done, std::move(hello), Reject{}}; }
  static Outcome rejected(Reject reason) { return {State::rejected, Hello{}, reason}; }
};

// The largest max_bytes a parser accepts (Envoy's tls_inspector uses the same 64 KiB cap);
// larger requests are clamped.
inline constexpr size_t kMaxHelloBytesLimit = 65536;
inline constexpr size_t kDefaultMaxHelloBytes = 16384;

}  // namespace snisplice::hello
