#include "flow/resolve/resolver.h"

#include <ares.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>
#include <utility>

namespace snisplice::resolve {
namespace {

// c-ares 1.18 wants ares_library_init once per process before any channel; the magic static
// makes that once and thread-safe when workers create their Resolvers together.
int library_status() {
  static const int status = ::ares_library_init(ARES_LIB_INIT_ALL);
  return status;
}

// c-ares reports its own status codes, not errno: its reason goes into the context.
Error ares_failure(const char* what, int status) {
  return Error{std::string(what) + ": " + ::ares_strerror(status)};
}

std::optional<IpAddress> literal(std::string_view name) {
  // An HTTP Host header writes IPv6 in brackets; "[1.2.3.4]" is no literal.
  const bool bracketed = name.size() >= 2 && name.front() == '[' && name.back() == ']';
  if (bracketed) name = name.substr(1, name.size() - 2);
  const std::optional<IpAddress> address = IpAddress::parse(name);
  if (!address || (bracketed && address->is_v4())) return std::nullopt;
  return address->unmapped();
}

// Builds the answer for a finished ares_getaddrinfo and the TTL to cache it for: the smallest of
// the address and CNAME TTLs.
std::pair<Answer, std::chrono::seconds> to_answer(int status, const ares_addrinfo* result) {
  Answer answer;
  switch (status) {
    case ARES_SUCCESS:
      break;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
      answer.status = Answer::Status::not_found;
      return {answer, {}};
    case ARES_ETIMEOUT:
      answer.status = Answer::Status::timed_out;
      return {answer, {}};
    default:
      answer.status = Answer::Status::failed;
      return {answer, {}};
  }
  int ttl = INT_MAX;
  std::vector<IpAddress> v6;
  for (const ares_addrinfo_node* node = result ? result->nodes : nullptr; node; node = node->ai_next) {
    if (node->ai_family != AF_INET && node->ai_family != AF_INET6) continue;
    const IpAddress address = IpAddress::from_sockaddr(node->ai_addr).unmapped();
    std::vector<IpAddress>& family = address.is_v4() ? answer.addresses : v6;
    if (std::find(family.begin(), family.end(), address) != family.end()) continue;
    family.push_back(address);
    ttl = std::min(ttl, node->ai_ttl);
  }
  for (const ares_addrinfo_cname* cname = result ? result->cnames : nullptr; cname; cname = cname->next)
    ttl = std::min(ttl, cname->ttl);
  answer.addresses.insert(answer.addresses.end(), v6.begin(), v6.end());
  if (answer.addresses.empty()) {
    answer.status = Answer::Status::not_found;
    return {answer, {}};
  }
  if (answer.addresses.size() > DnsCache::kMaxAddresses) answer.addresses.resize(DnsCache::kMaxAddresses);
  answer.status = Answer::Status::ok;
  return {answer, std::chrono::seconds(std::max(ttl, 0))};
}

}  // namespace

std::string_view to_string(Answer::Status status) {
  switch (status) {
    case Answer::Status::ok: return "ok";
    case Answer::Status::not_found: return "not_found";
    case Answer::Status::failed: return "failed";
    case Answer::Status::timed_out: return "timed_out";
  }
  return "failed";
}

// What c-ares carries for one ares_getaddrinfo: enough to find the waiting callers again, and to
// tell an answer that arrives after its callers were answered `timed_out` (the id changed).
struct Resolver::QueryTag {
  Resolver* resolver;
  std::string key;
  uint64_t query_id;
};

Resolver::Resolver(DnsCache& cache, WatchFn watch, std::chrono::milliseconds give_up_after)
    : cache_(cache), watch_(std::move(watch)), give_up_after_(give_up_after) {}

tl::expected<std::unique_ptr<Resolver>, Error> Resolver::create(const config::Dns& dns, DnsCache& cache,
                                                                WatchFn watch) {
  if (!watch) return tl::unexpected(Error{"the resolver needs a WatchFn"});
  if (const int status = library_status(); status != ARES_SUCCESS)
    return tl::unexpected(ares_failure("initialising c-ares", status));
  const auto timeout = std::clamp<std::chrono::milliseconds::rep>(dns.timeout.count(), 1, INT_MAX / 64);
  const auto tries = std::clamp<uint32_t>(dns.tries, 1, 64);
  std::unique_ptr<Resolver> resolver(
      new Resolver(cache, std::move(watch), std::chrono::milliseconds(timeout * tries)));

  ares_options options{};
  options.timeout = static_cast<int>(timeout);
  options.tries = static_cast<int>(tries);
  options.sock_state_cb = &Resolver::on_sock_state;
  options.sock_state_cb_data = resolver.get();
  // No search domains, not even the host's own domain (c-ares' default without a search line):
  // a client's name is queried as it is, never as name.corp.example.
  options.domains = nullptr;
  options.ndomains = 0;
  const int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB | ARES_OPT_DOMAINS;
  if (const int status = ::ares_init_options(&resolver->channel_, &options, mask); status != ARES_SUCCESS)
    return tl::unexpected(ares_failure("creating the c-ares channel", status));

  if (!dns.servers.empty()) {
    std::vector<ares_addr_port_node> nodes(dns.servers.size());
    for (size_t i = 0; i < dns.servers.size(); ++i) {
      const SocketAddress& server = dns.servers[i];
      ares_addr_port_node& node = nodes[i];
      node.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
      node.family = server.ip.is_v4() ? AF_INET : AF_INET6;
      std::copy_n(server.ip.bytes.data(), server.ip.size(), reinterpret_cast<uint8_t*>(&node.addr));
      node.udp_port = server.port;
      node.tcp_port = server.port;
    }
    if (const int status = ::ares_set_servers_ports(resolver->channel_, nodes.data()); status != ARES_SUCCESS)
      return tl::unexpected(ares_failure("setting the DNS servers", status));
  }
  return resolver;
}

Resolver::~Resolver() {
  if (!channel_) return;
  destroying_ = true;
  // c-ares answers every query still running with ARES_EDESTRUCTION (finish() ignores those)
  // and closes its sockets; then every caller still waiting is told `failed`.
  ::ares_destroy(channel_);
  // A `done` that resolves again adds to ready_ (answered `failed` here too, as destroying_ is set).
  while (!ready_.empty() || !waiting_.empty()) {
    for (Ready& entry : std::exchange(ready_, {})) {
      if (entry.counted) ++counters_.failed;
      entry.done(Answer{Answer::Status::failed, {}, false});
    }
    for (auto& [key, entry] : std::exchange(waiting_, {}))
      for (Callback& done : entry.callers) {
        ++counters_.failed;
        done(Answer{Answer::Status::failed, {}, false});
      }
  }
}

void Resolver::on_sock_state(void* data, int fd, int readable, int writable) {
  static_cast<Resolver*>(data)->watch_(fd, readable != 0, writable != 0);
}

void Resolver::resolve(std::string_view name, Callback done) {
  if (auto address = literal(name)) {
    ready_.push_back(Ready{std::move(done), Answer{Answer::Status::ok, {*address}, false}, nullptr});
    return;
  }
  const std::optional<std::string> key = bpf::dns_cache_key_name(name);
  // c-ares reads an all-digit dotted name as an address by its own rules ("0177.0.0.1" as
  // 177.0.0.1, "127.000.000.001" as 127.0.0.1), unlike browsers and inet_aton: a name ending in
  // a number that is no strict literal is not looked up at all.
  if (!key || destroying_ || ends_in_a_number(name)) {
    ready_.push_back(Ready{std::move(done), Answer{Answer::Status::failed, {}, false}, &ResolverCounters::failed});
    return;
  }
  if (auto cached = cache_.lookup(*key, CacheClock::now())) {
    Answer answer{cached->negative ? Answer::Status::not_found : Answer::Status::ok,
                  std::move(cached->addresses), true};
    ready_.push_back(Ready{std::move(done), std::move(answer), &ResolverCounters::cache_hits});
    return;
  }
  if (auto it = waiting_.find(*key); it != waiting_.end()) {
    it->second.callers.push_back(std::move(done));
    return;
  }

  const uint64_t query_id = next_query_id_++;
  Waiting& entry = waiting_[*key];
  entry.query_id = query_id;
  entry.callers.push_back(std::move(done));
  entry.deadline = deadlines_.emplace(SteadyClock::now() + give_up_after_, *key);
  ++counters_.queries;

  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  // No sorting: c-ares 1.18 would connect() a UDP socket to every address to rank them.
  hints.ai_flags = ARES_AI_NOSORT;
  // The callback may run before ares_getaddrinfo returns (answers from /etc/hosts); finish()
  // only records it, and the loop's next on_timeout() answers the callers.
  ::ares_getaddrinfo(channel_, key->c_str(), nullptr, &hints, &Resolver::on_addrinfo,
                     new QueryTag{this, *key, query_id});
}

void Resolver::on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  std::unique_ptr<QueryTag> tag(static_cast<QueryTag*>(arg));
  tag->resolver->finish(tag->key, tag->query_id, status, result);
  if (result) ::ares_freeaddrinfo(result);
}

