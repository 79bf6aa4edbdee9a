// PROXY header codec: parse never crashes and keeps its invariants on any input; whatever it
// accepts re-encodes to the same addresses; encode -> parse round trips for addresses built from
// the input.
#include <cstdlib>
#include <cstring>

#include "flow/proxy_protocol/proxy_header.h"
#include "require.h"

using namespace snisplice;
using namespace snisplice::proxy_protocol;

namespace {

using snisplice::fuzzing::require;

bool same(const std::optional<SocketAddress>& a, const std::optional<SocketAddress>& b) { return a == b; }

// A prefix of the input is either still undecided or already has the whole input's verdict.
void check_prefix_agrees(std::span<const uint8_t> in, const Outcome& whole) {
  if (in.empty()) return;
  auto prefix = parse(in.first(in.size() / 2));
  if (std::holds_alternative<NeedMore>(prefix)) return;
  require(prefix.index() == whole.index());
  if (auto* rejected = std::get_if<Rejected>(&prefix)) require(rejected->reason == std::get<Rejected>(whole).reason);
}

// As bytes arrive, presence only moves from undecided to a verdict that then stays.
void check_presence(std::span<const uint8_t> in) {
  const HeaderPresence whole = proxy_header_presence(in);
  for (size_t n = 0; n < in.size() && n <= 13; ++n) {
    const HeaderPresence prefix = proxy_header_presence(in.first(n));
    require(prefix == HeaderPresence::undecided || prefix == whole);
  }
}

void check_parse(std::span<const uint8_t> in) {
  auto outcome = parse(in);
  check_prefix_agrees(in, outcome);
  auto* done = std::get_if<Done>(&outcome);
  if (!done) return;
  require(done->consumed > 0 && done->consumed <= in.size());
  require(done->source.has_value() == done->destination.has_value());
  // A verdict depends only on the header bytes, and every proper prefix of them needs more.
  auto exact = parse(in.first(done->consumed));
  auto* exact_done = std::get_if<Done>(&exact);
  require(exact_done && exact_done->consumed == done->consumed && same(exact_done->source, done->source));
  require(std::holds_alternative<NeedMore>(parse(in.first(done->consumed - 1))));
  if (done->source && done->source->ip.family == done->destination->ip.family) {
    auto again = encode(done->version, *done->source, *done->destination);
    auto reparsed = parse(std::span<const uint8_t>(again));
    auto* redone = std::get_if<Done>(&reparsed);
    require(redone && redone->consumed == again.size());
    require(same(redone->source, done->source) && same(redone->destination, done->destination));
  }
}

SocketAddress address_from(const uint8_t* in, bool v6) {
  SocketAddress out;
  out.ip.family = v6 ? IpAddress::Family::v6 : IpAddress::Family::v4;
  std::memcpy(out.ip.bytes.data(), in, v6 ? 16 : 4);
  out.port = static_cast<uint16_t>(in[16] << 8 | in[17]);
  return out;
}

void check_round_trip(const uint8_t* data, size_t size) {
  constexpr size_t kNeeded = 1 + 18 + 18;
  if (size < kNeeded) return;
  SocketAddress src = address_from(data + 1, data[0] & 1);
  SocketAddress dst = address_from(data + 19, data[0] & 2);
  for (auto version : {Version::v1, Version::v2}) {
    auto header = encode(version, src, dst);
    auto outcome = parse(std::span<const uint8_t>(header));
    auto* done = std::get_if<Done>(&outcome);
    require(done && done->consumed == header.size() && !done->is_local);
    IpAddress s = src.ip.unmapped();
    IpAddress d = dst.ip.unmapped();
    if (s.family == d.family) {
      require(done->source == (SocketAddress{s, src.port}));
      require(done->destination == (SocketAddress{d, dst.port}));
    } else {
      require(!done->source && !done->destination);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check_parse(std::span<const uint8_t>(data, size));
  check_presence(std::span<const uint8_t>(data, size));
  check_round_trip(data, size);
  return 0;
}
