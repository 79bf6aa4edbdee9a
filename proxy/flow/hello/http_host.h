#pragma once
// Incremental HTTP/1.x request-head parser: finds the host a plain-HTTP client asks for.
// Pure: no I/O, no clock, no logging.
//
// Accepted input (RFC 9112):
// - request line METHOD SP request-target SP HTTP/1.DIGIT (section 3); the method is a token,
//   the target has no spaces or control characters. No empty lines before it.
// - lines end in CRLF or a bare LF (section 2.2 lets a recipient accept a bare LF; curl, nc and
//   printf users send them). A CR anywhere else is rejected.
// - header lines name ":" OWS value OWS with name a token and no space before the colon
//   (section 5.1); obs-fold continuation lines are rejected (section 5.2); values hold no
//   control characters other than HTAB.
// - the request target is in one of the four forms (section 3.2): origin-form "/...";
//   absolute-form with an http or https scheme and no userinfo; authority-form host:port for
//   CONNECT only; asterisk-form "*" for OPTIONS only. Any other target (another scheme, a bare
//   name) is http_bad_request_line.
// - the host comes from the Host header (case-insensitive name) and/or the target's authority
//   (absolute-form, authority-form); at least one must be present; Host may appear once; when
//   both are present their hosts (ports ignored) must match. An empty Host value is
//   invalid_host_name.
// - host[:port] with the port (0..5 digits) stripped; "[v6]" literals returned without
//   brackets in canonical form; names validated by normalize_host_name.
//
// Hello::consumed is the offset just past the empty line ending the head. A head that does
// not end within max_bytes is too_large. Only the first request is looked at.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "flow/hello/outcome.h"

namespace snisplice::hello {

class HttpHostParser {
 public:
  explicit HttpHostParser(size_t max_bytes = kDefaultMaxHelloBytes);

  // Same contract as TlsClientHelloParser::feed: `buffered` is every byte received so far,
  // work resumes where the last call stopped, and a verdict never changes.
  Outcome feed(std::span<const uint8_t> buffered);

 private:
  std::optional<Reject> take_request_line(std::string_view line);
  std::optional<Reject> take_header(std::string_view line);
  Outcome finish(size_t consumed);
  Outcome reject(Reject reason);

  size_t max_bytes_;
  size_t line_start_ = 0;  // offset of the line being received
  size_t scanned_ = 0;     // offset up to which no line end was found
  bool have_request_line_ = false;
  std::optional<std::string> target_host_;  // from an absolute-form or authority-form target
  std::optional<std::string> header_host_;  // from the Host header
  std::optional<Outcome> verdict_;
};

// "host[:port]" or "[v6][:port]" -> the normalised host; exposed for tests.
std::optional<std::string> parse_authority_host(std::string_view authority);

}  // namespace snisplice::hello
