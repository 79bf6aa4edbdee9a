// DnsCache: the pinned eBPF map and the in-process LRU pass the same behavioural checks (keys,
// TTL clamping, negative answers, expiry, address cap, eviction bound, concurrent use). The
// pinned backing needs root; without it that half prints why and checks nothing.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "address_literal.h"
#include "flow/resolve/dns_cache.h"
#include "temp_pin_dir.h"

namespace {

using namespace std::chrono_literals;
using snisplice::IpAddress;
using snisplice::resolve::CacheClock;
using snisplice::resolve::DnsCache;

using snisplice::test::ip;

snisplice::config::Dns test_dns(uint32_t cache_size) {
  snisplice::config::Dns dns;
  dns.min_ttl = 5s;
  dns.max_ttl = 300s;
  dns.negative_ttl = 7s;
  dns.cache_size = cache_size;
  return dns;
}

// Runs `check` on both backings, each sized `cache_size`.
void for_each_backing(uint32_t cache_size, const std::function<void(DnsCache&)>& check) {
  SUBCASE("in-process LRU") {
    auto cache = DnsCache::in_process(test_dns(cache_size));
    CHECK(cache->backing() == "in-process LRU");
    check(*cache);
  }
  SUBCASE("pinned eBPF map") {
    if (::geteuid() != 0) {
      MESSAGE("skipped: the pinned eBPF map needs root (CAP_BPF, bpffs)");
      return;
    }
    TempPinDir pins;
    auto cache = DnsCache::pinned(test_dns(cache_size), pins.path());
    REQUIRE_MESSAGE(cache.has_value(), (cache ? "" : cache.error().message()));
    CHECK((*cache)->backing() == "pinned eBPF map");
    check(**cache);
    CHECK((*cache)->errors() == 0);
  }
}

}  // namespace

TEST_CASE("a stored answer is found by any case and trailing dot, until its clamped TTL ends") {
  for_each_backing(64, [](DnsCache& cache) {
    const auto now = CacheClock::now();
    CHECK_FALSE(cache.lookup("www.example.test", now).has_value());
    const std::vector<IpAddress> addresses{ip("127.0.0.2"), ip("::1")};
    cache.store("WWW.Example.TEST.", addresses, 60s, now);
    auto found = cache.lookup("www.example.test", now);
    REQUIRE(found.has_value());
    CHECK_FALSE(found->negative);
    CHECK(found->addresses == addresses);
    CHECK(found->expires == now + 60s);
    CHECK(cache.lookup("www.example.test.", now + 59s).has_value());
    CHECK_FALSE(cache.lookup("www.example.test", now + 60s).has_value());
  });
}

TEST_CASE("TTLs are clamped to [min_ttl, max_ttl]") {
  for_each_backing(64, [](DnsCache& cache) {
    CHECK(cache.clamp_ttl(0s) == 5s);
    CHECK(cache.clamp_ttl(4s) == 5s);
    CHECK(cache.clamp_ttl(42s) == 42s);
    CHECK(cache.clamp_ttl(86400s) == 300s);
    const auto now = CacheClock::now();
    const std::vector<IpAddress> one{ip("127.0.0.3")};
    cache.store("short.test", one, 0s, now);
    cache.store("long.test", one, 86400s, now);
    REQUIRE(cache.lookup("short.test", now).has_value());
    CHECK(cache.lookup("short.test", now).value().expires == now + 5s);
    CHECK(cache.lookup("long.test", now).value().expires == now + 300s);
    CHECK_FALSE(cache.lookup("long.test", now + 300s).has_value());
  });
}

TEST_CASE("a negative answer is cached for negative_ttl") {
  for_each_backing(64, [](DnsCache& cache) {
    const auto now = CacheClock::now();
    cache.store_negative("gone.test", now);
    auto found = cache.lookup("GONE.test", now);
    REQUIRE(found.has_value());
    CHECK(found->negative);
    CHECK(found->addresses.empty());
    CHECK(found->expires == now + 7s);
    CHECK_FALSE(cache.lookup("gone.test", now + 7s).has_value());
  });
}

TEST_CASE("a later store replaces the answer; at most kMaxAddresses are kept") {
  for_each_backing(64, [](DnsCache& cache) {
    const auto now = CacheClock::now();
    cache.store_negative("flip.test", now);
    std::vector<IpAddress> many;
    for (int i = 1; i <= 12; ++i) many.push_back(ip(("127.0.1." + std::to_string(i)).c_str()));
    cache.store("flip.test", many, 30s, now);
    auto found = cache.lookup("flip.test", now);
    REQUIRE(found.has_value());
    CHECK_FALSE(found->negative);
    REQUIRE(found->addresses.size() == DnsCache::kMaxAddresses);
    CHECK(std::equal(found->addresses.begin(), found->addresses.end(), many.begin()));
  });
}

