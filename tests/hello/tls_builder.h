#pragma once
// Builds ClientHello bytes for tests: extensions, the handshake message, and its records.
// Every length is computed, so a test that wants a lying length patches bytes afterwards.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace snisplice::hello::testing {

using Bytes = std::vector<uint8_t>;

Bytes bytes_of(std::string_view text);
void put_u8(Bytes& out, size_t value);
void put_u16(Bytes& out, size_t value);
void put_u24(Bytes& out, size_t value);
void append(Bytes& out, const Bytes& more);

struct Extension {
  uint16_t type;
  Bytes data;
};

// Extension type numbers (IANA TLS ExtensionType registry).
inline constexpr uint16_t kExtServerName = 0;
inline constexpr uint16_t kExtSupportedGroups = 10;
inline constexpr uint16_t kExtSignatureAlgorithms = 13;
inline constexpr uint16_t kExtAlpn = 16;
inline constexpr uint16_t kExtSupportedVersions = 43;
inline constexpr uint16_t kExtKeyShare = 51;
inline constexpr uint16_t kExtEch = 0xfe0d;

// server_name with the given (name_type, name) entries; sni(host) is the usual single entry.
Extension sni_entries(const std::vector<std::pair<uint8_t, std::string>>& entries);
Extension sni(const std::string& host);
Extension alpn(const std::vector<std::string>& protocols);
Extension ech_outer();  // a syntactically plausible outer ECH extension
Extension grease(uint16_t value, Bytes data = {});
// A TLS 1.3 set like current browsers send: supported_versions, supported_groups,
// signature_algorithms and key_share (x25519, plus a 1216-byte X25519MLKEM768 share when
// post_quantum), GREASE included.
std::vector<Extension> modern_extensions(bool post_quantum);

struct ClientHelloSpec {
  uint16_t legacy_version = 0x0303;
  Bytes session_id = Bytes(32, 0x5a);
  Bytes cipher_suites = {0x0a, 0x0a, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xc0, 0x2f};
  Bytes compression = {0};
  std::optional<std::vector<Extension>> extensions = std::vector<Extension>{};
  std::optional<Bytes> raw_tail;  // when set, replaces the encoded extensions block verbatim
};

// The handshake message: msg_type 1, u24 length, body.
Bytes client_hello_message(const ClientHelloSpec& spec);
// The message cut into records of at most fragment_size bytes.
Bytes records(const Bytes& message, size_t fragment_size = 16384, uint16_t record_version = 0x0301,
              uint8_t content_type = 22);
// A complete hello in one record with the given extensions.
Bytes hello_with(std::vector<Extension> extensions);

}  // namespace snisplice::hello::testing
