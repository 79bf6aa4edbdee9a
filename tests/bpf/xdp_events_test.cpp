// The XDP program's live-event sampler judged through bpf_prog_test_run_opts on hand-built
// frames: a denied packet puts exactly one record in the xdp_events ring with its source,
// port, verdict and reason; a passed one puts none; past the per-CPU budget records stop and
// the sampled-out counter rises. Also prints the program's cost per packet. Maps are pinned
// under a temporary directory on bpffs. Exits 77 (skipped) without the privileges to load BPF.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "xdp_fixture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "bpf/xdp_allowlist.h"
#include "bpf/xdp_event_reader.h"
#include "events/bus.h"

namespace {

using namespace snisplice::test::xdp;

constexpr uint16_t kPort = 8443;

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

// A loaded, unattached program judging kPort: 192.0.2.0/24 and 2001:db8::/32 allowed.
struct Loaded : LoadedProgram {
  explicit Loaded(snisplice::config::XdpPolicy policy = snisplice::config::XdpPolicy::enforce)
      : LoadedProgram("events") {
    REQUIRE(allowlist.set_ports({kPort}).has_value());
    REQUIRE(allowlist.sync_allow({cidr("192.0.2.0/24"), cidr("2001:db8::/32")}).has_value());
    REQUIRE(allowlist.set_policy(policy).has_value());
  }
};

// Every record in the ring now, consumed.
std::vector<xdp_event> drain(int ring_fd) {
  std::vector<xdp_event> records;
  auto collect = [](void* context, void* data, size_t size) -> int {
    if (size != sizeof(xdp_event)) return -1;  // fails the consume below
    xdp_event record;
    std::memcpy(&record, data, sizeof record);
    static_cast<std::vector<xdp_event>*>(context)->push_back(record);
    return 0;
  };
  ring_buffer* ring = ring_buffer__new(ring_fd, collect, &records, nullptr);
  REQUIRE(ring != nullptr);
  CHECK(ring_buffer__consume(ring) >= 0);
  ring_buffer__free(ring);
  return records;
}

}  // namespace

TEST_CASE("a denied packet puts exactly one record in the ring, with its fields") {
  Loaded loaded;
  const int ring = loaded.allowlist.event_ring_fd();
  drain(ring);
  for (const char* source : {"203.0.113.7", "2001:db9::7"}) {
    CAPTURE(std::string(source));
    CHECK(run(loaded.allowlist, syn(source)).action == XDP_DROP);
    const std::vector<xdp_event> records = drain(ring);
    REQUIRE(records.size() == 1);
    const xdp_event& record = records[0];
    CHECK(record.port == kPort);
    CHECK(record.verdict == ALLOWLIST_VERDICT_DROP);
    CHECK(record.reason == ALLOWLIST_REASON_DENIED);
    CHECK(record.ifindex == 1);  // test runs see the loopback device as the receiver
    auto event = snisplice::bpf::decode_xdp_event(record, "lo");
    REQUIRE(event.has_value());
    CHECK(event->source.to_string() == source);
    CHECK(event->port == kPort);
    CHECK(event->verdict == "drop");
    CHECK(event->reason == "denied");
    CHECK(event->interface == "lo");
  }
}

TEST_CASE("decode_xdp_event: labels from the ABI enums; unknown values are refused") {
  xdp_event record{};
  record.ifindex = 7;
  record.port = 443;
  record.family = 6;
  record.verdict = ALLOWLIST_VERDICT_RATE_LIMITED;
  record.reason = ALLOWLIST_REASON_SYN_RATE;
  REQUIRE(inet_pton(AF_INET6, "2001:db8::1", record.source) == 1);
  auto event = snisplice::bpf::decode_xdp_event(record, "eth0");
  REQUIRE(event.has_value());
  CHECK(event->source.to_string() == "2001:db8::1");
  CHECK(event->verdict == "rate_limited");
  CHECK(event->reason == "syn_rate");
  CHECK(event->port == 443);
  using Break = void (*)(xdp_event&);
  for (Break broken : {Break{[](xdp_event& r) { r.family = 5; }},
                       Break{[](xdp_event& r) { r.verdict = ALLOWLIST_VERDICT_COUNT; }},
                       Break{[](xdp_event& r) { r.reason = ALLOWLIST_REASON_COUNT; }}}) {
    xdp_event bad = record;
    broken(bad);
    CHECK_FALSE(snisplice::bpf::decode_xdp_event(bad, "eth0").has_value());
  }
}

TEST_CASE("passed packets put nothing in the ring; monitor mode records would_drop") {
  Loaded loaded(snisplice::config::XdpPolicy::monitor);
  const int ring = loaded.allowlist.event_ring_fd();
  drain(ring);
  CHECK(run(loaded.allowlist, syn("192.0.2.10")).action == XDP_PASS);        // allowed
  CHECK(run(loaded.allowlist, syn("203.0.113.7", 22)).action == XDP_PASS);   // other port
  CHECK(drain(ring).empty());
  CHECK(run(loaded.allowlist, syn("203.0.113.7")).action == XDP_PASS);
  const std::vector<xdp_event> records = drain(ring);
  REQUIRE(records.size() == 1);
  CHECK(records[0].verdict == ALLOWLIST_VERDICT_WOULD_DROP);
}

