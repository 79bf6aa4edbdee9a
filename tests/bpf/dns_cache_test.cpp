// The pinned DNS cache map: store, lookup, expiry, reuse across a simulated restart, size
// changes, LRU eviction, and what bpftool shows. Pins live in a temporary directory on bpffs.
// Exits 77 (skipped) without the privileges to create BPF maps.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "address_literal.h"
#include "bpf_test_main.h"
#include "temp_pin_dir.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bpf/dns_cache_map.h"

namespace {

using namespace std::chrono_literals;
using snisplice::IpAddress;
using snisplice::bpf::BootClock;
using snisplice::bpf::DnsCacheMap;

using snisplice::test::ip;

DnsCacheMap open_map(const std::string& dir, uint32_t size) {
  auto opened = DnsCacheMap::open(dir, size);
  if (!opened) FAIL(opened.error().message());
  return std::move(*opened);
}

std::optional<snisplice::bpf::DnsCacheEntry> find(const DnsCacheMap& map, std::string_view name,
                                                  BootClock::time_point now) {
  auto found = map.lookup(name, now);
  REQUIRE_MESSAGE(found.has_value(), (found ? "" : found.error().message()));
  return *found;
}

// Runs a shell command, returning its standard output.
std::string run(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  ::pclose(pipe);
  return output;
}

}  // namespace

TEST_CASE("store then lookup returns the addresses, v4 and v6, until expiry") {
  TempPinDir pins;
  DnsCacheMap cache = open_map(pins.path(), 64);
  CHECK_FALSE(cache.reused_pin());
  const auto now = BootClock::now();
  const std::vector<IpAddress> addresses = {ip("192.0.2.1"), ip("2001:db8::5"), ip("192.0.2.2")};
  REQUIRE(cache.store("Www.Example.COM.", addresses, now + 30s).has_value());

  auto hit = find(cache, "www.example.com", now);
  REQUIRE(hit.has_value());
  CHECK(hit->addresses == addresses);
  CHECK_FALSE(hit->negative);
  CHECK(hit->expires == now + 30s);
  CHECK(find(cache, "WWW.EXAMPLE.COM.", now + 29s).has_value());  // same key, any case
  CHECK_FALSE(find(cache, "www.example.com", now + 30s).has_value());  // expired
  CHECK_FALSE(find(cache, "example.com", now).has_value());

  SUBCASE("a newer store replaces the answer with a higher sequence") {
    REQUIRE(cache.store("www.example.com", std::vector<IpAddress>{ip("198.51.100.7")}, now + 60s)
                .has_value());
    auto newer = find(cache, "www.example.com", now + 40s);
    REQUIRE(newer.has_value());
    CHECK(newer->addresses == std::vector<IpAddress>{ip("198.51.100.7")});
    CHECK(newer->sequence > hit->sequence);
  }
  SUBCASE("negative answers") {
    REQUIRE(cache.store_negative("nx.example.com", now + 5s).has_value());
    auto negative = find(cache, "nx.example.com", now);
    REQUIRE(negative.has_value());
    CHECK(negative->negative);
    CHECK(negative->addresses.empty());
    CHECK_FALSE(find(cache, "nx.example.com", now + 5s).has_value());
  }
  SUBCASE("more addresses than a value holds keeps the first eight") {
    std::vector<IpAddress> many;
    for (int i = 1; i <= 12; ++i) many.push_back(ip(("192.0.2." + std::to_string(i)).c_str()));
    REQUIRE(cache.store("many.example.com", many, now + 30s).has_value());
    auto stored = find(cache, "many.example.com", now);
    REQUIRE(stored.has_value());
    CHECK(stored->addresses == std::vector<IpAddress>(many.begin(), many.begin() + 8));
  }
  SUBCASE("names that cannot be keys") {
    CHECK_FALSE(cache.store("", addresses, now + 30s).has_value());
    CHECK_FALSE(cache.store(std::string(256, 'a'), addresses, now + 30s).has_value());
    CHECK(cache.store(std::string(255, 'a'), addresses, now + 30s).has_value());
    CHECK_FALSE(find(cache, std::string(300, 'a'), now).has_value());
    CHECK_FALSE(find(cache, ".", now).has_value());
  }
}

