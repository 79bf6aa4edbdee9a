#pragma once
// Resolves the host names of `resolve:` routes for one worker thread, with c-ares driven by
// the worker's own event loop (no threads, no io_uring in here: the loop polls the fds named
// through WatchFn and calls back). Answers are shared through the DnsCache; at most one query
// per name is in flight per Resolver, however many connections wait for it.
//
// A `done` never runs inside resolve(): answers known at once (IP literals, cache hits, names
// that cannot be looked up, names c-ares answers from /etc/hosts) are queued, next_timeout()
// then says 0, and the loop's next on_timeout() or on_fd_ready() delivers them, after c-ares has
// returned. So a `done` may call resolve() again; it must not destroy the Resolver nor call
// on_fd_ready() / on_timeout(). ~Resolver() answers every caller not yet answered `failed`.
// Callers that share a query are answered in the order resolve() was called. WatchFn only records the
// interest (c-ares opening and closing its sockets), never calls back into the Resolver.
//
// Not thread-safe: one Resolver per worker thread. Reloading resolv.conf = create a new Resolver
// and destroy the old one (its waiting callers get `failed`).
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <tl/expected.hpp>

#include "base/error.h"
#include "base/net_address.h"
#include "config/config.h"
#include "flow/resolve/dns_cache.h"

struct ares_channeldata;    // c-ares' channel, kept out of this header
struct ares_addrinfo;

namespace snisplice::resolve {

struct Answer {
  enum class Status {
    ok,         // addresses holds at least one address
    not_found,  // NXDOMAIN or no A/AAAA records; also every cached negative answer
    failed,     // SERVFAIL, REFUSED, unreachable server, a name that cannot be queried, shutdown
    timed_out,  // no answer within dns.timeout x dns.tries
  };
  Status status = Status::failed;
  // IPv4 addresses first, then IPv6, each family in the order the server gave them; no
  // duplicates; IPv4-mapped IPv6 answers given as IPv4; at most DnsCache::kMaxAddresses.
  std::vector<IpAddress> addresses;
  bool from_cache = false;
};

std::string_view to_string(Answer::Status status);

// Per Resolver, only ever increasing; read by the worker for
// snisplice_dns_lookups_total{result}. Every resolve() of a name (not of an IP literal) adds
// one to exactly one of cache_hits / resolved / failed when its callback runs.
struct ResolverCounters {
  uint64_t cache_hits = 0;  // answered from the cache (positive or negative)
  uint64_t resolved = 0;    // answered `ok` by a query
  uint64_t failed = 0;      // not_found, failed or timed_out from a query
  uint64_t queries = 0;     // ares_getaddrinfo calls (each sends an A and an AAAA query)
};

class Resolver {
 public:
  // Called when c-ares wants `fd` watched for reading and/or writing, or (both false) no
  // longer watched, e.g. because it closed it.
  using WatchFn = std::function<void(int fd, bool read, bool write)>;
  using Callback = std::function<void(const Answer&)>;

  // Servers from dns.servers, or /etc/resolv.conf when that list is empty; search domains
  // never apply (the name a client asked for is queried as it is). `cache` must outlive the
  // Resolver.
  // The error says which c-ares call failed and c-ares' reason (no errno: c-ares has its own codes).
  static tl::expected<std::unique_ptr<Resolver>, Error> create(const config::Dns& dns, DnsCache& cache,
                                                               WatchFn watch);
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;
  ~Resolver();

  // Resolves `name` (any case, one trailing dot ignored; "[v6]" and bare IP literals answer
  // themselves) to its A and AAAA addresses and calls `done` once, from the loop. A name
  // that ends in a number but is no strict IPv4 literal ("127.1", "0177.0.0.1") fails at once.
  void resolve(std::string_view name, Callback done);

  // The loop saw `fd` (one WatchFn announced) ready. Pass readable=true on POLLERR/POLLHUP too,
  // so c-ares reads the error and retries or fails the query.
  void on_fd_ready(int fd, bool readable, bool writable);
  // How long the loop may wait before calling on_timeout(), rounded up to whole milliseconds:
  // 0 while answers wait to be delivered, nullopt when nothing is pending.
  std::optional<std::chrono::milliseconds> next_timeout() const;
  // Retries and expires queries whose time has come and delivers the answers waiting.
  // Harmless when called early.
  void on_timeout();

  // Names with callers waiting for a query, plus answers waiting to be delivered: a retired
  // Resolver is destroyed once this is 0.
  size_t in_flight() const { return waiting_.size() + ready_.size(); }
  const ResolverCounters& counters() const { return counters_; }

 private:
  using SteadyClock = std::chrono::steady_clock;
  struct Waiting {
    uint64_t query_id = 0;
    std::vector<Callback> callers;
    std::multimap<SteadyClock::time_point, std::string>::iterator deadline;
  };
  struct Finished {
    std::string key;
    uint64_t query_id = 0;
    Answer answer;
  };
  // An answer known without a query, delivered by the loop; `counted` names the counter it
  // adds to when delivered (none for IP literals).
  struct Ready {
    Callback done;
    Answer answer;
    uint64_t ResolverCounters::*counted = nullptr;
  };
  struct QueryTag;

  Resolver(DnsCache& cache, WatchFn watch, std::chrono::milliseconds give_up_after);
  static void on_sock_state(void* data, int fd, int readable, int writable);
  static void on_addrinfo(void* arg, int status, int timeouts, ares_addrinfo* result);
  void finish(const std::string& key, uint64_t query_id, int status, const ares_addrinfo* result);
  void expire_overdue();
  void deliver_finished();
  void deliver_ready();

  DnsCache& cache_;
  WatchFn watch_;
  ares_channeldata* channel_ = nullptr;
  // dns.timeout x dns.tries: c-ares doubles the timeout on each round of retries, so its own
  // give-up time is later (3 x timeout for 2 tries); callers are answered at this one.
  std::chrono::milliseconds give_up_after_;
  uint64_t next_query_id_ = 1;
  std::unordered_map<std::string, Waiting> waiting_;  // by cache key
  std::multimap<SteadyClock::time_point, std::string> deadlines_;
  std::vector<Finished> finished_;  // filled by c-ares callbacks, delivered after they return
  std::vector<Ready> ready_;        // filled by resolve(), delivered by the loop
  bool destroying_ = false;
  ResolverCounters counters_;
};

}  // namespace snisplice::resolve
