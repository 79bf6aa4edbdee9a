#pragma once
// One backend's servers: which to try for a new connection, in order, and the health state that
// decides it. Pure state: the time is passed in, nothing here connects or probes. One pool per
// worker (not thread-safe), so least_conn counts the worker's own connections, like nginx
// upstreams without a shared zone.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/net_address.h"
#include "config/config.h"

namespace snisplice::connect {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Passive health from real connection attempts, after nginx's max_fails / fail_timeout:
// `max_fails` consecutive failures take a server out for `fail_timeout`; 0 disables it.
struct PassiveHealth {
  uint32_t max_fails = 1;
  std::chrono::milliseconds fail_timeout = std::chrono::seconds(10);
};

class BackendPool {
 public:
  BackendPool(std::vector<SocketAddress> servers, config::Balance balance, PassiveHealth passive = {});

  // Server indices in the order to try: the balancer's choice, then the failover order. Servers
  // that are down are left out; when every server is down all are returned (in the same
  // balancer order), because trying a server that may have recovered beats refusing the client
  // outright, and the caller's connect timeout bounds the cost.
  //  round_robin: rotates over the servers that are up; failover continues the rotation.
  //  least_conn:  fewest active connections first; ties rotate like round_robin.
  //  source_hash: rendezvous (highest random weight) hashing of the client address (IPv4 whole,
  //               IPv6 by its /64; IPv4-mapped counts as IPv4) with each server's address, so a
  //               client keeps its server across restarts and workers, and when a server goes
  //               down only its own clients move, each to its next-highest server.
  std::vector<size_t> candidates(const IpAddress& client, TimePoint now);

  // least_conn bookkeeping: call start when a connect to the server begins and end when that
  // connection closes or the attempt fails.
  void on_connect_start(size_t index);
  void on_connection_end(size_t index);

  // Active TCP probe result. A success also clears passive failures: the server accepts again.
  void set_health(size_t index, bool up);
  // Passive: the outcome of a real connection attempt.
  void report_failure(size_t index, TimePoint now);
  void report_success(size_t index);

  bool is_up(size_t index, TimePoint now) const;
  size_t size() const { return servers_.size(); }
  const SocketAddress& server(size_t index) const { return servers_[index].address; }
  uint32_t active(size_t index) const { return servers_[index].active; }

 private:
  struct Server {
    SocketAddress address;
    uint64_t hash_seed = 0;  // rendezvous weight input, from the address
    uint32_t active = 0;
    bool probe_up = true;
    uint32_t consecutive_failures = 0;
    TimePoint down_until{};
  };

  // Indices in rotation order starting at the cursor, only those up (or all when none is).
  std::vector<size_t> rotation(TimePoint now) const;

  std::vector<Server> servers_;
  config::Balance balance_;
  PassiveHealth passive_;
  size_t cursor_ = 0;  // round_robin / least_conn rotation
};

}  // namespace snisplice::connect