TEST_CASE("a restart reuses the pinned cache; a new size replaces it") {
  TempPinDir pins;
  const auto now = BootClock::now();
  uint64_t first_sequence = 0;
  {
    DnsCacheMap first = open_map(pins.path(), 128);
    REQUIRE(first.store("api.example.net", std::vector<IpAddress>{ip("203.0.113.4")}, now + 300s)
                .has_value());
    first_sequence = find(first, "api.example.net", now)->sequence;
  }
  DnsCacheMap second = open_map(pins.path(), 128);
  CHECK(second.reused_pin());
  auto kept = find(second, "api.example.net", now + 1s);
  REQUIRE(kept.has_value());
  CHECK(kept->addresses == std::vector<IpAddress>{ip("203.0.113.4")});
  REQUIRE(second.store("api.example.net", std::vector<IpAddress>{ip("203.0.113.5")}, now + 300s)
              .has_value());
  CHECK(find(second, "api.example.net", now)->sequence > first_sequence);

  DnsCacheMap resized = open_map(pins.path(), 256);
  CHECK_FALSE(resized.reused_pin());
  CHECK(resized.max_entries() == 256);
  CHECK_FALSE(find(resized, "api.example.net", now).has_value());
}

TEST_CASE("the LRU evicts old names when full") {
  TempPinDir pins;
  constexpr uint32_t kSize = 16;
  DnsCacheMap cache = open_map(pins.path(), kSize);
  const auto now = BootClock::now();
  constexpr int kNames = 200;
  for (int i = 0; i < kNames; ++i) {
    REQUIRE(cache.store("host" + std::to_string(i) + ".example.com",
                        std::vector<IpAddress>{ip("192.0.2.1")}, now + 300s)
                .has_value());
  }
  int present = 0;
  for (int i = 0; i < kNames; ++i)
    if (find(cache, "host" + std::to_string(i) + ".example.com", now)) ++present;
  // The shared LRU keeps per-CPU free lists, so the exact count varies a little with the CPU
  // count; it never exceeds max_entries and the newest name is always there.
  CHECK(present > 0);
  CHECK(present <= static_cast<int>(kSize));
  CHECK(find(cache, "host" + std::to_string(kNames - 1) + ".example.com", now).has_value());
  CHECK_FALSE(find(cache, "host0.example.com", now).has_value());
}

TEST_CASE("bpftool map dump shows names, families and addresses by field name") {
  TempPinDir pins;
  DnsCacheMap cache = open_map(pins.path(), 32);
  REQUIRE(cache.store("dump.example.org",
                      std::vector<IpAddress>{ip("192.0.2.77"), ip("2001:db8::77")},
                      BootClock::now() + 60s)
              .has_value());
  const std::string dump = run("bpftool map dump pinned " + pins.path() + "/dns_cache 2>&1");
  CAPTURE(dump);
  CHECK(dump.find("\"name\": \"dump.example.org\"") != std::string::npos);
  CHECK(dump.find("\"family\": \"DNS_CACHE_IPV4\"") != std::string::npos);
  CHECK(dump.find("\"family\": \"DNS_CACHE_IPV6\"") != std::string::npos);
  CHECK(dump.find("\"expires_boot_ns\"") != std::string::npos);
  CHECK(dump.find("\"sequence\"") != std::string::npos);
  CHECK(dump.find("[192,0,2,77,0,") != std::string::npos);  // address bytes in decimal
}

TEST_CASE("a pin path outside any bpffs is refused with a reason") {
  auto opened = DnsCacheMap::open("/tmp/snisplice-not-bpffs/pins", 16);
  REQUIRE_FALSE(opened.has_value());
  CHECK(opened.error().message().find("not on a BPF filesystem") != std::string::npos);
}

int main(int argc, char** argv) {
  return snisplice::test::run_bpf_tests(argc, argv, "dns_cache_test", "CAP_BPF, CAP_SYS_ADMIN for bpffs",
                                        "create BPF maps", "test",
                                        [](const std::string& pin_path) { return DnsCacheMap::open(pin_path, 1); });
}
