#pragma once
// Resolves the host names of `resolve:` routes for one worker thread, with c-ares driven by
// the worker's own event loop (no threads, no io_uring in here: the loop polls the fds named
// through WatchFn and calls back). Answers are shared through the DnsCache; at most one query
// per name is in flight per Resolver, however many connections wait for it.
//
// When callbacks run (the `done` passed to resolve()), always on the worker's thread:
//  - inside resolve(), before it returns: IP literals, cache hits (positive or negative),
//    names that cannot be looked up, and names c-ares answers from /etc/hosts (those, when
//    resolve() is itself called from a `done`, right after that `done` returns);
//  - inside on_fd_ready() or on_timeout(): answers and failures of queries, after c-ares has
//    returned (never inside a c-ares callback, so a `done` may call resolve() again);
//  - inside ~Resolver(): every caller still waiting gets `failed`.
// Callbacks of one finished query run one after the other in the order resolve() was called.
// A `done` may call resolve() on this Resolver (except during ~Resolver, where resolve() answers
// `failed` at once). It must not destroy the Resolver: post the destruction to after it returns.
//
// WatchFn runs inside resolve(), on_fd_ready(), on_timeout() and ~Resolver() (c-ares
// opening and closing its UDP/TCP sockets). It must only record the interest, never call back
// into the Resolver.
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
  static tl::expected<std::unique_ptr<Resolver>, std::string> create(const config::Dns& dns,
                                                                     DnsCache& cache, WatchFn watch);
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;
  ~Resolver();

  // Resolves `name` (any case, one trailing dot ignored; "[v6]" and bare IP literals answer
  // themselves) to its A and AAAA addresses and calls `done` once (see above for when). A name
  // that ends in a number but is no strict IPv4 literal ("127.1", "0177.0.0.1") fails at once.
  void resolve(std::string_view name, Callback done);

  // The loop saw `fd` (one WatchFn announced) ready. Pass readable=true on POLLERR/POLLHUP too,
  // so c-ares reads the error and retries or fails the query.
  void on_fd_ready(int fd, bool readable, bool writable);
  // How long the loop may wait before calling on_timeout(), rounded up to whole milliseconds;
  // nullopt when nothing is pending.
  std::optional<std::chrono::milliseconds> next_timeout() const;
  // Retries and expires queries whose time has come. Harmless when called early.
  void on_timeout();

  // Names with callers waiting for a query.
  size_t in_flight() const { return waiting_.size(); }
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
  struct QueryTag;

  Resolver(DnsCache& cache, WatchFn watch, std::chrono::milliseconds give_up_after);
  static void on_sock_state(void* data, int fd, int readable, int writable);
  static void on_addrinfo(void* arg, int status, int timeouts, ares_addrinfo* result);
  void finish(const std::string& key, uint64_t query_id, int status, const ares_addrinfo* result);
  void expire_overdue();
  void deliver_finished();

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
  bool delivering_ = false;
  bool destroying_ = false;
  ResolverCounters counters_;
};

}  // namespace snisplice::resolve
