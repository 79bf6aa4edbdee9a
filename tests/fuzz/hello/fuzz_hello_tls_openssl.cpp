// Differential: whenever both our parser and OpenSSL's server accept a ClientHello, they must
// read the same SNI, ALPN list and ECH presence. Seeds: tests/fuzz/corpus/hello_tls.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "flow/hello/tls_client_hello.h"
#include "openssl_view.h"

namespace hello = snisplice::hello;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  hello::Outcome ours = hello::TlsClientHelloParser().feed(bytes);
  if (ours.state != hello::Outcome::State::done) return 0;
  auto theirs = hello::testing::openssl_view(bytes.first(ours.hello.consumed));
  if (!theirs.hello_seen) return 0;
  std::string their_host =
      theirs.host_name ? hello::testing::normalized_for_comparison(*theirs.host_name) : "";
  if (their_host != ours.hello.host || theirs.alpn != ours.hello.alpn ||
      theirs.ech_present != ours.hello.ech_offered)
    std::abort();
  return 0;
}
