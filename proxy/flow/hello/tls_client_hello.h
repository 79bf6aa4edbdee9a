#pragma once
// Incremental TLS ClientHello parser: finds SNI, ALPN and ECH in a client's first bytes
// without terminating TLS. Pure: no I/O, no clock, no logging.
//
// Accepted input (RFC 8446 section 5.1, 4.1.2):
// - records of content type 22 (handshake), record version 0x0301..0x0304, fragment length
//   1..16384; the ClientHello handshake message may span any number of records, and each
//   record any number of reads. Once the first record is seen, every record until the hello
//   is complete must be a handshake record.
// - SSLv2-compatible hellos (first byte with the high bit set) are rejected as not_tls: no
//   client still sends them and they cannot carry SNI.
// - nothing may follow the ClientHello inside the record that completes it.
// - ClientHello body: legacy_version 0x03xx with xx >= 1 (SSL 3.0 hellos are bad_handshake),
//   session_id of at most 32 bytes, a non-empty even-length cipher_suites, at least one
//   compression method, then either nothing (pre-TLS 1.2 clients) or an extensions block that
//   ends exactly where the message ends.
// - extensions: every type at most once; SNI (0) must hold exactly one host_name, valid per
//   normalize_host_name; ALPN (16) a non-empty list of 1..255-byte names; the presence of
//   encrypted_client_hello (0xfe0d) sets ech_offered (routing stays on the outer SNI).
//   GREASE values (RFC 8701) are ordinary unknown values.
//
// Hello::consumed is the offset just past the record that completes the ClientHello.
// max_bytes caps consumed: a hello whose records would end past max_bytes is too_large.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "flow/hello/outcome.h"

namespace snisplice::hello {

class TlsClientHelloParser {
 public:
  explicit TlsClientHelloParser(size_t max_bytes = kDefaultMaxHelloBytes);

  // `buffered` is every byte received so far: each call passes the previous prefix extended
  // by new bytes. Work resumes where the last call stopped, so feeding n bytes one at a time
  // costs O(n) in total. After done or rejected, returns that same outcome again.
  Outcome feed(std::span<const uint8_t> buffered);

 private:
  Outcome finish(std::span<const uint8_t> message, size_t consumed);

  size_t max_bytes_;
  size_t next_record_ = 0;       // offset of the first record header not yet processed
  std::vector<uint8_t> joined_;  // handshake bytes, copied only when they span records
  std::optional<Outcome> verdict_;
};

// Parses one complete ClientHello handshake message (header included); exposed for tests.
Outcome parse_client_hello(std::span<const uint8_t> message);

}  // namespace snisplice::hello
