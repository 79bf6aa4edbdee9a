#pragma once
// What OpenSSL's own server-side ClientHello processing sees in the same bytes: a server SSL
// object reads them from a memory BIO, and its client_hello callback extracts the raw
// server_name and ALPN extensions. Used as the reference our parser is checked against.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace snisplice::hello::testing {

struct OpensslView {
  bool hello_seen = false;  // OpenSSL reassembled a ClientHello and ran its callback
  std::optional<std::string> host_name;  // first host_name entry, as sent (no normalisation)
  std::vector<std::string> alpn;
  bool ech_present = false;
};

OpensslView openssl_view(std::span<const uint8_t> bytes);

// Lower-cased, one trailing dot dropped: how our parser reports a host.
std::string normalized_for_comparison(const std::string& host);

// "" when the two agree on a successfully parsed hello, else what differs.
std::string compare_with_openssl(std::span<const uint8_t> bytes, const std::string& our_host,
                                 const std::vector<std::string>& our_alpn, bool our_ech);

}  // namespace snisplice::hello::testing
