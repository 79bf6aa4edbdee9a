// The XDP allowlist program judged through bpf_prog_test_run_opts on hand-built frames, and
// its owner's map management. Maps are pinned under a temporary directory on bpffs, never
// under the production bpf_pin_path. Exits 77 (skipped) without the privileges to load BPF.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "xdp_fixture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bpf/pin_dir.h"
#include "bpf/xdp_allowlist.h"

namespace {

using namespace snisplice::test::xdp;
using snisplice::Cidr;

constexpr uint16_t kFilteredPort = 8443;
constexpr uint16_t kSshPort = 22;

// ---- frame building -------------------------------------------------------------------

struct FrameSpec {
  std::vector<uint16_t> vlan_tpids{};  // outer first: {0x88a8, 0x8100} is QinQ
  uint16_t ethertype = ETH_P_IP;
};

Bytes ethernet(const FrameSpec& spec) {
  Bytes out = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
  for (uint16_t tpid : spec.vlan_tpids) {
    put16(out, tpid);
    put16(out, 100);  // the TCI of each tag: VLAN 100
  }
  put16(out, spec.ethertype);
  return out;
}

Bytes tcp_header(uint16_t dest_port, uint8_t data_offset_words = 5) {
  Bytes out;
  put16(out, 40000);
  put16(out, dest_port);
  for (int i = 0; i < 8; ++i) out.push_back(0);  // seq, ack
  out.push_back(static_cast<uint8_t>(data_offset_words << 4));
  out.push_back(0x02);  // SYN
  put16(out, 65535);
  put16(out, 0);  // checksum: XDP does not verify it
  put16(out, 0);
  for (int i = 5; i < data_offset_words; ++i)
    for (int j = 0; j < 4; ++j) out.push_back(1);  // NOP options
  return out;
}

struct V4Spec {
  const char* source = "192.0.2.10";
  uint8_t protocol = IPPROTO_TCP;
  uint16_t dest_port = kFilteredPort;
  uint8_t ihl = 5;
  uint16_t frag_field = 0;  // flags + offset as on the wire
  FrameSpec frame{};
};

Bytes ipv4_frame(const V4Spec& spec) {
  Bytes frame = ethernet(spec.frame);
  Bytes l4 = spec.protocol == IPPROTO_TCP ? tcp_header(spec.dest_port)
                                          : Bytes{8, 0, 0, 0, 0, 1, 0, 1};  // ICMP echo
  const size_t header_len = std::max<size_t>(spec.ihl, 5) * 4;
  Bytes ip = {static_cast<uint8_t>(0x40 | spec.ihl), 0};
  put16(ip, static_cast<uint16_t>(header_len + l4.size()));
  put16(ip, 1);
  put16(ip, spec.frag_field);
  ip.push_back(64);
  ip.push_back(spec.protocol);
  put16(ip, 0);
  in_addr source{}, dest{};
  REQUIRE(inet_pton(AF_INET, spec.source, &source) == 1);
  REQUIRE(inet_pton(AF_INET, "198.51.100.1", &dest) == 1);
  ip.insert(ip.end(), reinterpret_cast<uint8_t*>(&source), reinterpret_cast<uint8_t*>(&source) + 4);
  ip.insert(ip.end(), reinterpret_cast<uint8_t*>(&dest), reinterpret_cast<uint8_t*>(&dest) + 4);
  while (ip.size() < header_len) ip.push_back(1);  // NOP options
  frame.insert(frame.end(), ip.begin(), ip.end());
  frame.insert(frame.end(), l4.begin(), l4.end());
  return frame;
}

// An IPv6 extension header: next header, then the body padded to its declared length.
struct ExtHeader {
  uint8_t type;
  Bytes body;  // everything after the next-header byte
};

ExtHeader hop_by_hop() { return {IPPROTO_HOPOPTS, {0, 1, 4, 0, 0, 0, 0}}; }  // hdrlen 0: 8 bytes
ExtHeader dest_options_16() {                                              // hdrlen 1: 16 bytes
  Bytes body = {1, 1, 12};
  body.resize(15, 0);
  return {IPPROTO_DSTOPTS, body};
}
ExtHeader routing() { return {IPPROTO_ROUTING, {0, 0, 0, 0, 0, 0, 0}}; }
ExtHeader fragment(uint16_t offset_units, bool more) {
  const uint16_t field = static_cast<uint16_t>(offset_units << 3 | (more ? 1 : 0));
  return {IPPROTO_FRAGMENT, {0, static_cast<uint8_t>(field >> 8), static_cast<uint8_t>(field), 0, 0, 0, 7}};
}
ExtHeader authentication() {  // hdrlen 1: (1 + 2) * 4 = 12 bytes
  return {IPPROTO_AH, {1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1}};
}

struct V6Spec {
  const char* source = "2001:db8:1::10";
  uint8_t last_header = IPPROTO_TCP;
  uint16_t dest_port = kFilteredPort;
  std::vector<ExtHeader> extensions{};
  FrameSpec frame{{}, ETH_P_IPV6};
};

Bytes ipv6_frame(const V6Spec& spec) {
  Bytes frame = ethernet(spec.frame);
  Bytes payload;
  for (size_t i = 0; i < spec.extensions.size(); ++i) {
    const uint8_t next =
        i + 1 < spec.extensions.size() ? spec.extensions[i + 1].type : spec.last_header;
    payload.push_back(next);
    payload.insert(payload.end(), spec.extensions[i].body.begin(), spec.extensions[i].body.end());
  }
  if (spec.last_header == IPPROTO_TCP) {
    Bytes tcp = tcp_header(spec.dest_port);
    payload.insert(payload.end(), tcp.begin(), tcp.end());
  } else {
    payload.insert(payload.end(), {135, 0, 0, 0, 0, 0, 0, 0});  // ICMPv6 neighbour solicitation
  }
  Bytes ip = {0x60, 0, 0, 0};
  put16(ip, static_cast<uint16_t>(payload.size()));
  ip.push_back(spec.extensions.empty() ? spec.last_header : spec.extensions.front().type);
  ip.push_back(64);
  in6_addr source{}, dest{};
  REQUIRE(inet_pton(AF_INET6, spec.source, &source) == 1);
  REQUIRE(inet_pton(AF_INET6, "2001:db8:ffff::1", &dest) == 1);
  ip.insert(ip.end(), source.s6_addr, source.s6_addr + 16);
  ip.insert(ip.end(), dest.s6_addr, dest.s6_addr + 16);
  frame.insert(frame.end(), ip.begin(), ip.end());
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}

Bytes arp_frame() {
  Bytes frame = ethernet({{}, ETH_P_ARP});
  frame.insert(frame.end(), {0, 1, 8, 0, 6, 4, 0, 1});
  frame.resize(frame.size() + 20, 0);
  return frame;
}

// ---- the loaded program ---------------------------------------------------------------

// A loaded, unattached allowlist under a temporary pin dir with policy, ports and allow set.
struct Loaded : LoadedProgram {
  explicit Loaded(snisplice::config::XdpPolicy policy = snisplice::config::XdpPolicy::enforce,
                  std::vector<Cidr> allow = {cidr("10.1.0.0/16"), cidr("192.0.2.10/32"),
                                             cidr("2001:db8:1::/48")})
      : LoadedProgram("test") {
    REQUIRE(allowlist.set_ports({kFilteredPort, 443}).has_value());
    auto synced = allowlist.sync_allow(allow);
    REQUIRE_MESSAGE(synced.has_value(), (synced ? "" : synced.error().message()));
    REQUIRE(allowlist.set_policy(policy).has_value());
  }
};

}  // namespace

