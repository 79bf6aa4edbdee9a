#pragma once
// The DNS answer cache shared by every worker's Resolver: the pinned eBPF LRU map "dns_cache"
// when BPF is available (it survives restarts and bpftool shows it), an in-process LRU of the
// same size otherwise. Both backings behave the same: same keys, same expiry, same address cap.
//
// Keys: the lower-case name without one trailing dot (bpf::dns_cache_key_name); a name that
// cannot be a key (empty, 256 bytes or more, a NUL) is never cached.
// Positive answers live for their DNS TTL clamped to [min_ttl, max_ttl]; failures (NXDOMAIN,
// SERVFAIL, timeout) for negative_ttl. At most kMaxAddresses addresses are kept per name.
// Thread-safe: every worker thread may call lookup() and store*() at once.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "base/error.h"
#include "base/net_address.h"
#include "bpf/dns_cache_map.h"
#include "config/config.h"

namespace snisplice::resolve {

// CLOCK_BOOTTIME, the clock the pinned map's expiries are in.
using CacheClock = bpf::BootClock;

struct CachedAnswer {
  std::vector<IpAddress> addresses;  // empty when negative
  bool negative = false;             // "this name does not resolve", cached for negative_ttl
  CacheClock::time_point expires;
};

class DnsCache {
 public:
  static constexpr size_t kMaxAddresses = bpf::DnsCacheMap::kMaxAddresses;

  struct Opened {
    std::unique_ptr<DnsCache> cache;  // never null
    std::string note;                 // which backing was chosen and why, for one log line
  };
  // The pinned map under `bpf_pin_path` (created, or reused from an earlier run) when it can
  // be opened; the in-process LRU otherwise, or when `bpf_pin_path` is empty.
  static Opened open(const config::Dns& dns, const std::string& bpf_pin_path);
  // Each backing on its own, for tests and for callers that know which one they want.
  static tl::expected<std::unique_ptr<DnsCache>, Error> pinned(const config::Dns& dns,
                                                               const std::string& bpf_pin_path);
  static std::unique_ptr<DnsCache> in_process(const config::Dns& dns);

  DnsCache(const DnsCache&) = delete;
  DnsCache& operator=(const DnsCache&) = delete;
  virtual ~DnsCache() = default;

  // The unexpired answer for `name` at `now`, or nullopt (also on a map error, counted in
  // errors()). Refreshes the entry's place in the LRU.
  std::optional<CachedAnswer> lookup(std::string_view name, CacheClock::time_point now);
  // Caches `addresses` (the first kMaxAddresses) for `ttl` clamped to [min_ttl, max_ttl].
  void store(std::string_view name, std::span<const IpAddress> addresses, std::chrono::seconds ttl,
             CacheClock::time_point now);
  // Caches "does not resolve" for negative_ttl.
  void store_negative(std::string_view name, CacheClock::time_point now);

  // The TTL an answer with DNS TTL `ttl` is cached for.
  std::chrono::milliseconds clamp_ttl(std::chrono::seconds ttl) const;
  // Map syscalls that failed (lookups then count as misses, stores are dropped).
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  // "pinned eBPF map" or "in-process LRU", for logs.
  virtual std::string_view backing() const = 0;
  // Names held now (expired ones included until evicted or looked up). The pinned map is
  // walked key by key: call it seldom (metrics refresh every few seconds).
  virtual size_t entries() const = 0;

 protected:
  explicit DnsCache(const config::Dns& dns);
  // `key` is already normalised; `addresses` already capped.
  virtual tl::expected<std::optional<CachedAnswer>, Error> find(const std::string& key,
                                                                CacheClock::time_point now) = 0;
  virtual tl::expected<void, Error> put(const std::string& key, std::span<const IpAddress> addresses,
                                        CacheClock::time_point expires, bool negative) = 0;

 private:
  void write(std::string_view name, std::span<const IpAddress> addresses,
             CacheClock::time_point expires, bool negative);

  std::chrono::milliseconds min_ttl_;
  std::chrono::milliseconds max_ttl_;
  std::chrono::milliseconds negative_ttl_;
  std::atomic<uint64_t> errors_{0};
};

}  // namespace snisplice::resolve
