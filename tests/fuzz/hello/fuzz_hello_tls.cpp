// TLS ClientHello parser: never crashes, and keeps feed_invariants.h on any bytes, with the
// default limit and with one small enough to make the limit matter.
#include <cstddef>
#include <cstdint>
#include <span>

#include "feed_invariants.h"
#include "flow/hello/tls_client_hello.h"

using snisplice::hello::TlsClientHelloParser;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  for (size_t max_bytes : {snisplice::hello::kDefaultMaxHelloBytes, size / 2 + 5}) {
    snisplice::hello::fuzzing::check_invariants([max_bytes] { return TlsClientHelloParser(max_bytes); },
                                                bytes, max_bytes);
  }
  return 0;
}
