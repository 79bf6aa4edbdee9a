#include "bpf/dns_cache_map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bpf/pin_dir.h"
#include "dns_cache.skel.h"
#include "dns_cache_abi.h"

namespace snisplice::bpf {
namespace {

// libbpf returns negative errnos, the bpf syscall wrappers set errno.
Error failure(std::string context, int err) {
  return Error::from_errno(std::move(context), err < 0 ? -err : err);
}

static_assert(DnsCacheMap::kMaxAddresses == DNS_CACHE_MAX_ADDRESSES);

}  // namespace

BootClock::time_point BootClock::now() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

std::optional<std::string> dns_cache_key_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() >= DNS_CACHE_NAME_SIZE) return std::nullopt;
  std::string key(name);
  for (char& c : key)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  if (key.find('\0') != std::string::npos) return std::nullopt;
  return key;
}

void DnsCacheMap::SkeletonDeleter::operator()(::dns_cache* skeleton) const {
  dns_cache__destroy(skeleton);
}

DnsCacheMap::DnsCacheMap(std::unique_ptr<::dns_cache, SkeletonDeleter> skeleton, bool reused_pin,
                         uint32_t max_entries)
    : skeleton_(std::move(skeleton)),
      reused_pin_(reused_pin),
      max_entries_(max_entries),
      next_sequence_(std::make_unique<std::atomic<uint64_t>>(
          static_cast<uint64_t>(BootClock::now().time_since_epoch().count()))) {}
DnsCacheMap::DnsCacheMap(DnsCacheMap&&) noexcept = default;
DnsCacheMap& DnsCacheMap::operator=(DnsCacheMap&&) noexcept = default;
DnsCacheMap::~DnsCacheMap() = default;

int DnsCacheMap::map_fd() const { return bpf_map__fd(skeleton_->maps.dns_cache); }

size_t DnsCacheMap::entries() const {
  dns_cache_key key{};
  dns_cache_key next{};
  size_t count = 0;
  for (const void* at = nullptr; ::bpf_map_get_next_key(map_fd(), at, &next) == 0; at = &key) {
    key = next;
    ++count;
  }
  return count;
}

tl::expected<DnsCacheMap, Error> DnsCacheMap::open(const std::string& pin_path,
                                                         uint32_t max_entries) {
  if (max_entries == 0) return tl::unexpected(Error{"dns cache size must be at least 1"});
  if (auto dir = ensure_pin_dir(pin_path); !dir) return tl::unexpected(dir.error());

  std::unique_ptr<::dns_cache, SkeletonDeleter> skeleton(dns_cache__open());
  if (!skeleton) return tl::unexpected(failure("opening the DNS cache object", errno));
  bpf_map* map = skeleton->maps.dns_cache;
  if (const int err = bpf_map__set_max_entries(map, max_entries); err != 0)
    return tl::unexpected(failure("sizing the DNS cache", err));

  const std::string file = pin_path + "/" + DNS_CACHE_MAP_NAME;
  bpf_map_info wanted{};
  wanted.type = bpf_map__type(map);
  wanted.key_size = bpf_map__key_size(map);
  wanted.value_size = bpf_map__value_size(map);
  wanted.max_entries = max_entries;
  wanted.map_flags = bpf_map__map_flags(map);
  auto removed = remove_incompatible_pin(file, wanted);
  if (!removed) return tl::unexpected(removed.error());
  const bool reused = ::access(file.c_str(), F_OK) == 0;

  if (const int err = bpf_map__set_pin_path(map, file.c_str()); err != 0)
    return tl::unexpected(failure("pinning " + file, err));
  if (const int err = dns_cache__load(skeleton.get()); err != 0)
    return tl::unexpected(failure("creating the DNS cache pinned at " + file, err));
  return DnsCacheMap(std::move(skeleton), reused, max_entries);
}

tl::expected<std::optional<DnsCacheEntry>, Error> DnsCacheMap::lookup(
    std::string_view name, BootClock::time_point now) const {
  const std::optional<std::string> key_name = dns_cache_key_name(name);
  if (!key_name) return std::nullopt;
  dns_cache_key key{};
  std::memcpy(key.name, key_name->data(), key_name->size());
  dns_cache_value value{};
  if (::bpf_map_lookup_elem(map_fd(), &key, &value) != 0) {
    if (errno == ENOENT) return std::nullopt;
    return tl::unexpected(failure("dns cache lookup of " + *key_name, errno));
  }
  const BootClock::time_point expires{BootClock::duration(value.expires_boot_ns)};
  if (now >= expires) return std::nullopt;

  DnsCacheEntry entry;
  entry.expires = expires;
  entry.negative = (value.flags & DNS_CACHE_FLAG_NEGATIVE) != 0;
  entry.sequence = value.sequence;
  const unsigned count = std::min<unsigned>(value.count, DNS_CACHE_MAX_ADDRESSES);
  for (unsigned i = 0; i < count && !entry.negative; ++i) {
    const dns_cache_address& stored = value.addresses[i];
    IpAddress address;
    if (stored.family == DNS_CACHE_IPV4) {
      address.family = IpAddress::Family::v4;
      std::memcpy(address.bytes.data(), stored.addr, 4);
    } else if (stored.family == DNS_CACHE_IPV6) {
      address.family = IpAddress::Family::v6;
      std::memcpy(address.bytes.data(), stored.addr, 16);
    } else {
      continue;  // written by hand with bpftool: skip what is not an address
    }
    entry.addresses.push_back(address);
  }
  return entry;
}

tl::expected<void, Error> DnsCacheMap::store(std::string_view name,
                                                   std::span<const IpAddress> addresses,
                                                   BootClock::time_point expiry) {
  return write(name, addresses, expiry, false);
}

tl::expected<void, Error> DnsCacheMap::store_negative(std::string_view name,
                                                            BootClock::time_point expiry) {
  return write(name, {}, expiry, true);
}

tl::expected<void, Error> DnsCacheMap::write(std::string_view name,
                                                   std::span<const IpAddress> addresses,
                                                   BootClock::time_point expiry, bool negative) {
  const std::optional<std::string> key_name = dns_cache_key_name(name);
  if (!key_name) return tl::unexpected(Error{"not a cacheable host name: \"" + std::string(name) + "\""});
  dns_cache_key key{};
  std::memcpy(key.name, key_name->data(), key_name->size());

  dns_cache_value value{};
  value.expires_boot_ns = static_cast<__u64>(std::max<BootClock::rep>(0, expiry.time_since_epoch().count()));
  value.sequence = next_sequence_->fetch_add(1, std::memory_order_relaxed);
  value.flags = negative ? DNS_CACHE_FLAG_NEGATIVE : 0;
  const size_t count = negative ? 0 : std::min(addresses.size(), kMaxAddresses);
  value.count = static_cast<__u32>(count);
  for (size_t i = 0; i < count; ++i) {
    dns_cache_address& slot = value.addresses[i];
    slot.family = addresses[i].is_v4() ? DNS_CACHE_IPV4 : DNS_CACHE_IPV6;
    std::memcpy(slot.addr, addresses[i].bytes.data(), addresses[i].size());
  }
  // A whole-value replace: lookups see the old or the new answer, never a mix.
  if (::bpf_map_update_elem(map_fd(), &key, &value, BPF_ANY) != 0)
    return tl::unexpected(failure("dns cache store of " + *key_name, errno));
  return {};
}

}  // namespace snisplice::bpf
