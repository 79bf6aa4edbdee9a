// Resolver against a real DNS server on loopback (tests/support/dns_server.py, one per test
// case), driven by a plain poll() loop through WatchFn / next_timeout() / on_timeout(), the way
// a worker's ring drives it. Queries are counted from the server's query log.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "address_literal.h"
#include "flow/resolve/dns_cache.h"
#include "flow/resolve/resolver.h"
#include "temp_pin_dir.h"

extern char** environ;

namespace {

using namespace std::chrono_literals;
using snisplice::IpAddress;
using snisplice::SocketAddress;
using snisplice::resolve::Answer;
using snisplice::resolve::CacheClock;
using snisplice::resolve::DnsCache;
using snisplice::resolve::Resolver;
using Status = Answer::Status;
using SteadyClock = std::chrono::steady_clock;

using snisplice::test::ip;

// The zone every test case serves (see dns_server.py for the format).
constexpr const char* kZone = R"({
  "default_ttl": 300,
  "names": {
    "v4.test":     [{"type": "A", "data": "127.0.0.2", "ttl": 60}],
    "v6.test":     [{"type": "AAAA", "data": "::1", "ttl": 60}],
    "dual.test":   [{"type": "AAAA", "data": "::1"}, {"type": "A", "data": "127.0.0.3"},
                    {"type": "A", "data": "127.0.0.4"}, {"type": "A", "data": "127.0.0.3"}],
    "mapped.test": [{"type": "AAAA", "data": "::ffff:127.0.0.5"}],
    "chain.test":  [{"type": "CNAME", "data": "middle.test", "ttl": 40}],
    "middle.test": [{"type": "CNAME", "data": "end.test", "ttl": 20}],
    "end.test":    [{"type": "A", "data": "127.0.0.6", "ttl": 100}],
    "dangling.test": [{"type": "CNAME", "data": "nowhere.test"}],
    "nodata.test": [{"type": "TXT", "data": "only text here"}],
    "short.test":  [{"type": "A", "data": "127.0.0.7", "ttl": 1}],
    "zero.test":   [{"type": "A", "data": "127.0.0.8", "ttl": 0}],
    "huge.test":   [{"type": "A", "data": "127.0.0.9", "ttl": 2000000}],
    "popular.test": {"delay_ms": 100, "records": [{"type": "A", "data": "127.0.0.10"}]},
    "broken.test": "servfail",
    "refused.test": "refused",
    "silent.test": "drop",
    "big.test": [
      {"type": "A", "data": "127.0.3.1"},  {"type": "A", "data": "127.0.3.2"},
      {"type": "A", "data": "127.0.3.3"},  {"type": "A", "data": "127.0.3.4"},
      {"type": "A", "data": "127.0.3.5"},  {"type": "A", "data": "127.0.3.6"},
      {"type": "A", "data": "127.0.3.7"},  {"type": "A", "data": "127.0.3.8"},
      {"type": "A", "data": "127.0.3.9"},  {"type": "A", "data": "127.0.3.10"},
      {"type": "A", "data": "127.0.3.11"}, {"type": "A", "data": "127.0.3.12"},
      {"type": "A", "data": "127.0.3.13"}, {"type": "A", "data": "127.0.3.14"},
      {"type": "A", "data": "127.0.3.15"}, {"type": "A", "data": "127.0.3.16"},
      {"type": "A", "data": "127.0.3.17"}, {"type": "A", "data": "127.0.3.18"},
      {"type": "A", "data": "127.0.3.19"}, {"type": "A", "data": "127.0.3.20"},
      {"type": "A", "data": "127.0.3.21"}, {"type": "A", "data": "127.0.3.22"},
      {"type": "A", "data": "127.0.3.23"}, {"type": "A", "data": "127.0.3.24"},
      {"type": "A", "data": "127.0.3.25"}, {"type": "A", "data": "127.0.3.26"},
      {"type": "A", "data": "127.0.3.27"}, {"type": "A", "data": "127.0.3.28"},
      {"type": "A", "data": "127.0.3.29"}, {"type": "A", "data": "127.0.3.30"},
      {"type": "A", "data": "127.0.3.31"}, {"type": "A", "data": "127.0.3.32"}]
  }
})";

