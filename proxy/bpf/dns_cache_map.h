#pragma once
// Owner of the pinned DNS answer cache, the LRU hash "dns_cache" under bpf_pin_path
// (ebpf/dns_cache.bpf.c, layout in ebpf/include/dns_cache_abi.h). It outlives the daemon:
// a restarted daemon finds its answers still cached until they expire.
// lookup() and store() may be called from every worker thread at once: each is one bpf
// syscall on a whole value, and the sequence counter is atomic.
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

struct dns_cache;  // the generated skeleton (dns_cache.skel.h)

namespace snisplice::bpf {

// CLOCK_BOOTTIME: the expiry clock of the cache (the same as bpf_ktime_get_boot_ns). Every
// process of one boot shares it, NTP never steps it, and it counts suspended time, so an
// expiry stored by one daemon means the same to the next.
struct BootClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<BootClock>;
  static constexpr bool is_steady = true;
  static time_point now() noexcept;
};

struct DnsCacheEntry {
  std::vector<IpAddress> addresses;  // empty when negative
  BootClock::time_point expires;
  bool negative = false;
  uint64_t sequence = 0;  // higher = stored later
};

class DnsCacheMap {
 public:
  static constexpr size_t kMaxAddresses = 8;  // DNS_CACHE_MAX_ADDRESSES

  // Opens the map pinned at `pin_path`/dns_cache, or creates and pins it (with BTF) when
  // absent. A pin with another size or layout (e.g. dns.cache_size changed) is replaced by
  // an empty map of `max_entries`: the cache is only a cache.
  static tl::expected<DnsCacheMap, Error> open(const std::string& pin_path,
                                                     uint32_t max_entries);

  DnsCacheMap(DnsCacheMap&&) noexcept;
  DnsCacheMap& operator=(DnsCacheMap&&) noexcept;
  DnsCacheMap(const DnsCacheMap&) = delete;
  DnsCacheMap& operator=(const DnsCacheMap&) = delete;
  ~DnsCacheMap();

  // The answer cached for `name` (any case, one trailing dot ignored), or nullopt when there
  // is none, it has expired at `now`, or the name cannot be a key (empty, too long).
  tl::expected<std::optional<DnsCacheEntry>, Error> lookup(std::string_view name,
                                                                 BootClock::time_point now) const;

  // Caches `addresses` (the first kMaxAddresses) for `name` until `expiry`. Replaces any
  // earlier answer; the LRU evicts the least recently used name when the map is full.
  tl::expected<void, Error> store(std::string_view name,
                                        std::span<const IpAddress> addresses,
                                        BootClock::time_point expiry);
  // Caches "this name does not resolve" until `expiry`.
  tl::expected<void, Error> store_negative(std::string_view name,
                                                 BootClock::time_point expiry);

  // Whether open() found a compatible pin (true) or created the map (false).
  bool reused_pin() const { return reused_pin_; }
  uint32_t max_entries() const { return max_entries_; }
  // How many entries the map holds (expired ones included), by walking its keys.
  size_t entries() const;

 private:
  int map_fd() const;
  struct SkeletonDeleter {
    void operator()(::dns_cache* skeleton) const;
  };
  DnsCacheMap(std::unique_ptr<::dns_cache, SkeletonDeleter> skeleton, bool reused_pin,
              uint32_t max_entries);
  tl::expected<void, Error> write(std::string_view name,
                                        std::span<const IpAddress> addresses,
                                        BootClock::time_point expiry, bool negative);

  std::unique_ptr<::dns_cache, SkeletonDeleter> skeleton_;
  bool reused_pin_ = false;
  uint32_t max_entries_ = 0;
  // Seeded from the boot clock at open, so sequences keep increasing across restarts.
  std::unique_ptr<std::atomic<uint64_t>> next_sequence_;
};

// The cache key for a host name: lower-case ASCII, one trailing dot removed. nullopt when
// the name is empty or does not fit the 256-byte key with its terminating zero.
std::optional<std::string> dns_cache_key_name(std::string_view name);

}  // namespace snisplice::bpf