TEST_CASE("names that cannot be keys are never cached and are no error") {
  for_each_backing(64, [](DnsCache& cache) {
    const auto now = CacheClock::now();
    const std::vector<IpAddress> one{ip("127.0.0.4")};
    const std::string too_long(300, 'a');
    cache.store("", one, 30s, now);
    cache.store(".", one, 30s, now);
    cache.store(too_long, one, 30s, now);
    CHECK_FALSE(cache.lookup("", now).has_value());
    CHECK_FALSE(cache.lookup(".", now).has_value());
    CHECK_FALSE(cache.lookup(too_long, now).has_value());
    CHECK(cache.errors() == 0);
  });
}

TEST_CASE("a full cache evicts: never more than cache_size names, the newest always kept") {
  constexpr uint32_t kSize = 16;
  for_each_backing(kSize, [](DnsCache& cache) {
    const auto now = CacheClock::now();
    const std::vector<IpAddress> one{ip("127.0.0.5")};
    constexpr int kNames = 200;
    for (int i = 0; i < kNames; ++i) cache.store("host" + std::to_string(i) + ".test", one, 60s, now);
    int present = 0;
    for (int i = 0; i < kNames; ++i)
      if (cache.lookup("host" + std::to_string(i) + ".test", now)) ++present;
    CHECK(present > 0);
    CHECK(present <= static_cast<int>(kSize));
    CHECK(cache.lookup("host" + std::to_string(kNames - 1) + ".test", now).has_value());
    CHECK_FALSE(cache.lookup("host0.test", now).has_value());
  });
}

namespace {
// "t<thread>-<index>.test", built by appending: GCC 12 at -O3 warns (-Wrestrict) on "t" + string.
std::string thread_name(int thread, int index) {
  std::string name = "t";
  name += std::to_string(thread);
  name += '-';
  name += std::to_string(index);
  name += ".test";
  return name;
}
}  // namespace

TEST_CASE("workers store and look up at once") {
  for_each_backing(4096, [](DnsCache& cache) {
    const auto now = CacheClock::now();
    constexpr int kThreads = 4;
    constexpr int kNames = 500;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&cache, now, t] {
        const std::vector<IpAddress> mine{IpAddress{IpAddress::Family::v4, {127, 0, 2, static_cast<uint8_t>(t)}}};
        for (int i = 0; i < kNames; ++i) {
          const std::string name = thread_name(t, i);
          cache.store(name, mine, 60s, now);
          (void)cache.lookup(thread_name((t + 1) % kThreads, i), now);
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (int t = 0; t < kThreads; ++t)
      for (int i = 0; i < kNames; ++i) {
        auto found = cache.lookup(thread_name(t, i), now);
        REQUIRE(found.has_value());
        REQUIRE(found->addresses.size() == 1);
        CHECK(found->addresses[0].bytes[3] == t);
      }
  });
}

TEST_CASE("in-process LRU: a looked-up name survives eviction of older, unused ones") {
  auto cache = DnsCache::in_process(test_dns(4));
  const auto now = CacheClock::now();
  const std::vector<IpAddress> one{ip("127.0.0.6")};
  for (const char* name : {"a.test", "b.test", "c.test", "d.test"}) cache->store(name, one, 60s, now);
  REQUIRE(cache->lookup("a.test", now).has_value());  // a is now the most recently used
  cache->store("e.test", one, 60s, now);              // evicts b, the least recently used
  CHECK(cache->lookup("a.test", now).has_value());
  CHECK_FALSE(cache->lookup("b.test", now).has_value());
  CHECK(cache->lookup("e.test", now).has_value());
}

TEST_CASE("open() falls back to the in-process LRU and says why") {
  auto none = DnsCache::open(test_dns(128), "");
  CHECK(none.cache->backing() == "in-process LRU");
  CHECK(none.note.find("no bpf_pin_path") != std::string::npos);

  auto refused = DnsCache::open(test_dns(128), "/tmp/snisplice-resolver-not-bpffs/pins");
  CHECK(refused.cache->backing() == "in-process LRU");
  CHECK(refused.note.find("pinned map unavailable") != std::string::npos);
  CHECK(refused.note.find("not on a BPF filesystem") != std::string::npos);

  if (::geteuid() != 0) {
    MESSAGE("skipped the pinned half: needs root (CAP_BPF, bpffs)");
    return;
  }
  TempPinDir pins;
  auto pinned = DnsCache::open(test_dns(128), pins.path());
  CHECK(pinned.cache->backing() == "pinned eBPF map");
  CHECK(pinned.note.find(pins.path() + "/dns_cache") != std::string::npos);
  CHECK(pinned.note.find("(created)") != std::string::npos);
}
