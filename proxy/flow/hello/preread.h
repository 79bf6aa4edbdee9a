#pragma once
// The parser a connection runs on its first bytes, chosen by the listener's protocol.
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>

#include "flow/hello/http_host.h"
#include "flow/hello/outcome.h"
#include "flow/hello/tls_client_hello.h"

namespace snisplice::hello {

// What a listener speaks (its `protocol` in the configuration).
enum class Protocol { tls, http };

class PrereadParser {
 public:
  // max_bytes is the listener's client_hello_max_bytes (clamped to kMaxHelloBytesLimit).
  PrereadParser(Protocol protocol, size_t max_bytes);

  // See TlsClientHelloParser::feed / HttpHostParser::feed: pass every byte buffered so far.
  Outcome feed(std::span<const uint8_t> buffered);

 private:
  std::variant<TlsClientHelloParser, HttpHostParser> parser_;
};

}  // namespace snisplice::hello
