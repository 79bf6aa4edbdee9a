#include "flow/resolve/dns_cache.h"

#include <algorithm>
#include <list>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace snisplice::resolve {
namespace {

class PinnedDnsCache final : public DnsCache {
 public:
  PinnedDnsCache(const config::Dns& dns, bpf::DnsCacheMap map) : DnsCache(dns), map_(std::move(map)) {}
  std::string_view backing() const override { return "pinned eBPF map"; }
  size_t entries() const override { return map_.entries(); }

 protected:
  tl::expected<std::optional<CachedAnswer>, Error> find(const std::string& key,
                                                        CacheClock::time_point now) override {
    auto found = map_.lookup(key, now);
    if (!found) return tl::unexpected(found.error());
    if (!*found) return std::nullopt;
    bpf::DnsCacheEntry& entry = **found;
    return CachedAnswer{std::move(entry.addresses), entry.negative, entry.expires};
  }
  tl::expected<void, Error> put(const std::string& key, std::span<const IpAddress> addresses,
                                CacheClock::time_point expires, bool negative) override {
    return negative ? map_.store_negative(key, expires) : map_.store(key, addresses, expires);
  }

 private:
  bpf::DnsCacheMap map_;  // lookup/store are single bpf syscalls: safe from every thread
};

// The LRU the pinned map would be, in this process: a recency list and an index into it,
// under one mutex (every operation is a few pointer moves).
class InProcessDnsCache final : public DnsCache {
 public:
  explicit InProcessDnsCache(const config::Dns& dns)
      : DnsCache(dns), capacity_(std::max<size_t>(1, dns.cache_size)) {}
  std::string_view backing() const override { return "in-process LRU"; }
  size_t entries() const override {
    std::lock_guard lock(mutex_);
    return index_.size();
  }

 protected:
  tl::expected<std::optional<CachedAnswer>, Error> find(const std::string& key,
                                                        CacheClock::time_point now) override {
    std::lock_guard lock(mutex_);
    const auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    if (now >= it->second->answer.expires) {
      recency_.erase(it->second);
      index_.erase(it);
      return std::nullopt;
    }
    recency_.splice(recency_.begin(), recency_, it->second);
    return it->second->answer;
  }
  tl::expected<void, Error> put(const std::string& key, std::span<const IpAddress> addresses,
                                CacheClock::time_point expires, bool negative) override {
    CachedAnswer answer{{addresses.begin(), addresses.end()}, negative, expires};
    std::lock_guard lock(mutex_);
    if (const auto it = index_.find(key); it != index_.end()) {
      it->second->answer = std::move(answer);
      recency_.splice(recency_.begin(), recency_, it->second);
      return {};
    }
    if (index_.size() >= capacity_) {
      index_.erase(recency_.back().key);
      recency_.pop_back();
    }
    recency_.push_front(Entry{key, std::move(answer)});
    index_.emplace(key, recency_.begin());
    return {};
  }

 private:
  struct Entry {
    std::string key;
    CachedAnswer answer;
  };
  const size_t capacity_;
  mutable std::mutex mutex_;
  std::list<Entry> recency_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace

DnsCache::DnsCache(const config::Dns& dns)
    : min_ttl_(dns.min_ttl), max_ttl_(dns.max_ttl), negative_ttl_(dns.negative_ttl) {}

DnsCache::Opened DnsCache::open(const config::Dns& dns, const std::string& bpf_pin_path) {
  const std::string size = std::to_string(dns.cache_size) + " entries";
  if (bpf_pin_path.empty())
    return {in_process(dns), "DNS cache: in-process LRU of " + size + " (no bpf_pin_path)"};
  auto map = bpf::DnsCacheMap::open(bpf_pin_path, dns.cache_size);
  if (!map) {
    return {in_process(dns),
            "DNS cache: in-process LRU of " + size + " (pinned map unavailable: " + map.error().message() + ")"};
  }
  std::string note = "DNS cache: pinned eBPF LRU map " + bpf_pin_path + "/" + "dns_cache" + " of " + size +
                     (map->reused_pin() ? " (reused, answers kept)" : " (created)");
  return {std::make_unique<PinnedDnsCache>(dns, std::move(*map)), std::move(note)};
}

tl::expected<std::unique_ptr<DnsCache>, Error> DnsCache::pinned(const config::Dns& dns,
                                                                const std::string& bpf_pin_path) {
  auto map = bpf::DnsCacheMap::open(bpf_pin_path, dns.cache_size);
  if (!map) return tl::unexpected(map.error());
  return std::make_unique<PinnedDnsCache>(dns, std::move(*map));
}

std::unique_ptr<DnsCache> DnsCache::in_process(const config::Dns& dns) {
  return std::make_unique<InProcessDnsCache>(dns);
}

std::chrono::milliseconds DnsCache::clamp_ttl(std::chrono::seconds ttl) const {
  return std::max(min_ttl_, std::min<std::chrono::milliseconds>(ttl, max_ttl_));
}

std::optional<CachedAnswer> DnsCache::lookup(std::string_view name, CacheClock::time_point now) {
  const std::optional<std::string> key = bpf::dns_cache_key_name(name);
  if (!key) return std::nullopt;
  auto found = find(*key, now);
  if (!found) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  return std::move(*found);
}

void DnsCache::store(std::string_view name, std::span<const IpAddress> addresses,
                     std::chrono::seconds ttl, CacheClock::time_point now) {
  write(name, addresses.first(std::min(addresses.size(), kMaxAddresses)), now + clamp_ttl(ttl), false);
}

void DnsCache::store_negative(std::string_view name, CacheClock::time_point now) {
  write(name, {}, now + negative_ttl_, true);
}

void DnsCache::write(std::string_view name, std::span<const IpAddress> addresses,
                     CacheClock::time_point expires, bool negative) {
  const std::optional<std::string> key = bpf::dns_cache_key_name(name);
  if (!key) return;
  if (!put(*key, addresses, expires, negative)) errors_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace snisplice::resolve
