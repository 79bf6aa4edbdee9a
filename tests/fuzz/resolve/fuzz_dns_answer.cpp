// DNS answer handling: the Resolver (c-ares, the answer conversion, the cache) against a DNS
// server on loopback that answers each query with bytes from the input. The question is copied
// from the query and the ID patched in (c-ares drops answers that do not match their query), so
// the input drives the header flags, the record counts and the records themselves.
// Input: one byte "raw" flag per answer, then two answers separated by the length in byte 1.
// Invariants: the resolver always answers (or is destroyed answering `failed`); an `ok` answer
// holds 1..kMaxAddresses addresses, IPv4 before IPv6, none IPv4-mapped, none twice, and the cache
// then returns the same addresses for the name.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "flow/resolve/dns_cache.h"
#include "flow/resolve/resolver.h"
#include "require.h"

using namespace snisplice;
using namespace std::chrono_literals;
using snisplice::resolve::Answer;
using snisplice::resolve::DnsCache;
using snisplice::resolve::Resolver;

namespace {

using snisplice::fuzzing::require;

// The fake server's UDP socket on 127.0.0.1, bound once per process.
struct FakeServer {
  UniqueFd fd{::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  uint16_t port = 0;
  FakeServer() {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    require(fd && ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) == 0);
    require(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port = ntohs(address.sin_port);
  }
};

// Offset just past the question section (one question) of a query, or 0 when malformed.
size_t question_end(std::span<const uint8_t> query) {
  size_t at = 12;
  while (at < query.size() && query[at] != 0) at += 1 + query[at];
  return at + 5 <= query.size() ? at + 5 : 0;
}

// The answer to `query` built from `fuzz`: raw, the fuzz bytes after the query's ID; otherwise
// the first 8 fuzz bytes as flags and counts (the question count forced to 1), the query's
// question, then the rest of the fuzz bytes as records.
std::vector<uint8_t> response(std::span<const uint8_t> query, std::span<const uint8_t> fuzz, bool raw) {
  std::vector<uint8_t> out(query.begin(), query.begin() + 2);
  if (raw) {
    out.insert(out.end(), fuzz.begin(), fuzz.end());
    return out;
  }
  uint8_t header[10] = {0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0};
  for (size_t i = 0; i < 8 && i < fuzz.size(); ++i) header[i < 2 ? i : i + 2] = fuzz[i];
  out.insert(out.end(), header, header + 10);
  const size_t end = question_end(query);
  if (end) out.insert(out.end(), query.begin() + 12, query.begin() + static_cast<std::ptrdiff_t>(end));
  if (fuzz.size() > 8) out.insert(out.end(), fuzz.begin() + 8, fuzz.end());
  return out;
}

void check_answer(const Answer& answer, DnsCache& cache, const std::string& name) {
  if (answer.status != Answer::Status::ok) {
    require(answer.addresses.empty());
    return;
  }
  require(!answer.addresses.empty() && answer.addresses.size() <= DnsCache::kMaxAddresses);
  bool seen_v6 = false;
  for (size_t i = 0; i < answer.addresses.size(); ++i) {
    const IpAddress& address = answer.addresses[i];
    require(address.unmapped() == address);
    if (!address.is_v4()) seen_v6 = true;
    require(address.is_v4() ? !seen_v6 : true);
    require(std::count(answer.addresses.begin(), answer.addresses.end(), address) == 1);
  }
  auto cached = cache.lookup(name, resolve::CacheClock::now());
  require(cached && !cached->negative && cached->addresses == answer.addresses);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FakeServer server;
  static uint64_t serial = 0;
  if (size < 2) return 0;
  const bool raw[2] = {(data[0] & 1) != 0, (data[0] & 2) != 0};
  std::span<const uint8_t> rest(data + 2, size - 2);
  const size_t split = std::min<size_t>(data[1] * 4u, rest.size());
  const std::span<const uint8_t> parts[2] = {rest.first(split), rest.subspan(split)};

  config::Dns dns;
  dns.servers = {SocketAddress{*IpAddress::parse("127.0.0.1"), server.port}};
  dns.timeout = 200ms;
  dns.tries = 1;
  dns.min_ttl = 1s;
  dns.max_ttl = 300s;
  dns.negative_ttl = 1s;
  dns.cache_size = 64;
  auto cache = DnsCache::in_process(dns);
  std::map<int, short> watched;
  auto created = Resolver::create(dns, *cache, [&](int fd, bool read, bool write) {
    if (!read && !write)
      watched.erase(fd);
    else
      watched[fd] = static_cast<short>((read ? POLLIN : 0) | (write ? POLLOUT : 0));
  });
  require(created.has_value());
  std::unique_ptr<Resolver> resolver = std::move(*created);

  // Appended: GCC 12 at -O3 warns (-Wrestrict) on "n" + string.
  std::string name = "n";
  name += std::to_string(serial++);
  name += ".fuzz.test";
  std::optional<Answer> answer;
  resolver->resolve(name, [&](const Answer& got) { answer = got; });

  // Loopback delivers a datagram (and refuses a TCP connection) before the sending call
  // returns, so a round that finds nothing ready means nothing more will come: c-ares ignored
  // an answer and would wait for its timeout. Whatever is still pending is answered `failed`
  // when the Resolver is destroyed below.
  size_t answered = 0;
  for (int round = 0; round < 16 && !answer; ++round) {
    std::vector<pollfd> fds{{server.fd.get(), POLLIN, 0}};
    for (auto [fd, events] : watched) fds.push_back({fd, events, 0});
    if (::poll(fds.data(), fds.size(), 0) <= 0) break;
    if (fds[0].revents & POLLIN) {
      uint8_t query[1500];
      sockaddr_storage peer;
      socklen_t peer_length = sizeof peer;
      const ssize_t n = ::recvfrom(server.fd.get(), query, sizeof query, 0, reinterpret_cast<sockaddr*>(&peer), &peer_length);
      if (n >= 12 && answered < 2) {
        auto bytes = response({query, static_cast<size_t>(n)}, parts[answered], raw[answered]);
        ::sendto(server.fd.get(), bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&peer), peer_length);
        ++answered;
      }
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0 || !watched.contains(fds[i].fd)) continue;
      resolver->on_fd_ready(fds[i].fd, (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0,
                            (fds[i].revents & POLLOUT) != 0);
    }
  }
  resolver.reset();
  require(answer.has_value());
  check_answer(*answer, *cache, name);
  // Queries the resolver gave up on may still be queued at the server: drop them.
  uint8_t stale[1500];
  while (::recv(server.fd.get(), stale, sizeof stale, 0) > 0) {
  }
  return 0;
}
