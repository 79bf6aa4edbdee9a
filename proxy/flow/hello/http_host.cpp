#include "flow/hello/http_host.h"

#include <algorithm>
#include <cstring>

#include "flow/hello/host_name.h"

namespace snisplice::hello {

namespace {

constexpr size_t kMaxPortDigits = 5;

// tchar, RFC 9110 section 5.6.2.
bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(c); });
}

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_port(std::string_view s) {
  return s.size() <= kMaxPortDigits &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
         (s.empty() || std::stoul(std::string(s)) <= 65535);
}

}  // namespace

std::optional<std::string> parse_authority_host(std::string_view authority) {
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && (after.front() != ':' || !is_port(after.substr(1)))) return std::nullopt;
    return normalize_ipv6_literal(authority.substr(1, close - 1));
  }
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos) {
    if (!is_port(authority.substr(colon + 1))) return std::nullopt;
    authority = authority.substr(0, colon);
  }
  return normalize_host_name(authority);
}

HttpHostParser::HttpHostParser(size_t max_bytes)
    : max_bytes_(std::min(max_bytes, kMaxHelloBytesLimit)) {}

Outcome HttpHostParser::reject(Reject reason) {
  verdict_ = Outcome::rejected(reason);
  return *verdict_;
}

Outcome HttpHostParser::finish(size_t consumed) {
  if (!target_host_ && !header_host_) return reject(Reject::http_no_host);
  if (target_host_ && header_host_ && *target_host_ != *header_host_)
    return reject(Reject::http_host_conflict);
  Hello hello;
  hello.host = target_host_ ? *target_host_ : *header_host_;
  hello.consumed = consumed;
  verdict_ = Outcome::done(std::move(hello));
  return *verdict_;
}

std::optional<Reject> HttpHostParser::take_request_line(std::string_view line) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return Reject::http_bad_request_line;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return Reject::http_bad_request_line;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method) || target.empty() ||
      std::any_of(target.begin(), target.end(), [](char c) { return is_control(c); }))
    return Reject::http_bad_request_line;
  if (version.size() != 8 || !version.starts_with("HTTP/1.") || version[7] < '0' || version[7] > '9')
    return Reject::http_bad_request_line;

  // The four target forms (RFC 9112 section 3.2); anything else is no request. The host a
  // backend reads from the target must be the host routed on, so every form that names one
  // (absolute-form, CONNECT's authority-form) is checked against the Host header in finish().
  if (target.front() == '/') return std::nullopt;                      // origin-form
  if (method == "OPTIONS" && target == "*") return std::nullopt;       // asterisk-form
  std::string_view authority;
  if (method == "CONNECT") {                                           // authority-form
    // host ":" port, the port required (RFC 9110 section 9.3.6).
    if (target.find_first_of("/?#@") != std::string_view::npos) return Reject::http_bad_request_line;
    size_t colon = target.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == target.size() || target.back() == ']')
      return Reject::http_bad_request_line;
    authority = target;
  } else {                                                             // absolute-form
    // Only http and https URIs with an authority: a backend that is itself a proxy would
    // fetch any other scheme (ftp://127.0.0.1/) from wherever that URI points.
    std::string_view rest;
    if (istarts_with(target, "http://")) rest = target.substr(7);
    else if (istarts_with(target, "https://")) rest = target.substr(8);
    else return Reject::http_bad_request_line;
    authority = rest.substr(0, rest.find_first_of("/?#"));
    if (authority.find('@') != std::string_view::npos) return Reject::http_bad_request_line;
  }
  auto host = parse_authority_host(authority);
  if (!host) return Reject::invalid_host_name;
  target_host_ = std::move(*host);
  return std::nullopt;
}

std::optional<Reject> HttpHostParser::take_header(std::string_view line) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
    return Reject::http_bad_header;  // also catches obs-fold and "Name :" (leading/inner space)
  std::string_view value = trim_ows(line.substr(colon + 1));
  if (std::any_of(value.begin(), value.end(), [](char c) { return c != '\t' && is_control(c); }))
    return Reject::http_bad_header;
  if (!iequals(line.substr(0, colon), "host")) return std::nullopt;
  if (header_host_) return Reject::http_multiple_host;
  auto host = parse_authority_host(value);
  if (!host) return Reject::invalid_host_name;
  header_host_ = std::move(*host);
  return std::nullopt;
}

Outcome HttpHostParser::feed(std::span<const uint8_t> buffered) {
  if (verdict_) return *verdict_;
  if (!buffered.empty() && !is_tchar(buffered[0])) return reject(Reject::not_http);
  const char* text = reinterpret_cast<const char*>(buffered.data());
  // Lines are looked for only inside the first max_bytes: a head must end within them.
  size_t window = std::min(buffered.size(), max_bytes_);
  while (scanned_ < window) {
    const void* lf = std::memchr(text + scanned_, '\n', window - scanned_);
    if (!lf) {
      scanned_ = window;
      break;
    }
    size_t line_end = static_cast<size_t>(static_cast<const char*>(lf) - text);
    std::string_view line(text + line_start_, line_end - line_start_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line_start_ = scanned_ = line_end + 1;
    bool bare_cr = line.find('\r') != std::string_view::npos;
    if (!have_request_line_) {
      have_request_line_ = true;
      if (bare_cr) return reject(Reject::http_bad_request_line);
      if (auto error = take_request_line(line)) return reject(*error);
    } else if (line.empty()) {
      return finish(line_end + 1);
    } else {
      if (bare_cr) return reject(Reject::http_bad_header);
      if (auto error = take_header(line)) return reject(*error);
    }
  }
  if (buffered.size() >= max_bytes_) return reject(Reject::too_large);
  return Outcome::need_more();
}

}  // namespace snisplice::hello
