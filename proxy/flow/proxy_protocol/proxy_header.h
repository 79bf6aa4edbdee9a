#pragma once
// PROXY protocol v1 and v2 (haproxy's proxy-protocol.txt), TCP over IPv4 and IPv6.
// Encoding prefixes what snisplice sends to a backend; decoding reads what a trusted load
// balancer (listeners' proxy_protocol_from) sends before the client's bytes. Pure: bytes in,
// bytes or a verdict out.
//
// Address families: an IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack [::] socket
// reports for an IPv4 client) is always carried as plain IPv4, in both directions. If source and
// destination still differ in family after that, the header says "unknown": v1
// "PROXY UNKNOWN\r\n", v2 PROXY command with AF_UNSPEC and no address block; receivers then use
// the connection's own endpoints (spec sections 2.1 and 2.2).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/net_address.h"

namespace snisplice::proxy_protocol {

enum class Version : uint8_t { v1, v2 };

// The whole header for a proxied TCP connection from `source` (the client) to `destination`.
std::vector<uint8_t> encode(Version version, const SocketAddress& source, const SocketAddress& destination);

// v1: "PROXY TCP4 ..." lines are at most 107 bytes including CRLF (spec 2.1).
inline constexpr size_t kV1MaxBytes = 107;
// v2 header size (16 fixed bytes + length) accepted by default. The spec allows up to 16+65535;
// real senders add a few TLVs (cloud load balancers: endpoint ids, TLS facts) in well under
// this, and the bytes are buffered ahead of the ClientHello.
inline constexpr size_t kV2DefaultMaxBytes = 4096;

struct NeedMore {};

struct Done {
  Version version = Version::v1;
  // Both set for TCP over IPv4/IPv6; both empty for LOCAL (a health check from the load
  // balancer itself) and for "unknown" (v1 UNKNOWN; v2 AF_UNSPEC, AF_UNIX or UDP): the caller
  // then keeps the connection's real endpoints.
  std::optional<SocketAddress> source;
  std::optional<SocketAddress> destination;
  size_t consumed = 0;    // header bytes; the client's data starts right after them
  bool is_local = false;  // v2 LOCAL command
};

// A closed list: each reason has one label (to_string) for logs and metrics.
enum class RejectReason : uint8_t {
  bad_signature,     // neither "PROXY " nor the v2 signature
  v1_too_long,       // no CRLF within 107 bytes
  v1_syntax,         // wrong protocol word, separators, characters or line ending
  v1_bad_address,    // an address that is not a valid literal of the stated family
  v1_bad_port,       // not a decimal 0..65535 without leading zeros
  v2_bad_version,    // version nibble is not 2
  v2_bad_command,    // command nibble is neither LOCAL nor PROXY
  v2_bad_family,     // unassigned address family or transport protocol
  v2_too_long,       // longer than the configured maximum
  v2_short_address,  // length smaller than the family's address block
  v2_bad_tlv,        // a TLV runs past the end of the header
};
std::string_view to_string(RejectReason reason);

struct Rejected {
  RejectReason reason;
};

using Outcome = std::variant<NeedMore, Done, Rejected>;

// Incremental: call with everything buffered so far (from the first byte of the connection).
// NeedMore while `buffered` is a proper prefix of an acceptable header; a verdict never changes
// once given, however many more bytes arrive. Bytes after the header are not looked at.
// v1 decoding is strict: single spaces, no leading zeros in ports, CRLF; "UNKNOWN" may be
// followed by anything up to CRLF, which is ignored (spec 2.1). v2 TLVs are checked for framing
// and skipped.
Outcome parse(std::span<const uint8_t> buffered, size_t v2_max_bytes = kV2DefaultMaxBytes);

// Whether bytes from a source that may not send PROXY headers begin with one: `present` when
// they start with "PROXY " or the 12-byte v2 signature, `undecided` while they are empty or a
// proper prefix of either (a header dribbled byte by byte is still a header), else `absent`.
// No HTTP method or TLS record starts that way.
enum class HeaderPresence { absent, undecided, present };
HeaderPresence proxy_header_presence(std::span<const uint8_t> buffered);

}  // namespace snisplice::proxy_protocol