TEST_CASE("past the per-CPU budget records stop and sampled_out counts the rest") {
  Loaded loaded;
  const int ring = loaded.allowlist.event_ring_fd();
  // 50 a second: a test run of 2,000 packets (well under a millisecond) spends the burst of
  // 50 and gets no token back. One run stays on one CPU, whose bucket starts full.
  REQUIRE(loaded.allowlist.set_event_rate(50).has_value());
  drain(ring);
  const XdpCounters before = read_counters(loaded.allowlist);
  CHECK(run(loaded.allowlist, syn("203.0.113.7"), 2000).action == XDP_DROP);
  const XdpCounters after = read_counters(loaded.allowlist);
  const size_t recorded = drain(ring).size();
  const uint64_t sampled_out = after.events_sampled_out - before.events_sampled_out;
  CHECK(recorded >= 49);
  CHECK(recorded <= 51);
  CHECK(after.events_ring_full == before.events_ring_full);
  CHECK(recorded + sampled_out == 2000);
  // Rate 0: nothing recorded, everything counted.
  REQUIRE(loaded.allowlist.set_event_rate(0).has_value());
  CHECK(run(loaded.allowlist, syn("203.0.113.7"), 10).action == XDP_DROP);
  CHECK(drain(ring).empty());
  CHECK(read_counters(loaded.allowlist).events_sampled_out - after.events_sampled_out == 10);
}

TEST_CASE("a full ring counts ring_full, never blocks the verdict") {
  Loaded loaded;
  const int ring = loaded.allowlist.event_ring_fd();
  drain(ring);
  // A budget larger than the ring holds (256 KiB / 40-byte slots: ~6,500 records).
  REQUIRE(loaded.allowlist.set_event_rate(1'000'000).has_value());
  const XdpCounters before = read_counters(loaded.allowlist);
  CHECK(run(loaded.allowlist, syn("203.0.113.7"), 10000).action == XDP_DROP);
  const XdpCounters after = read_counters(loaded.allowlist);
  const size_t recorded = drain(ring).size();
  const uint64_t ring_full = after.events_ring_full - before.events_ring_full;
  const uint64_t sampled_out = after.events_sampled_out - before.events_sampled_out;
  CHECK(recorded > 0);
  CHECK(ring_full > 0);
  CHECK(recorded + ring_full + sampled_out == 10000);
}

TEST_CASE("XdpEventReader publishes records as xdp events on the bus, and stops") {
  Loaded loaded;
  prometheus::Counter ring_full, slow;
  prometheus::Gauge subscribers;
  snisplice::events::EventBus bus({ring_full, slow, subscribers});
  auto subscription = bus.subscribe({});
  REQUIRE(subscription);
  {
    auto reader = snisplice::bpf::XdpEventReader::start(loaded.allowlist.event_ring_fd(), bus);
    REQUIRE_MESSAGE(reader.has_value(), (reader ? "" : reader.error().message()));
    CHECK(run(loaded.allowlist, syn("203.0.113.9")).action == XDP_DROP);
    std::string seen;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (seen.find("\"type\":\"xdp\"") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline)
      for (const auto& line : subscription->wait(std::chrono::milliseconds(100)).lines) seen += *line;
    CHECK(seen.find("\"type\":\"xdp\"") != std::string::npos);
    CHECK(seen.find("\"source\":\"203.0.113.9\"") != std::string::npos);
    CHECK(seen.find("\"verdict\":\"drop\"") != std::string::npos);
    CHECK(seen.find("\"interface\":\"lo\"") != std::string::npos);
  }  // the reader stops and joins here, within its poll interval
  bus.unsubscribe(subscription);
}

TEST_CASE("cost per packet (printed; not asserted: the machine is shared)") {
  Loaded loaded;
  constexpr uint32_t kRepeat = 200000;
  for (const auto& [name, frame] : {std::pair{"allowed SYN (pass)", syn("192.0.2.10")},
                                    std::pair{"other port (pass)", syn("203.0.113.7", 22)},
                                    std::pair{"denied SYN (drop), sampled out", syn("203.0.113.7")}}) {
    uint32_t best = UINT32_MAX;
    for (int round = 0; round < 5; ++round)
      best = std::min(best, run(loaded.allowlist, frame, kRepeat).duration_ns);
    std::printf("xdp cost: %-38s %u ns/packet (best of 5 x %u)\n", name, best, kRepeat);
  }
  // Every drop recorded: a budget above what a run sends, the ring emptied between runs.
  constexpr uint32_t kRecorded = 4000;  // fits the ring
  REQUIRE(loaded.allowlist.set_event_rate(1'000'000'000).has_value());
  const Bytes denied = syn("203.0.113.7");
  uint32_t best = UINT32_MAX;
  for (int round = 0; round < 5; ++round) {
    drain(loaded.allowlist.event_ring_fd());
    best = std::min(best, run(loaded.allowlist, denied, kRecorded).duration_ns);
  }
  std::printf("xdp cost: %-38s %u ns/packet (best of 5 x %u)\n", "denied SYN (drop), every one recorded",
              best, kRecorded);
}

int main(int argc, char** argv) {
  return run_tests(argc, argv, "xdp_events_test", "CAP_BPF, CAP_NET_ADMIN, bpffs", "events-probe");
}