void Resolver::finish(const std::string& key, uint64_t query_id, int status, const ares_addrinfo* result) {
  if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) return;  // ~Resolver answers
  const auto it = waiting_.find(key);
  if (it == waiting_.end() || it->second.query_id != query_id) return;  // answered timed_out already
  auto [answer, ttl] = to_answer(status, result);
  const CacheClock::time_point now = CacheClock::now();
  if (answer.status == Answer::Status::ok)
    cache_.store(key, answer.addresses, ttl, now);
  else if (status != ARES_ENOMEM)  // out of memory says nothing about the name
    cache_.store_negative(key, now);
  finished_.push_back(Finished{key, query_id, std::move(answer)});
}

void Resolver::expire_overdue() {
  const SteadyClock::time_point now = SteadyClock::now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const std::string key = deadlines_.begin()->second;
    const auto it = waiting_.find(key);
    if (it == waiting_.end()) {  // answered already (deliver_finished erases its deadline)
      deadlines_.erase(deadlines_.begin());
      continue;
    }
    // c-ares keeps retrying until its own, later, give-up time; its answer is then ignored.
    cache_.store_negative(key, CacheClock::now());
    finished_.push_back(Finished{key, it->second.query_id, Answer{Answer::Status::timed_out, {}, false}});
    // Detach the deadline now so it is not expired twice; deliver_finished() finds none.
    it->second.deadline = deadlines_.end();
    deadlines_.erase(deadlines_.begin());
  }
}

