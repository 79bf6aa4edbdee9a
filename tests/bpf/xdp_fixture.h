#pragma once
// What the XDP program's BPF tests share: the program loaded unattached under a temporary pin
// dir, one run of it through bpf_prog_test_run_opts with the counters it moved, the check of
// one verdict, and a main() that skips (exit 77) where BPF cannot be loaded.
#include <doctest/doctest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "bpf/xdp_allowlist.h"
#include "bpf_test_main.h"
#include "temp_pin_dir.h"

namespace snisplice::test::xdp {

using Bytes = std::vector<uint8_t>;
using bpf::XdpAllowlist;
using bpf::XdpCounters;

inline Cidr cidr(const char* text) {
  auto parsed = Cidr::parse(text);
  REQUIRE_MESSAGE(parsed.has_value(), text);
  return *parsed;
}

inline void put16(Bytes& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

inline XdpCounters read_counters(const XdpAllowlist& allowlist) {
  auto counters = allowlist.counters();
  REQUIRE_MESSAGE(counters.has_value(), (counters ? "" : counters.error().message()));
  return *counters;
}

struct Outcome {
  uint32_t action;       // XDP_PASS / XDP_DROP / XDP_TX
  uint32_t duration_ns;  // mean per repetition, as the kernel measured it
  Bytes out;             // the frame as the program left it
  XdpCounters delta;     // what the run added to the verdict and reason counters
};

// Runs the program on `frame` `repeat` times in one test run (microseconds).
inline Outcome run(const XdpAllowlist& allowlist, const Bytes& frame, uint32_t repeat = 1) {
  const XdpCounters before = read_counters(allowlist);
  Bytes out(frame.size() + 512);  // room for a reply the program writes in place (SYN-ACK)
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<__u32>(frame.size()),
              .data_size_out = static_cast<__u32>(out.size()),
              .repeat = static_cast<int>(repeat));
  REQUIRE_MESSAGE(bpf_prog_test_run_opts(allowlist.program_fd(), &opts) == 0,
                  "bpf_prog_test_run_opts: " << std::strerror(errno));
  out.resize(opts.data_size_out);
  const XdpCounters after = read_counters(allowlist);
  Outcome outcome{opts.retval, opts.duration, std::move(out), {}};
  for (size_t i = 0; i < after.verdicts.size(); ++i)
    outcome.delta.verdicts[i] = after.verdicts[i] - before.verdicts[i];
  for (size_t i = 0; i < after.reasons.size(); ++i)
    outcome.delta.reasons[i] = after.reasons[i] - before.reasons[i];
  return outcome;
}

inline uint32_t action_of(allowlist_verdict verdict) {
  switch (verdict) {
    case ALLOWLIST_VERDICT_DROP:
    case ALLOWLIST_VERDICT_RATE_LIMITED:
    case ALLOWLIST_VERDICT_SYNCOOKIE_BAD: return XDP_DROP;
    case ALLOWLIST_VERDICT_SYNCOOKIE_SENT: return XDP_TX;
    default: return XDP_PASS;
  }
}

// One run: the action, and exactly one verdict and one reason counted, by one.
inline Outcome expect(const XdpAllowlist& allowlist, const Bytes& frame, allowlist_verdict verdict,
                      allowlist_reason reason) {
  Outcome outcome = run(allowlist, frame);
  CHECK(outcome.action == action_of(verdict));
  for (int v = 0; v < ALLOWLIST_VERDICT_COUNT; ++v)
    CHECK_MESSAGE(outcome.delta.verdicts[v] == (v == verdict ? 1u : 0u),
                  "verdict " << bpf::verdict_label(static_cast<allowlist_verdict>(v)));
  for (int r = 0; r < ALLOWLIST_REASON_COUNT; ++r)
    CHECK_MESSAGE(outcome.delta.reasons[r] == (r == reason ? 1u : 0u),
                  "reason " << bpf::reason_label(static_cast<allowlist_reason>(r)));
  return outcome;
}

inline XdpAllowlist open_allowlist(const std::string& pin_path) {
  auto opened = XdpAllowlist::open(pin_path, {}, config::XdpMode::automatic);
  if (!opened) FAIL(opened.error().message());
  return std::move(*opened);
}

// The program loaded and unattached under its own pin dir; each test file's fixture derives
// from it and sets the ports, tries and settings it judges with.
struct LoadedProgram {
  TempPinDir pins;
  XdpAllowlist allowlist;

  explicit LoadedProgram(const std::string& pin_part) : pins(pin_part), allowlist(open_allowlist(pins.path())) {}
};

// main() of an XDP test: skips, saying why, without root or where loading BPF is refused.
inline int run_tests(int argc, char** argv, const char* test_name, const char* needs, const char* pin_part) {
  return run_bpf_tests(argc, argv, test_name, needs, "load BPF", pin_part, [](const std::string& pin_path) {
    return XdpAllowlist::open(pin_path, {}, config::XdpMode::automatic);
  });
}

}  // namespace snisplice::test::xdp