// dns_server.py as a child process on an ephemeral loopback port, in a temporary directory
// holding its zone and query log. It exits with its stdin pipe, so it never outlives the test.
class DnsServer {
 public:
  DnsServer() {
    char dir[] = "/tmp/snisplice-resolver-test-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    dir_ = dir;
    { std::ofstream(dir_ + "/zone.json") << kZone; }
    int to_child[2];
    int from_child[2];
    REQUIRE(::pipe2(to_child, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(from_child, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
    ::posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
    const std::string zone = dir_ + "/zone.json";
    const std::string log = dir_ + "/queries.log";
    std::vector<std::string> args{"python3", SNISPLICE_DNS_SERVER_PY, "--zone", zone, "--log", log,
                                  "--exit-with-stdin"};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int spawned = ::posix_spawnp(&pid_, "python3", &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(to_child[0]);
    ::close(from_child[1]);
    stdin_ = to_child[1];
    REQUIRE(spawned == 0);

    // The first stdout line is the port, printed once every socket is bound.
    std::string line;
    const auto give_up = SteadyClock::now() + 10s;
    while (line.find('\n') == std::string::npos && SteadyClock::now() < give_up) {
      pollfd pfd{from_child[0], POLLIN, 0};
      if (::poll(&pfd, 1, 200) <= 0) continue;
      char buffer[64];
      const ssize_t n = ::read(from_child[0], buffer, sizeof buffer);
      if (n <= 0) break;
      line.append(buffer, static_cast<size_t>(n));
    }
    ::close(from_child[0]);
    REQUIRE_MESSAGE(line.find('\n') != std::string::npos, "dns_server.py printed no port");
    port_ = static_cast<uint16_t>(std::stoi(line));
  }
  ~DnsServer() {
    ::close(stdin_);
    ::kill(pid_, SIGTERM);
    // Bounded: a server that hangs on its way out must not hang the test.
    int status = 0;
    const auto give_up = SteadyClock::now() + 5s;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (SteadyClock::now() >= give_up) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  uint16_t port() const { return port_; }

  // Queries received for `name` of `type` ("A", "AAAA"; "" = any type).
  int queries(const std::string& name, const std::string& type = "") const {
    std::ifstream log(dir_ + "/queries.log");
    int count = 0;
    for (std::string transport, qtype, qname; log >> transport >> qtype >> qname;)
      if (qname == name && (type.empty() || qtype == type)) ++count;
    return count;
  }
  int queries_over(const std::string& transport_wanted) const {
    std::ifstream log(dir_ + "/queries.log");
    int count = 0;
    for (std::string transport, qtype, qname; log >> transport >> qtype >> qname;)
      if (transport == transport_wanted) ++count;
    return count;
  }
  int total_queries() const {
    std::ifstream log(dir_ + "/queries.log");
    int count = 0;
    for (std::string line; std::getline(log, line);) ++count;
    return count;
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int stdin_ = -1;
  uint16_t port_ = 0;
};

snisplice::config::Dns test_dns(uint16_t port) {
  snisplice::config::Dns dns;
  dns.servers = {SocketAddress{ip("127.0.0.1"), port}};
  dns.timeout = 300ms;
  dns.tries = 2;
  dns.min_ttl = 1s;
  dns.max_ttl = 300s;
  dns.negative_ttl = 5s;
  dns.cache_size = 1024;
  return dns;
}

// The worker's side: the fds c-ares asked for, polled; next_timeout() bounds each wait.
class PollLoop {
 public:
  Resolver::WatchFn watch() {
    return [this](int fd, bool read, bool write) {
      if (!read && !write)
        watched_.erase(fd);
      else
        watched_[fd] = static_cast<short>((read ? POLLIN : 0) | (write ? POLLOUT : 0));
    };
  }
  const std::map<int, short>& watched() const { return watched_; }

  // Runs until `done()` or `limit` passes; returns done(). Checks that next_timeout() never
  // makes the loop spin: at most one wake-up per millisecond of the run, plus a few.
  bool run(Resolver& resolver, const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    const auto started = SteadyClock::now();
    const auto give_up = started + limit;
    long wakeups = 0;
    while (!done() && SteadyClock::now() < give_up) {
      ++wakeups;
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(give_up - SteadyClock::now());
      if (auto next = resolver.next_timeout(); next && *next < wait) wait = *next;
      std::vector<pollfd> fds;
      for (auto [fd, events] : watched_) fds.push_back(pollfd{fd, events, 0});
      const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(wait.count(), 0)));
      REQUIRE(ready >= 0);
      if (ready == 0) {
        resolver.on_timeout();
        continue;
      }
      for (const pollfd& pfd : fds) {
        if (pfd.revents == 0 || !watched_.contains(pfd.fd)) continue;
        resolver.on_fd_ready(pfd.fd, (pfd.revents & (POLLIN | POLLERR | POLLHUP)) != 0,
                             (pfd.revents & POLLOUT) != 0);
      }
    }
    const auto ran = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started);
    CHECK(wakeups <= ran.count() / 5 + 20);
    return done();
  }

 private:
  std::map<int, short> watched_;
};

// One resolve() and its answer, recording whether it came before resolve() returned.
struct Outcome {
  std::optional<Answer> answer;
  bool synchronous = false;
  bool resolve_returned = false;
};

std::shared_ptr<Outcome> start(Resolver& resolver, std::string_view name) {
  auto outcome = std::make_shared<Outcome>();
  resolver.resolve(name, [outcome](const Answer& answer) {
    outcome->answer = answer;
    outcome->synchronous = !outcome->resolve_returned;
  });
  outcome->resolve_returned = true;
  return outcome;
}

// An answer known without a query: not given inside resolve(), but queued for the loop, which
// next_timeout() wakes at once; one on_timeout() delivers it.
std::shared_ptr<Outcome> start_known(Resolver& resolver, std::string_view name) {
  auto outcome = start(resolver, name);
  CHECK_FALSE(outcome->answer.has_value());
  CHECK(resolver.next_timeout() == 0ms);
  resolver.on_timeout();
  REQUIRE(outcome->answer.has_value());
  CHECK_FALSE(outcome->synchronous);
  return outcome;
}

struct Fixture {
  DnsServer server;
  snisplice::config::Dns dns = test_dns(server.port());
  std::unique_ptr<DnsCache> cache = DnsCache::in_process(dns);
  PollLoop loop;
  std::unique_ptr<Resolver> resolver = make_resolver();

  std::unique_ptr<Resolver> make_resolver() {
    auto created = Resolver::create(dns, *cache, loop.watch());
    REQUIRE_MESSAGE(created.has_value(), (created ? "" : created.error().message()));
    return std::move(*created);
  }
  // Resolves `name` through the loop and returns the answer.
  Answer resolve(std::string_view name, std::chrono::milliseconds limit = 5s) {
    auto outcome = start(*resolver, name);
    REQUIRE(loop.run(*resolver, [&] { return outcome->answer.has_value(); }, limit));
    return *outcome->answer;
  }
};

}  // namespace

TEST_CASE("IP literals answer at the loop's next turn, without a query") {
  Fixture f;
  for (const char* literal : {"127.0.0.9", "::1", "[::1]", "::ffff:127.0.0.1"}) {
    CAPTURE(literal);
    auto outcome = start_known(*f.resolver, literal);
    CHECK(outcome->answer->status == Status::ok);
    CHECK_FALSE(outcome->answer->from_cache);
    REQUIRE(outcome->answer->addresses.size() == 1);
  }
  CHECK(start_known(*f.resolver, "::ffff:127.0.0.1")->answer->addresses[0] == ip("127.0.0.1"));
  CHECK(f.resolver->in_flight() == 0);
  CHECK(f.resolver->next_timeout() == std::nullopt);
  std::this_thread::sleep_for(100ms);  // a stray query would have reached the log by now
  CHECK(f.server.total_queries() == 0);
  CHECK(f.resolver->counters().queries == 0);
}

TEST_CASE("non-strict IPv4 spellings are no literals and are never looked up") {
  // The hello parsers refuse these names before routing (hostile_names_test.cpp); this is the
  // layer below. c-ares 1.18 alone would answer "0177.0.0.1" with 177.0.0.1 and
  // "127.000.000.001" with 127.0.0.1 without asking any server.
  Fixture f;
  for (const char* spelling : {"127.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.000.000.001",
                               "127.000.000.001.", "1.2.3.4.5", "a.0x7F"}) {
    std::string text = spelling;
    CAPTURE(text);
    auto outcome = start_known(*f.resolver, spelling);
    CHECK(outcome->answer->status == Status::failed);
    CHECK(outcome->answer->addresses.empty());
  }
  std::this_thread::sleep_for(100ms);  // a stray query would have reached the log by now
  CHECK(f.server.total_queries() == 0);
  CHECK(f.resolver->counters().queries == 0);
}

TEST_CASE("A only, AAAA only, and both: IPv4 first, duplicates dropped, mapped IPv6 as IPv4") {
  Fixture f;
  Answer v4 = f.resolve("v4.test");
  CHECK(v4.status == Status::ok);
  CHECK_FALSE(v4.from_cache);
  CHECK(v4.addresses == std::vector<IpAddress>{ip("127.0.0.2")});

  CHECK(f.resolve("v6.test").addresses == std::vector<IpAddress>{ip("::1")});
  CHECK(f.resolve("dual.test").addresses ==
        std::vector<IpAddress>{ip("127.0.0.3"), ip("127.0.0.4"), ip("::1")});
  CHECK(f.resolve("mapped.test").addresses == std::vector<IpAddress>{ip("127.0.0.5")});
  // One A and one AAAA query per name.
  CHECK(f.server.queries("dual.test", "A") == 1);
  CHECK(f.server.queries("dual.test", "AAAA") == 1);
  CHECK(f.resolver->counters().resolved == 4);
  CHECK(f.resolver->counters().queries == 4);
}

TEST_CASE("a cached answer comes at the loop's next turn, for any case and trailing dot") {
  Fixture f;
  REQUIRE(f.resolve("v4.test").status == Status::ok);
  auto again = start(*f.resolver, "V4.Test.");
  CHECK(f.resolver->in_flight() == 1);  // queued: a retired Resolver is kept until it is given
  CHECK(f.resolver->counters().cache_hits == 0);  // counted when the callback runs
  f.resolver->on_timeout();
  REQUIRE(again->answer.has_value());
  CHECK_FALSE(again->synchronous);
  CHECK(f.resolver->in_flight() == 0);
  CHECK(again->answer->from_cache);
  CHECK(again->answer->addresses == std::vector<IpAddress>{ip("127.0.0.2")});
  CHECK(f.server.queries("v4.test") == 2);  // A + AAAA, once
  CHECK(f.resolver->counters().cache_hits == 1);
}

TEST_CASE("a CNAME chain resolves and is cached for the smallest TTL along it") {
  Fixture f;
  const auto before = CacheClock::now();
  Answer answer = f.resolve("chain.test");
  const auto after = CacheClock::now();
  REQUIRE(answer.status == Status::ok);
  CHECK(answer.addresses == std::vector<IpAddress>{ip("127.0.0.6")});
  auto cached = f.cache->lookup("chain.test", after);
  REQUIRE(cached.has_value());
  CHECK(cached->expires >= before + 20s);  // middle.test's CNAME TTL, not 40 or 100
  CHECK(cached->expires <= after + 20s);
}

TEST_CASE("NXDOMAIN and NODATA are not_found and negatively cached for negative_ttl") {
  Fixture f;
  const auto before = CacheClock::now();
  for (const char* name : {"absent.test", "dangling.test", "nodata.test"}) {
    CAPTURE(name);
    Answer answer = f.resolve(name);
    CHECK(answer.status == Status::not_found);
    CHECK(answer.addresses.empty());
    CHECK_FALSE(answer.from_cache);
  }
  const int queries = f.server.total_queries();
  CHECK(queries == 6);  // A + AAAA per name: no retries, no search-domain variants
  auto again = start_known(*f.resolver, "absent.test");
  CHECK(again->answer->status == Status::not_found);
  CHECK(again->answer->from_cache);
  CHECK(f.server.total_queries() == queries);
  auto cached = f.cache->lookup("absent.test", CacheClock::now());
  REQUIRE(cached.has_value());
  CHECK(cached->negative);
  CHECK(cached->expires >= before + 5s);
  CHECK(cached->expires <= CacheClock::now() + 5s);
  CHECK(f.resolver->counters().failed == 3);
  CHECK(f.resolver->counters().cache_hits == 1);
}

TEST_CASE("SERVFAIL and REFUSED are failed, and cached as negative") {
  Fixture f;
  CHECK(f.resolve("broken.test").status == Status::failed);
  CHECK(f.resolve("refused.test").status == Status::failed);
  auto again = start_known(*f.resolver, "broken.test");
  CHECK(again->answer->from_cache);
  CHECK(again->answer->status == Status::not_found);  // the cache keeps "does not resolve" only
  CHECK(f.resolver->counters().failed == 2);
}

TEST_CASE("a server that never answers: timed_out after timeout x tries, not later") {
  Fixture f;
  // 500 ms x 2 tries = 1 s. c-ares alone would give up after 1.5 s (it doubles the timeout
  // for the second round), so an answer after 1.4 s means the Resolver's own deadline failed.
  auto dns = f.dns;
  dns.timeout = 500ms;
  PollLoop loop;
  auto resolver = Resolver::create(dns, *f.cache, loop.watch());
  REQUIRE(resolver.has_value());
  const auto started = SteadyClock::now();
  auto outcome = start(**resolver, "silent.test");
  REQUIRE(loop.run(**resolver, [&] { return outcome->answer.has_value(); }, 5s));
  const auto took = SteadyClock::now() - started;
  CHECK(outcome->answer->status == Status::timed_out);
  CHECK(took >= 990ms);
  CHECK(took < 1400ms);
  CHECK(f.server.queries("silent.test", "A") == 2);  // both tries were sent
  CHECK((*resolver)->in_flight() == 0);
  auto cached = f.cache->lookup("silent.test", CacheClock::now());
  REQUIRE(cached.has_value());
  CHECK(cached->negative);
  // c-ares is still retrying until its own give-up time; draining it changes nothing.
  loop.run(**resolver, [&] { return !(*resolver)->next_timeout(); }, 3s);
  CHECK_FALSE((*resolver)->next_timeout().has_value());
  CHECK((*resolver)->counters().failed == 1);
}

TEST_CASE("an expired answer is queried again") {
  Fixture f;  // min_ttl 1 s; short.test has TTL 1
  REQUIRE(f.resolve("short.test").status == Status::ok);
  CHECK(f.resolve("short.test").from_cache);
  CHECK(f.server.queries("short.test", "A") == 1);
  std::this_thread::sleep_for(1100ms);
  Answer fresh = f.resolve("short.test");
  CHECK(fresh.status == Status::ok);
  CHECK_FALSE(fresh.from_cache);
  CHECK(f.server.queries("short.test", "A") == 2);
}

TEST_CASE("TTLs are clamped to [min_ttl, max_ttl]") {
  Fixture f;
  const auto before = CacheClock::now();
  REQUIRE(f.resolve("zero.test").status == Status::ok);
  REQUIRE(f.resolve("huge.test").status == Status::ok);
  const auto after = CacheClock::now();
  auto zero = f.cache->lookup("zero.test", after);
  auto huge = f.cache->lookup("huge.test", after);
  REQUIRE(zero.has_value());
  REQUIRE(huge.has_value());
  CHECK(zero->expires >= before + 1s);
  CHECK(zero->expires <= after + 1s);
  CHECK(huge->expires >= before + 300s);
  CHECK(huge->expires <= after + 300s);
}

TEST_CASE("500 callers of one uncached name share one query") {
  Fixture f;
  constexpr int kCallers = 500;
  int answered = 0;
  int ok = 0;
  for (int i = 0; i < kCallers; ++i)
    f.resolver->resolve("popular.test", [&](const Answer& answer) {
      ++answered;
      if (answer.status == Status::ok && answer.addresses == std::vector<IpAddress>{ip("127.0.0.10")}) ++ok;
    });
  CHECK(answered == 0);
  CHECK(f.resolver->in_flight() == 1);
  REQUIRE(f.loop.run(*f.resolver, [&] { return answered == kCallers; }));
  CHECK(ok == kCallers);
  CHECK(f.server.queries("popular.test", "A") == 1);
  CHECK(f.server.queries("popular.test", "AAAA") == 1);
  CHECK(f.resolver->counters().queries == 1);
  CHECK(f.resolver->counters().resolved == kCallers);
  CHECK(f.resolver->in_flight() == 0);
}

TEST_CASE("two Resolvers share one cache") {
  Fixture f;
  REQUIRE(f.resolve("v4.test").status == Status::ok);
  PollLoop other_loop;
  auto other = Resolver::create(f.dns, *f.cache, other_loop.watch());
  REQUIRE(other.has_value());
  auto outcome = start_known(**other, "v4.test");
  CHECK(outcome->answer->from_cache);
  CHECK(f.server.queries("v4.test", "A") == 1);
  CHECK((*other)->counters().cache_hits == 1);
}

TEST_CASE("destroying a Resolver with queries in flight answers their callers failed") {
  Fixture f;
  auto silent = start(*f.resolver, "silent.test");
  auto silent_too = start(*f.resolver, "silent.test");
  auto popular = start(*f.resolver, "popular.test");
  CHECK(f.resolver->in_flight() == 2);
  // Let the queries reach the server, so c-ares has sockets open.
  f.loop.run(*f.resolver, [] { return false; }, 50ms);
  CHECK_FALSE(f.loop.watched().empty());
  f.resolver.reset();
  for (const auto& outcome : {silent, silent_too, popular}) {
    REQUIRE(outcome->answer.has_value());
    CHECK(outcome->answer->status == Status::failed);
  }
  CHECK(f.loop.watched().empty());  // every socket unwatched as c-ares closed it
  CHECK_FALSE(f.cache->lookup("silent.test", CacheClock::now()).has_value());  // no verdict cached
}

TEST_CASE("no answer of any kind comes inside resolve(), even when resolve() runs in a callback") {
  Fixture f;
  REQUIRE(f.resolve("v4.test").status == Status::ok);     // cached positive
  REQUIRE(f.resolve("absent.test").status == Status::not_found);  // cached negative
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (const char* name : {"127.0.0.1", "[::1]", "127.1", "", "v4.test", "absent.test", "localhost", "v6.test"})
    outcomes.push_back(start(*f.resolver, name));
  // A callback that resolves again, for each kind of answer known at once.
  std::vector<std::shared_ptr<Outcome>> nested;
  f.resolver->resolve("v4.test", [&](const Answer&) {
    for (const char* name : {"127.0.0.1", "v4.test", "absent.test", "localhost", "127.1"})
      nested.push_back(start(*f.resolver, name));
  });
  for (const auto& outcome : outcomes) CHECK_FALSE(outcome->answer.has_value());
  auto all_answered = [&] {
    if (nested.size() != 5) return false;
    for (const auto& group : {outcomes, nested})
      for (const auto& outcome : group)
        if (!outcome->answer) return false;
    return true;
  };
  REQUIRE(f.loop.run(*f.resolver, all_answered));
  for (const auto& group : {outcomes, nested})
    for (const auto& outcome : group) CHECK_FALSE(outcome->synchronous);
  CHECK(outcomes[4]->answer->from_cache);
  CHECK(outcomes[7]->answer->status == Status::ok);  // the one real query
  CHECK(f.resolver->in_flight() == 0);
}

TEST_CASE("destroying a Resolver with answers still queued answers their callers failed") {
  Fixture f;
  REQUIRE(f.resolve("v4.test").status == Status::ok);
  auto literal = start(*f.resolver, "127.0.0.1");
  auto cached = start(*f.resolver, "v4.test");
  CHECK(f.resolver->in_flight() == 2);
  Resolver* resolver = f.resolver.get();
  std::shared_ptr<Outcome> during;  // resolve() from a callback while the Resolver is destroyed
  resolver->resolve("127.0.0.2", [&](const Answer&) { during = start(*resolver, "v4.test"); });
  f.resolver.reset();
  for (const auto& outcome : {literal, cached}) {
    REQUIRE(outcome->answer.has_value());
    CHECK(outcome->answer->status == Status::failed);
    CHECK_FALSE(outcome->synchronous);
  }
  REQUIRE(during);
  REQUIRE(during->answer.has_value());
  CHECK(during->answer->status == Status::failed);
  CHECK_FALSE(during->synchronous);
}

TEST_CASE("a callback may resolve again, from inside on_fd_ready") {
  Fixture f;
  std::optional<Answer> second;
  f.resolver->resolve("v4.test", [&](const Answer&) {
    f.resolver->resolve("v6.test", [&](const Answer& answer) { second = answer; });
  });
  REQUIRE(f.loop.run(*f.resolver, [&] { return second.has_value(); }));
  CHECK(second->status == Status::ok);
  CHECK(second->addresses == std::vector<IpAddress>{ip("::1")});
}

TEST_CASE("names that cannot be queried fail at the loop's next turn") {
  Fixture f;
  for (const std::string& name : {std::string(""), std::string("."), std::string(300, 'a')}) {
    auto outcome = start_known(*f.resolver, name);
    CHECK(outcome->answer->status == Status::failed);
  }
  CHECK(f.resolver->counters().failed == 3);
  CHECK(f.resolver->in_flight() == 0);
}

TEST_CASE("an answer too big for UDP is fetched over TCP, capped at kMaxAddresses") {
  Fixture f;
  Answer answer = f.resolve("big.test");
  REQUIRE(answer.status == Status::ok);
  CHECK(answer.addresses.size() == DnsCache::kMaxAddresses);
  CHECK(answer.addresses.front() == ip("127.0.3.1"));
  CHECK(f.server.queries_over("tcp") >= 1);
}

TEST_CASE("a server that is not listening fails the query") {
  auto dns = test_dns(1);  // port 1 on loopback: nothing listens, ICMP port unreachable
  auto cache = DnsCache::in_process(dns);
  PollLoop loop;
  auto resolver = Resolver::create(dns, *cache, loop.watch());
  REQUIRE(resolver.has_value());
  auto outcome = start(**resolver, "v4.test");
  REQUIRE(loop.run(**resolver, [&] { return outcome->answer.has_value(); }, 5s));
  CHECK(outcome->answer->status != Status::ok);
}

TEST_CASE("a name in /etc/hosts answers at the loop's next turn, without a query") {
  std::ifstream hosts("/etc/hosts");
  std::stringstream text;
  text << hosts.rdbuf();
  if (text.str().find("localhost") == std::string::npos) {
    MESSAGE("skipped: /etc/hosts has no localhost entry");
    return;
  }
  Fixture f;
  auto outcome = start_known(*f.resolver, "localhost");
  CHECK(outcome->answer->status == Status::ok);
  CHECK_FALSE(outcome->answer->from_cache);
  CHECK(f.resolver->in_flight() == 0);
  std::this_thread::sleep_for(100ms);
  CHECK(f.server.total_queries() == 0);
  CHECK(f.resolver->counters().resolved == 1);
}

TEST_CASE("create() refuses a missing WatchFn") {
  auto cache = DnsCache::in_process(test_dns(53));
  auto created = Resolver::create(test_dns(53), *cache, nullptr);
  REQUIRE_FALSE(created.has_value());
  CHECK(created.error().message().find("WatchFn") != std::string::npos);
}

TEST_CASE("with the pinned map as the cache, answers land in dns_cache and survive a reopen") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: the pinned eBPF map needs root (CAP_BPF, bpffs)");
    return;
  }
  TempPinDir pins;
  const std::string& dir = pins.path();

  DnsServer server;
  const auto dns = test_dns(server.port());
  auto [cache, note] = DnsCache::open(dns, dir);
  REQUIRE_MESSAGE(cache->backing() == "pinned eBPF map", note);
  PollLoop loop;
  auto resolver = Resolver::create(dns, *cache, loop.watch());
  REQUIRE(resolver.has_value());
  auto outcome = start(**resolver, "Dual.Test.");
  REQUIRE(loop.run(**resolver, [&] { return outcome->answer.has_value(); }));
  CHECK(outcome->answer->status == Status::ok);

  // A second daemon (a new cache object on the same pin) finds the answer without a query.
  auto [reopened, reopened_note] = DnsCache::open(dns, dir);
  CHECK(reopened_note.find("reused") != std::string::npos);
  PollLoop other_loop;
  auto other = Resolver::create(dns, *reopened, other_loop.watch());
  REQUIRE(other.has_value());
  auto cached = start_known(**other, "dual.test");
  CHECK(cached->answer->from_cache);
  CHECK(cached->answer->addresses == std::vector<IpAddress>{ip("127.0.0.3"), ip("127.0.0.4"), ip("::1")});
  CHECK(server.queries("dual.test", "A") == 1);
}
