#include "flow/connect/backend_pool.h"

#include <algorithm>

namespace snisplice::connect {
namespace {

// Fixed hashes (not std::hash) so every worker and every restart agrees on source_hash choices.
uint64_t fnv1a(const uint8_t* data, size_t size, uint64_t hash = 0xcbf29ce484222325ull) {
  for (size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * 0x100000001b3ull;
  return hash;
}

// splitmix64's finaliser: spreads FNV's weak low bits so rendezvous weights are well mixed.
uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t server_seed(const SocketAddress& address) {
  IpAddress ip = address.ip.unmapped();
  uint8_t bytes[19];
  bytes[0] = static_cast<uint8_t>(ip.family);
  std::copy_n(ip.bytes.begin(), 16, bytes + 1);
  bytes[17] = static_cast<uint8_t>(address.port >> 8);
  bytes[18] = static_cast<uint8_t>(address.port & 0xff);
  return mix(fnv1a(bytes, sizeof bytes));
}

// IPv6 clients are keyed by their /64: one subscriber's addresses (privacy extensions) stay together.
uint64_t client_key(const IpAddress& client) {
  IpAddress ip = client.unmapped();
  uint8_t bytes[9];
  bytes[0] = static_cast<uint8_t>(ip.family);
  size_t length = ip.is_v4() ? 4 : 8;
  std::copy_n(ip.bytes.begin(), length, bytes + 1);
  return fnv1a(bytes, 1 + length);
}

}  // namespace

BackendPool::BackendPool(std::vector<SocketAddress> servers, config::Balance balance, PassiveHealth passive)
    : balance_(balance), passive_(passive) {
  servers_.reserve(servers.size());
  for (auto& address : servers) servers_.push_back(Server{address, server_seed(address)});
}

bool BackendPool::is_up(size_t index, TimePoint now) const {
  const Server& s = servers_[index];
  return s.probe_up && now >= s.down_until;
}

std::vector<size_t> BackendPool::rotation(TimePoint now) const {
  std::vector<size_t> order;
  size_t n = servers_.size();
  order.reserve(n);
  for (size_t step = 0; step < n; ++step) {
    size_t index = (cursor_ + step) % n;
    if (is_up(index, now)) order.push_back(index);
  }
  if (order.empty())
    for (size_t step = 0; step < n; ++step) order.push_back((cursor_ + step) % n);
  return order;
}

std::vector<size_t> BackendPool::candidates(const IpAddress& client, TimePoint now) {
  if (servers_.empty()) return {};
  std::vector<size_t> order = rotation(now);
  switch (balance_) {
    case config::Balance::round_robin:
      break;
    case config::Balance::least_conn:
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return servers_[a].active < servers_[b].active; });
      break;
    case config::Balance::source_hash: {
      uint64_t key = client_key(client);
      auto weight = [&](size_t index) { return mix(key ^ servers_[index].hash_seed); };
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        uint64_t wa = weight(a), wb = weight(b);
        return wa != wb ? wa > wb : a < b;
      });
      return order;  // the rotation cursor is not this balancer's state
    }
  }
  cursor_ = (order.front() + 1) % servers_.size();
  return order;
}

void BackendPool::on_connect_start(size_t index) {
  if (index < servers_.size()) ++servers_[index].active;
}

void BackendPool::on_connection_end(size_t index) {
  if (index < servers_.size() && servers_[index].active > 0) --servers_[index].active;
}

void BackendPool::set_health(size_t index, bool up) {
  if (index >= servers_.size()) return;
  Server& s = servers_[index];
  s.probe_up = up;
  if (up) {
    s.consecutive_failures = 0;
    s.down_until = TimePoint{};
  }
}

void BackendPool::report_failure(size_t index, TimePoint now) {
  if (index >= servers_.size() || passive_.max_fails == 0) return;
  Server& s = servers_[index];
  if (++s.consecutive_failures < passive_.max_fails) return;
  // Out for the window; afterwards it gets connections again and a fresh count of failures.
  s.consecutive_failures = 0;
  s.down_until = now + passive_.fail_timeout;
}

void BackendPool::report_success(size_t index) {
  if (index >= servers_.size()) return;
  servers_[index].consecutive_failures = 0;
  servers_[index].down_until = TimePoint{};
}

}  // namespace snisplice::connect
