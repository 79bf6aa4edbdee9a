#pragma once
// Invariants every preread parser must keep on any input: the outcome does not depend on how
// the bytes were split into reads, bytes after a verdict change nothing, and a parsed hello
// stays within the buffer and max_bytes with a host that is already normalised.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "flow/hello/host_name.h"
#include "flow/hello/outcome.h"
#include "require.h"

namespace snisplice::hello::fuzzing {

using snisplice::fuzzing::require;

template <class Parser>
Outcome feed_in_chunks(Parser parser, std::span<const uint8_t> bytes, uint64_t seed) {
  Outcome got;
  size_t at = 0;
  while (true) {
    got = parser.feed(bytes.first(at));
    if (got.state != Outcome::State::need_more || at == bytes.size()) return got;
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;  // LCG: chunk sizes 1..64
    at = std::min(bytes.size(), at + 1 + static_cast<size_t>((seed >> 33) % 64));
  }
}

template <class MakeParser>
void check_invariants(MakeParser make_parser, std::span<const uint8_t> bytes, size_t max_bytes) {
  Outcome whole = make_parser().feed(bytes);
  uint64_t seed = bytes.size();
  for (uint8_t b : bytes) seed = seed * 31 + b;
  require(feed_in_chunks(make_parser(), bytes, seed) == whole);
  if (bytes.size() <= 4096) require(feed_in_chunks(make_parser(), bytes, 0) == whole);

  if (whole.state == Outcome::State::rejected) {
    require(!reject_label(whole.reject).empty());
    require(reject_label(whole.reject) != "unknown");
  }
  if (whole.state == Outcome::State::done) {
    const Hello& hello = whole.hello;
    require(hello.consumed > 0 && hello.consumed <= bytes.size() && hello.consumed <= max_bytes);
    // Only the consumed prefix decides the outcome.
    require(make_parser().feed(bytes.first(hello.consumed)) == whole);
    if (!hello.host.empty() && hello.host.find(':') == std::string::npos)
      require(normalize_host_name(hello.host) == hello.host);
    for (const auto& name : hello.alpn) require(!name.empty() && name.size() <= 255);
  }
  if (whole.state != Outcome::State::need_more) {
    std::vector<uint8_t> longer(bytes.begin(), bytes.end());
    longer.insert(longer.end(), {0x16, 0x03, 0x01, 0x0d, 0x0a, 0x0d, 0x0a});
    require(make_parser().feed(longer) == whole);
  }
}

}  // namespace snisplice::hello::fuzzing