void Resolver::deliver_finished() {
  // A `done` that resolves a name from /etc/hosts adds to finished_ while this runs.
  while (!finished_.empty()) {
    std::vector<Finished> batch = std::exchange(finished_, {});
    for (Finished& done : batch) {
      const auto it = waiting_.find(done.key);
      if (it == waiting_.end() || it->second.query_id != done.query_id) continue;
      if (it->second.deadline != deadlines_.end()) deadlines_.erase(it->second.deadline);
      std::vector<Callback> callers = std::move(it->second.callers);
      waiting_.erase(it);
      for (Callback& caller : callers) {
        if (done.answer.status == Answer::Status::ok)
          ++counters_.resolved;
        else
          ++counters_.failed;
        caller(done.answer);
      }
    }
  }
}

void Resolver::deliver_ready() {
  // A `done` that resolves again adds to ready_ while this runs; that answer goes out too.
  while (!ready_.empty()) {
    std::vector<Ready> batch = std::exchange(ready_, {});
    for (Ready& entry : batch) {
      if (entry.counted) ++(counters_.*entry.counted);
      entry.done(entry.answer);
    }
  }
}

void Resolver::on_fd_ready(int fd, bool readable, bool writable) {
  ::ares_process_fd(channel_, readable ? fd : ARES_SOCKET_BAD, writable ? fd : ARES_SOCKET_BAD);
  deliver_finished();
  deliver_ready();
}

void Resolver::on_timeout() {
  ::ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  expire_overdue();
  deliver_finished();
  deliver_ready();
}

std::optional<std::chrono::milliseconds> Resolver::next_timeout() const {
  if (!ready_.empty() || !finished_.empty()) return std::chrono::milliseconds(0);
  std::optional<std::chrono::milliseconds> next;
  timeval tv{};
  if (::ares_timeout(channel_, nullptr, &tv) != nullptr) {
    // c-ares 1.18 truncates to whole milliseconds, so it says 0 while its timer is still up to
    // 1 ms away and on_timeout() would find nothing due: at least 1 ms keeps the loop from
    // spinning through that millisecond.
    const auto usec = std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
    next = std::max(std::chrono::ceil<std::chrono::milliseconds>(usec), std::chrono::milliseconds(1));
  }
  if (!deadlines_.empty()) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadlines_.begin()->first - SteadyClock::now());
    const auto until = std::max(left, std::chrono::milliseconds(0));
    if (!next || until < *next) next = until;
  }
  return next;
}

}  // namespace snisplice::resolve