TEST_CASE("verdicts: fixture table of frames under enforce") {
  Loaded loaded;
  struct Case {
    const char* name;
    Bytes frame;
    allowlist_verdict verdict;
    allowlist_reason reason;
  };
  const Case cases[] = {
      {"v4 allowed host /32", ipv4_frame({}), ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_ALLOWED},
      {"v4 inside allowed /16", ipv4_frame({.source = "10.1.200.7"}), ALLOWLIST_VERDICT_PASS,
       ALLOWLIST_REASON_ALLOWED},
      {"v4 in the /8 around the /16, not allowed", ipv4_frame({.source = "10.2.0.1"}),
       ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED},
      {"v4 just below the /16", ipv4_frame({.source = "10.0.255.255"}), ALLOWLIST_VERDICT_DROP,
       ALLOWLIST_REASON_DENIED},
      {"v4 denied", ipv4_frame({.source = "203.0.113.9"}), ALLOWLIST_VERDICT_DROP,
       ALLOWLIST_REASON_DENIED},
      {"v4 denied, second filtered port", ipv4_frame({.source = "203.0.113.9", .dest_port = 443}),
       ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED},
      {"v4 denied source to SSH", ipv4_frame({.source = "203.0.113.9", .dest_port = kSshPort}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_OTHER_PORT},
      {"v4 ICMP from denied source", ipv4_frame({.source = "203.0.113.9", .protocol = IPPROTO_ICMP}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_NOT_TCP},
      {"v4 UDP to the filtered port", ipv4_frame({.source = "203.0.113.9", .protocol = IPPROTO_UDP}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_NOT_TCP},
      {"v4 with options, denied", ipv4_frame({.source = "203.0.113.9", .ihl = 8}),
       ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED},
      {"v4 with options, allowed", ipv4_frame({.source = "10.1.0.1", .ihl = 15}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_ALLOWED},
      {"v4 ihl 4", ipv4_frame({.source = "203.0.113.9", .ihl = 4}), ALLOWLIST_VERDICT_PASS,
       ALLOWLIST_REASON_MALFORMED},
      {"v4 first fragment (MF) is judged", ipv4_frame({.source = "203.0.113.9", .frag_field = 0x2000}),
       ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED},
      {"v4 non-first fragment", ipv4_frame({.source = "203.0.113.9", .frag_field = 0x2010}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_FRAGMENT},
      {"v4 last fragment", ipv4_frame({.source = "203.0.113.9", .frag_field = 0x0010}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_FRAGMENT},
      {"v4 DF set is no fragment", ipv4_frame({.source = "203.0.113.9", .frag_field = 0x4000}),
       ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED},
      {"802.1Q v4 denied", ipv4_frame({.source = "203.0.113.9", .frame = {{0x8100}, ETH_P_IP}}),
       ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED},
      {"802.1Q v4 allowed", ipv4_frame({.frame = {{0x8100}, ETH_P_IP}}), ALLOWLIST_VERDICT_PASS,
       ALLOWLIST_REASON_ALLOWED},
      {"QinQ v4 denied", ipv4_frame({.source = "203.0.113.9", .frame = {{0x88a8, 0x8100}, ETH_P_IP}}),
       ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED},
      {"QinQ v6 allowed", ipv6_frame({.frame = {{0x88a8, 0x8100}, ETH_P_IPV6}}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_ALLOWED},
      {"three VLAN tags", ipv4_frame({.source = "203.0.113.9", .frame = {{0x88a8, 0x8100, 0x8100}, ETH_P_IP}}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_UNSUPPORTED},
      {"ARP", arp_frame(), ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_NOT_IP},
      {"v6 allowed /48", ipv6_frame({}), ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_ALLOWED},
      {"v6 next /48 denied", ipv6_frame({.source = "2001:db8:2::10"}), ALLOWLIST_VERDICT_DROP,
       ALLOWLIST_REASON_DENIED},
      {"v6 denied to SSH", ipv6_frame({.source = "2001:db8:2::10", .dest_port = kSshPort}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_OTHER_PORT},
      {"ICMPv6 NDP from denied source", ipv6_frame({.source = "fe80::1", .last_header = IPPROTO_ICMPV6}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_NOT_TCP},
      {"v6 hop-by-hop + dest options, denied",
       ipv6_frame({.source = "2001:db8:2::10", .extensions = {hop_by_hop(), dest_options_16()}}),
       ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED},
      {"v6 routing + AH, allowed",
       ipv6_frame({.extensions = {routing(), authentication()}}), ALLOWLIST_VERDICT_PASS,
       ALLOWLIST_REASON_ALLOWED},
      {"v6 first fragment, denied",
       ipv6_frame({.source = "2001:db8:2::10", .extensions = {fragment(0, true)}}),
       ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED},
      {"v6 non-first fragment",
       ipv6_frame({.source = "2001:db8:2::10", .extensions = {fragment(3, false)}}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_FRAGMENT},
      {"v6 ICMPv6 behind hop-by-hop (MLD)",
       ipv6_frame({.source = "fe80::1", .last_header = IPPROTO_ICMPV6, .extensions = {hop_by_hop()}}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_NOT_TCP},
      {"v6 more extension headers than walked",
       ipv6_frame({.source = "2001:db8:2::10",
                   .extensions = {hop_by_hop(), dest_options_16(), routing(), routing(),
                                  dest_options_16(), routing()}}),
       ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_UNSUPPORTED},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    expect(loaded.allowlist, c.frame, c.verdict, c.reason);
  }
}

TEST_CASE("truncated frames at every length pass and count malformed") {
  Loaded loaded;
  const Bytes frames[] = {
      ipv4_frame({.source = "203.0.113.9"}),
      ipv4_frame({.source = "203.0.113.9", .ihl = 7}),
      ipv4_frame({.source = "203.0.113.9", .frame = {{0x88a8, 0x8100}, ETH_P_IP}}),
      ipv6_frame({.source = "2001:db8:2::10"}),
      ipv6_frame({.source = "2001:db8:2::10",
                  .extensions = {hop_by_hop(), dest_options_16(), fragment(0, true), authentication()},
                  .frame = {{0x8100}, ETH_P_IPV6}}),
  };
  for (const Bytes& whole : frames) {
    // Sanity: whole, it is judged and dropped.
    expect(loaded.allowlist, whole, ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED);
    // The kernel's test runner refuses frames shorter than an Ethernet header.
    for (size_t length = ETH_HLEN; length < whole.size(); ++length) {
      CAPTURE(length);
      const Bytes cut(whole.begin(), whole.begin() + static_cast<long>(length));
      expect(loaded.allowlist, cut, ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_MALFORMED);
    }
  }
}

TEST_CASE("inconsistent headers pass and count malformed") {
  Loaded loaded;
  SUBCASE("a TCP header claiming fewer than 20 bytes") {
    Bytes frame = ipv4_frame({.source = "203.0.113.9"});
    frame[ETH_HLEN + 20 + 12] = 4 << 4;
    expect(loaded.allowlist, frame, ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_MALFORMED);
  }
  SUBCASE("an IPv4 total length shorter than its header") {
    Bytes frame = ipv4_frame({.source = "203.0.113.9"});
    frame[ETH_HLEN + 2] = 0;
    frame[ETH_HLEN + 3] = 19;
    expect(loaded.allowlist, frame, ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_MALFORMED);
  }
  SUBCASE("an IPv6 ethertype carrying version 4") {
    Bytes frame = ipv6_frame({.source = "2001:db8:2::10"});
    frame[ETH_HLEN] = 0x40;
    expect(loaded.allowlist, frame, ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_MALFORMED);
  }
}

TEST_CASE("random mutations: one verdict and one reason per frame; drop only when denied") {
  Loaded loaded;
  const Bytes seeds[] = {
      ipv4_frame({.source = "203.0.113.9"}),
      ipv4_frame({.source = "10.1.0.1", .ihl = 6, .frame = {{0x8100}, ETH_P_IP}}),
      ipv6_frame({.source = "2001:db8:2::10", .extensions = {hop_by_hop(), fragment(0, true)}}),
      ipv6_frame({.frame = {{0x88a8, 0x8100}, ETH_P_IPV6}}),
      arp_frame(),
  };
  std::mt19937 random(20261122);  // fixed seed: a failure reproduces
  constexpr int kFrames = 3000;
  for (int i = 0; i < kFrames; ++i) {
    Bytes frame = seeds[random() % std::size(seeds)];
    const int flips = 1 + static_cast<int>(random() % 4);
    for (int f = 0; f < flips; ++f) frame[random() % frame.size()] = static_cast<uint8_t>(random());
    if (random() % 4 == 0) frame.resize(ETH_HLEN + random() % (frame.size() - ETH_HLEN + 1));
    CAPTURE(i);
    const Outcome outcome = run(loaded.allowlist, frame);
    uint64_t verdicts = 0, reasons = 0;
    for (uint64_t v : outcome.delta.verdicts) verdicts += v;
    for (uint64_t r : outcome.delta.reasons) reasons += r;
    REQUIRE(verdicts == 1);
    REQUIRE(reasons == 1);
    const bool dropped = outcome.action == XDP_DROP;
    REQUIRE((outcome.action == XDP_DROP || outcome.action == XDP_PASS));
    REQUIRE(dropped == (outcome.delta.verdicts[ALLOWLIST_VERDICT_DROP] == 1));
    REQUIRE(dropped == (outcome.delta.reasons[ALLOWLIST_REASON_DENIED] == 1));
  }
}

TEST_CASE("policy monitor counts would_drop and passes; off passes without looking") {
  SUBCASE("monitor") {
    Loaded loaded(snisplice::config::XdpPolicy::monitor);
    expect(loaded.allowlist, ipv4_frame({.source = "203.0.113.9"}), ALLOWLIST_VERDICT_WOULD_DROP,
           ALLOWLIST_REASON_DENIED);
    expect(loaded.allowlist, ipv6_frame({.source = "2001:db8:2::10"}),
           ALLOWLIST_VERDICT_WOULD_DROP, ALLOWLIST_REASON_DENIED);
    expect(loaded.allowlist, ipv4_frame({}), ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_ALLOWED);
  }
  SUBCASE("off") {
    Loaded loaded(snisplice::config::XdpPolicy::off);
    expect(loaded.allowlist, ipv4_frame({.source = "203.0.113.9"}), ALLOWLIST_VERDICT_PASS,
           ALLOWLIST_REASON_POLICY_OFF);
  }
  SUBCASE("switching at run time, without reloading the program") {
    Loaded loaded(snisplice::config::XdpPolicy::enforce);
    const Bytes denied = ipv4_frame({.source = "203.0.113.9"});
    expect(loaded.allowlist, denied, ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED);
    REQUIRE(loaded.allowlist.set_policy(snisplice::config::XdpPolicy::monitor).has_value());
    expect(loaded.allowlist, denied, ALLOWLIST_VERDICT_WOULD_DROP, ALLOWLIST_REASON_DENIED);
    REQUIRE(loaded.allowlist.set_policy(snisplice::config::XdpPolicy::off).has_value());
    expect(loaded.allowlist, denied, ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_POLICY_OFF);
  }
}

TEST_CASE("ports: only the configured ports are judged; none configured filters nothing") {
  Loaded loaded;
  const Bytes to_9000 = ipv4_frame({.source = "203.0.113.9", .dest_port = 9000});
  expect(loaded.allowlist, to_9000, ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_OTHER_PORT);
  REQUIRE(loaded.allowlist.set_ports({9000}).has_value());
  expect(loaded.allowlist, to_9000, ALLOWLIST_VERDICT_DROP, ALLOWLIST_REASON_DENIED);
  expect(loaded.allowlist, ipv4_frame({.source = "203.0.113.9"}), ALLOWLIST_VERDICT_PASS,
         ALLOWLIST_REASON_OTHER_PORT);
  REQUIRE(loaded.allowlist.set_ports({}).has_value());
  expect(loaded.allowlist, to_9000, ALLOWLIST_VERDICT_PASS, ALLOWLIST_REASON_OTHER_PORT);
}

namespace {

int pinned_fd(const std::string& dir, const char* name) {
  const int fd = bpf_obj_get((dir + "/" + name).c_str());
  REQUIRE_MESSAGE(fd >= 0, name << ": " << std::strerror(errno));
  return fd;
}

std::optional<uint32_t> trie_value(int fd, const Cidr& cidr) {
  uint32_t value = 0;
  int err;
  if (cidr.network.is_v4()) {
    allow_v4_key key{cidr.prefix_len, {}};
    std::memcpy(key.addr, cidr.network.bytes.data(), 4);
    err = bpf_map_lookup_elem(fd, &key, &value);
  } else {
    allow_v6_key key{cidr.prefix_len, {}};
    std::memcpy(key.addr, cidr.network.bytes.data(), 16);
    err = bpf_map_lookup_elem(fd, &key, &value);
  }
  if (err != 0) return std::nullopt;
  return value;
}

// Whether the trie holds a key of exactly this prefix, walking keys of type Key.
template <typename Key>
bool has_key(int fd, const Cidr& cidr) {
  Key key{}, next{};
  const void* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    if (next.prefixlen == cidr.prefix_len && std::memcmp(next.addr, cidr.network.bytes.data(), sizeof next.addr) == 0)
      return true;
    key = next;
    previous = &key;
  }
  return false;
}

// An exact-prefix lookup in an LPM trie returns the longest match, so look at the keys.
bool has_exact(int fd, const Cidr& cidr) {
  if (!trie_value(fd, cidr)) return false;
  return cidr.network.is_v4() ? has_key<allow_v4_key>(fd, cidr) : has_key<allow_v6_key>(fd, cidr);
}

void operator_add_v4(int fd, const Cidr& cidr) {
  allow_v4_key key{cidr.prefix_len, {}};
  std::memcpy(key.addr, cidr.network.bytes.data(), 4);
  const uint32_t value = 1;  // what docs/allowlist.md tells operators to write
  REQUIRE(bpf_map_update_elem(fd, &key, &value, BPF_ANY) == 0);
}

}  // namespace

TEST_CASE("sync_allow changes only config-owned entries; operator entries survive") {
  Loaded loaded(snisplice::config::XdpPolicy::enforce, {cidr("10.1.0.0/16"), cidr("2001:db8:1::/48")});
  snisplice::UniqueFd v4(pinned_fd(loaded.pins.path(), "allow_v4"));
  snisplice::UniqueFd v6(pinned_fd(loaded.pins.path(), "allow_v6"));
  CHECK(trie_value(v4.get(), cidr("10.1.0.0/16")) == ALLOWLIST_VALUE_FROM_CONFIG);

  operator_add_v4(v4.get(), cidr("203.0.113.0/24"));
  operator_add_v4(v4.get(), cidr("198.51.100.0/24"));  // also listed by the next config
  expect(loaded.allowlist, ipv4_frame({.source = "203.0.113.9"}), ALLOWLIST_VERDICT_PASS,
         ALLOWLIST_REASON_ALLOWED);

  auto reload = loaded.allowlist.sync_allow({cidr("198.51.100.0/24"), cidr("172.16.0.0/12"),
                                             cidr("2001:db8:1::/48")});
  REQUIRE(reload.has_value());
  CHECK(reload->added == 1);          // 172.16.0.0/12
  CHECK(reload->removed == 1);        // 10.1.0.0/16
  CHECK(reload->operator_kept == 1);  // 198.51.100.0/24 stays the operator's
  CHECK_FALSE(has_exact(v4.get(), cidr("10.1.0.0/16")));
  CHECK(has_exact(v4.get(), cidr("172.16.0.0/12")));
  CHECK(trie_value(v4.get(), cidr("203.0.113.0/24")) == 1u);
  CHECK(trie_value(v4.get(), cidr("198.51.100.0/24")) == 1u);
  CHECK(has_exact(v6.get(), cidr("2001:db8:1::/48")));
  expect(loaded.allowlist, ipv4_frame({.source = "10.1.0.1"}), ALLOWLIST_VERDICT_DROP,
         ALLOWLIST_REASON_DENIED);

  // An empty config removes what the config added, nothing else.
  auto emptied = loaded.allowlist.sync_allow({});
  REQUIRE(emptied.has_value());
  CHECK(emptied->removed == 2);
  CHECK(trie_value(v4.get(), cidr("203.0.113.0/24")) == 1u);
  CHECK(trie_value(v4.get(), cidr("198.51.100.0/24")) == 1u);
  CHECK_FALSE(has_exact(v4.get(), cidr("172.16.0.0/12")));
  CHECK_FALSE(has_exact(v6.get(), cidr("2001:db8:1::/48")));
}

TEST_CASE("a restart reuses the pinned allowlist, operator entries and policy included") {
  TempPinDir pins;
  {
    XdpAllowlist first = open_allowlist(pins.path());
    REQUIRE(first.sync_allow({cidr("10.1.0.0/16")}).has_value());
    REQUIRE(first.set_policy(snisplice::config::XdpPolicy::enforce).has_value());
    REQUIRE(first.set_ports({kFilteredPort}).has_value());
    snisplice::UniqueFd v4(pinned_fd(pins.path(), "allow_v4"));
    operator_add_v4(v4.get(), cidr("203.0.113.0/24"));
  }
  XdpAllowlist second = open_allowlist(pins.path());
  expect(second, ipv4_frame({.source = "203.0.113.9"}), ALLOWLIST_VERDICT_PASS,
         ALLOWLIST_REASON_ALLOWED);
  expect(second, ipv4_frame({.source = "10.1.2.3"}), ALLOWLIST_VERDICT_PASS,
         ALLOWLIST_REASON_ALLOWED);
  expect(second, ipv4_frame({.source = "10.2.2.3"}), ALLOWLIST_VERDICT_DROP,
         ALLOWLIST_REASON_DENIED);
  // The new config no longer lists 10.1.0.0/16: removed, though an earlier process added it.
  auto synced = second.sync_allow({});
  REQUIRE(synced.has_value());
  CHECK(synced->removed == 1);
  expect(second, ipv4_frame({.source = "10.1.2.3"}), ALLOWLIST_VERDICT_DROP,
         ALLOWLIST_REASON_DENIED);
}

namespace {

// The program attached to `name` in the calling process's network namespace, as the kernel
// reports it: XDP_ATTACHED_NONE / DRV / SKB.
int attach_mode_of(const char* name) {
  const unsigned ifindex = if_nametoindex(name);
  if (ifindex == 0) return -1;
  LIBBPF_OPTS(bpf_xdp_query_opts, query);
  if (bpf_xdp_query(static_cast<int>(ifindex), 0, &query) != 0) return -1;
  return query.attach_mode;
}

// Runs `body` in a child process inside a fresh network namespace (its own lo, veth pair
// snxa/snxb), so attaching never disturbs the host. Returns the child's exit code: 0 when
// every step passed, else the number of the first failing step.
template <typename Body>
int in_fresh_netns(Body body) {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (::unshare(CLONE_NEWNET) != 0) ::_exit(100);
    if (std::system("ip link add snxa type veth peer name snxb && ip link set snxa up && "
                    "ip link set snxb up && ip link set lo up") != 0)
      ::_exit(101);
    ::_exit(body());
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

}  // namespace

TEST_CASE("attach: auto falls back to generic; set_interfaces attaches, detaches, re-attaches") {
  TempPinDir pins;
  const int failed_step = in_fresh_netns([&]() -> int {
    using snisplice::config::XdpMode;
    using snisplice::bpf::XdpAttachMode;
    {
      // lo has no native XDP: native alone fails, and says so.
      auto native_only = XdpAllowlist::open(pins.path(), {"lo"}, XdpMode::native);
      if (native_only || native_only.error().message().find("native") == std::string::npos) return 1;
    }
    auto opened = XdpAllowlist::open(pins.path(), {"lo"}, XdpMode::automatic);
    if (!opened) return 2;
    XdpAllowlist& allowlist = *opened;
    auto attached = allowlist.attachments();
    if (attached.size() != 1 || attached[0].interface != "lo" ||
        attached[0].mode != XdpAttachMode::generic || attach_mode_of("lo") != XDP_ATTACHED_SKB)
      return 3;

    if (!allowlist.set_interfaces({"snxa", "snxb"}, XdpMode::native)) return 4;
    attached = allowlist.attachments();
    if (attached.size() != 2 || attached[0].mode != XdpAttachMode::native ||
        attached[1].mode != XdpAttachMode::native)
      return 5;
    if (attach_mode_of("lo") != XDP_ATTACHED_NONE || attach_mode_of("snxa") != XDP_ATTACHED_DRV ||
        attach_mode_of("snxb") != XDP_ATTACHED_DRV)
      return 6;

    // A mode change re-attaches; an interface no longer listed is detached.
    if (!allowlist.set_interfaces({"snxa"}, XdpMode::generic)) return 7;
    attached = allowlist.attachments();
    if (attached.size() != 1 || attached[0].mode != XdpAttachMode::generic) return 8;
    if (attach_mode_of("snxa") != XDP_ATTACHED_SKB || attach_mode_of("snxb") != XDP_ATTACHED_NONE)
      return 9;
    // automatic keeps what is attached.
    if (!allowlist.set_interfaces({"snxa"}, XdpMode::automatic)) return 10;
    if (attach_mode_of("snxa") != XDP_ATTACHED_SKB) return 11;

    // An error leaves earlier attachments in place.
    if (allowlist.set_interfaces({"snxa", "snx-missing"}, XdpMode::automatic)) return 12;
    if (attach_mode_of("snxa") != XDP_ATTACHED_SKB) return 13;

    { XdpAllowlist gone = std::move(allowlist); }
    if (attach_mode_of("snxa") != XDP_ATTACHED_NONE) return 14;  // destruction detaches
    return 0;
  });
  CHECK_MESSAGE(failed_step == 0, "step " << failed_step << " failed");
}

TEST_CASE("filtered_ports: xdp.ports, else every listener port") {
  snisplice::config::Config config;
  snisplice::config::Listener tls, plain;
  tls.listen = {*snisplice::SocketAddress::parse("127.0.0.1:8443"),
                *snisplice::SocketAddress::parse("[::]:8443")};
  plain.listen = {*snisplice::SocketAddress::parse("127.0.0.1:8080")};
  config.listeners = {tls, plain};
  CHECK(snisplice::bpf::filtered_ports(config) == std::vector<uint16_t>{8080, 8443});
  config.xdp.ports = {443, 80, 443};
  CHECK(snisplice::bpf::filtered_ports(config) == std::vector<uint16_t>{80, 443});
}

TEST_CASE("an unknown interface is a clear error") {
  TempPinDir pins;
  auto opened = XdpAllowlist::open(pins.path(), {"snisplice-no-such0"},
                                   snisplice::config::XdpMode::automatic);
  REQUIRE_FALSE(opened.has_value());
  CHECK(opened.error().message().find("snisplice-no-such0") != std::string::npos);
}

TEST_CASE("a pin path outside any bpffs is refused with a reason") {
  auto opened = XdpAllowlist::open("/tmp/snisplice-not-bpffs/pins", {},
                                   snisplice::config::XdpMode::automatic);
  REQUIRE_FALSE(opened.has_value());
  CHECK(opened.error().message().find("not on a BPF filesystem") != std::string::npos);
}

TEST_CASE("pin dir: mounts bpffs on /sys/fs/bpf when a fresh machine has none") {
  // In a child with a private mount namespace, so the host's bpffs is never touched.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(10);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(11);
    for (int i = 0; i < 4 && snisplice::bpf::is_on_bpffs("/sys/fs/bpf"); ++i)
      ::umount2("/sys/fs/bpf", MNT_DETACH);
    if (snisplice::bpf::is_on_bpffs("/sys/fs/bpf")) ::_exit(12);
    if (!snisplice::bpf::ensure_pin_dir("/sys/fs/bpf/snisplice-test/nested")) ::_exit(13);
    if (!snisplice::bpf::is_on_bpffs("/sys/fs/bpf/snisplice-test/nested")) ::_exit(14);
    struct stat st {};
    if (::stat("/sys/fs/bpf/snisplice-test/nested", &st) != 0 || (st.st_mode & 0777) != 0700)
      ::_exit(15);
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK_MESSAGE(WEXITSTATUS(status) == 0, "child step " << WEXITSTATUS(status) << " failed");
}

TEST_CASE("pin dir: relative paths and existing non-directories are refused") {
  CHECK(snisplice::bpf::ensure_pin_dir("sys/fs/bpf/x").error().message().find("absolute") != std::string::npos);
  TempPinDir pins;
  REQUIRE(snisplice::bpf::ensure_pin_dir(pins.path()).has_value());
  REQUIRE(snisplice::bpf::ensure_pin_dir(pins.path()).has_value());  // idempotent
  // A pinned map where a directory is wanted.
  const std::string map_pin = pins.path() + "/not-a-dir";
  snisplice::UniqueFd map(bpf_map_create(BPF_MAP_TYPE_ARRAY, "probe", 4, 4, 1, nullptr));
  REQUIRE(map);
  REQUIRE(bpf_obj_pin(map.get(), map_pin.c_str()) == 0);
  CHECK_FALSE(snisplice::bpf::ensure_pin_dir(map_pin).has_value());
}

int main(int argc, char** argv) {
  return run_tests(argc, argv, "xdp_test", "CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for bpffs", "test");
}
