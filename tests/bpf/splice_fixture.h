#pragma once
// Shared by the bpf_splice_test sources: real sockets on loopback through the in-kernel splice.
// Arrangement of every test:
//
//   client C --> proxy listener P (accepted: p1) ... p2 --> backend listener B (accepted: b)
//
// p1 and p2 are the proxy's two sockets, spliced with SpliceEngine::splice(p1, p2). Each
// kernel hazard of docs/architecture.md ("Hazards") has a test that fails without its
// mitigation; every test ends by checking that no map entry is left behind.
#include <doctest/doctest.h>

#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bpf/bpf.h>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "bpf/kernel_features.h"
#include "bpf/splice_engine.h"
#include "bpf/splice_sockets.h"

namespace splice_test {

using snisplice::UniqueFd;
using snisplice::bpf::Direction;
using snisplice::bpf::PairStats;
using snisplice::bpf::SpliceEngine;
using snisplice::bpf::SpliceFailure;
using snisplice::bpf::SplicedPair;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint32_t kMaxSockets = 1024;

// ------------------------------------------------------------------------------ sockets

// 127.0.0.1 or ::1, ephemeral port.
inline sockaddr_storage loopback(int family, uint16_t port, socklen_t& len) {
  sockaddr_storage storage{};
  if (family == AF_INET6) {
    auto* address = reinterpret_cast<sockaddr_in6*>(&storage);
    address->sin6_family = AF_INET6;
    address->sin6_addr = in6addr_loopback;
    address->sin6_port = htons(port);
    len = sizeof *address;
  } else {
    auto* address = reinterpret_cast<sockaddr_in*>(&storage);
    address->sin_family = AF_INET;
    address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address->sin_port = htons(port);
    len = sizeof *address;
  }
  return storage;
}

inline UniqueFd listen_loopback(int family, uint16_t& port) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  socklen_t len = 0;
  sockaddr_storage address = loopback(family, 0, len);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), len) == 0);
  REQUIRE(::listen(fd.get(), 8) == 0);
  REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &len) == 0);
  port = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                                  : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  return fd;
}

inline UniqueFd connect_loopback(int family, uint16_t port) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  socklen_t len = 0;
  const sockaddr_storage address = loopback(family, port, len);
  REQUIRE(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), len) == 0);
  return fd;
}

inline UniqueFd accept_one(int listener) {
  UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(fd);
  return fd;
}

inline void set_nonblocking(int fd) {
  int on = 1;
  REQUIRE(::ioctl(fd, FIONBIO, &on) == 0);
}

// C, p1, p2, b as in the file comment. C and b are non-blocking (driven by pump()).
struct Topology {
  UniqueFd client;
  UniqueFd proxy_client_side;   // p1
  UniqueFd proxy_backend_side;  // p2
  UniqueFd backend;

  explicit Topology(int client_family = AF_INET, int backend_family = AF_INET) {
    uint16_t backend_port = 0;
    uint16_t proxy_port = 0;
    UniqueFd backend_listener = listen_loopback(backend_family, backend_port);
    UniqueFd proxy_listener = listen_loopback(client_family, proxy_port);
    client = connect_loopback(client_family, proxy_port);
    proxy_client_side = accept_one(proxy_listener.get());
    proxy_backend_side = connect_loopback(backend_family, backend_port);
    backend = accept_one(backend_listener.get());
    set_nonblocking(client.get());
    set_nonblocking(backend.get());
  }
  int p1() const { return proxy_client_side.get(); }
  int p2() const { return proxy_backend_side.get(); }
};

inline uint64_t cookie_of(int fd) {
  auto cookie = snisplice::bpf::socket_cookie(fd);
  REQUIRE(cookie);
  return *cookie;
}

inline int socket_error(int fd) {
  int error = 0;
  socklen_t len = sizeof error;
  REQUIRE(::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0);
  return error;
}

inline bool wait_for(int fd, short events, std::chrono::milliseconds timeout) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 && (p.revents & events) != 0;
}

// Polls `done` every millisecond for at most `timeout`.
inline bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    ::usleep(1000);
  }
  return done();
}

// ------------------------------------------------------------------- patterned streams

// Byte `offset` of stream `seed`: a hash of the offset, so a lost, duplicated or reordered
// chunk shows up at its exact offset.
inline uint8_t pattern_byte(uint32_t seed, uint64_t offset) {
  uint64_t x = (offset >> 3) * 0x9E3779B97F4A7C15ull ^ seed;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return static_cast<uint8_t>(x >> ((offset & 7) * 8));
}

inline void fill_pattern(uint32_t seed, uint64_t offset, uint8_t* out, size_t len) {
  for (size_t i = 0; i < len; ++i) out[i] = pattern_byte(seed, offset + i);
}

// Sends `total` bytes of stream `seed` (then shuts down writing if asked).
struct Writer {
  int fd;
  uint32_t seed;
  uint64_t total;
  bool shutdown_after = false;
  uint64_t sent = 0;
  int error = 0;
  bool done() const { return error != 0 || sent == total; }
};

// Receives stream `seed`, checking each byte; satisfied at `expect` bytes (and EOF if asked).
struct Reader {
  int fd;
  uint32_t seed;
  uint64_t expect;
  bool want_eof = false;
  uint64_t received = 0;
  bool eof = false;
  int error = 0;
  uint64_t first_bad_offset = UINT64_MAX;
  size_t max_per_step = SIZE_MAX;  // a slow consumer reads less per round
  bool done() const { return error != 0 || (received >= expect && (!want_eof || eof)); }
  bool intact() const { return error == 0 && first_bad_offset == UINT64_MAX && received == expect; }
};

inline std::string describe(const Writer& w) {
  return "writer fd " + std::to_string(w.fd) + " sent " + std::to_string(w.sent) + "/" + std::to_string(w.total) +
         " errno " + std::to_string(w.error);
}

inline std::string describe(const Reader& r) {
  return "reader fd " + std::to_string(r.fd) + " received " + std::to_string(r.received) + "/" +
         std::to_string(r.expect) + (r.eof ? " eof" : "") + " errno " + std::to_string(r.error) +
         (r.first_bad_offset != UINT64_MAX ? " first bad byte at " + std::to_string(r.first_bad_offset) : "");
}

inline void step_writer(Writer& w, std::vector<uint8_t>& buffer) {
  const size_t len = static_cast<size_t>(std::min<uint64_t>(buffer.size(), w.total - w.sent));
  fill_pattern(w.seed, w.sent, buffer.data(), len);
  const ssize_t n = ::send(w.fd, buffer.data(), len, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n > 0) {
    w.sent += static_cast<uint64_t>(n);
    if (w.sent == w.total && w.shutdown_after) ::shutdown(w.fd, SHUT_WR);
  } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    w.error = errno;
  }
}

// Bytes of r's stream that reached the test some other way than r's socket.
inline void take_bytes(Reader& r, const uint8_t* bytes, size_t n) {
  for (size_t i = 0; i < n && r.first_bad_offset == UINT64_MAX; ++i) {
    if (bytes[i] != pattern_byte(r.seed, r.received + i)) r.first_bad_offset = r.received + i;
  }
  r.received += n;
}

inline void step_reader(Reader& r, std::vector<uint8_t>& buffer) {
  const ssize_t n = ::recv(r.fd, buffer.data(), std::min(buffer.size(), r.max_per_step), MSG_DONTWAIT);
  if (n == 0) {
    r.eof = true;
  } else if (n > 0) {
    take_bytes(r, buffer.data(), static_cast<size_t>(n));
  } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
    r.error = errno;
  }
}

// Moves bytes until every writer and reader is done, `step` returns false, or `timeout`.
// `step` runs at least once a millisecond: it plays the daemon's part.
inline bool pump(std::vector<Writer*> writers, std::vector<Reader*> readers, std::chrono::milliseconds timeout,
          const std::function<bool()>& step = [] { return true; }) {
  std::vector<uint8_t> buffer(256 * 1024);
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    bool all_done = true;
    std::vector<pollfd> fds;
    for (Writer* w : writers) {
      if (!w->done()) fds.push_back({w->fd, POLLOUT, 0});
      all_done = all_done && w->done();
    }
    for (Reader* r : readers) {
      if (!r->done()) fds.push_back({r->fd, POLLIN, 0});
      all_done = all_done && r->done();
    }
    if (!step()) return false;
    if (all_done) return true;
    ::poll(fds.data(), fds.size(), 1);
    for (Writer* w : writers) {
      if (!w->done()) step_writer(*w, buffer);
    }
    for (Reader* r : readers) {
      if (!r->done()) step_reader(*r, buffer);
    }
  }
  return false;
}

// Reads exactly `len` bytes from a blocking or non-blocking fd within `timeout`.
inline std::string read_exactly(int fd, size_t len, std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = Clock::now() + timeout;
  while (out.size() < len && Clock::now() < deadline) {
    if (!wait_for(fd, POLLIN, 10ms)) continue;
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, std::min(sizeof chunk, len - out.size()), MSG_DONTWAIT);
    if (n <= 0) break;
    out.append(chunk, static_cast<size_t>(n));
  }
  return out;
}

inline void send_all(int fd, const std::string& bytes) {
  size_t done = 0;
  for (int attempt = 0; attempt < 1000 && done < bytes.size(); ++attempt) {
    const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) done += static_cast<size_t>(n);
    else if (errno != EAGAIN) break;
    else wait_for(fd, POLLOUT, 10ms);
  }
  REQUIRE(done == bytes.size());
}

inline std::string describe(const SplicedPair& pair) {
  const auto stats = pair.stats();
  auto one = [&](Direction d) {
    const auto& s = stats[d];
    auto delivered = pair.delivered(d);
    return "redirected " + std::to_string(s.redirected_bytes) + " passed " + std::to_string(s.passed_bytes) +
           (s.fin_seen ? " fin" : "") + " delivered " + (delivered ? std::to_string(*delivered) : delivered.error().message());
  };
  return "client->backend: " + one(Direction::client_to_backend) +
         "; backend->client: " + one(Direction::backend_to_client);
}

inline std::string pattern_string(uint32_t seed, size_t len) {
  std::string s(len, '\0');
  fill_pattern(seed, 0, reinterpret_cast<uint8_t*>(s.data()), len);
  return s;
}

// ------------------------------------------------------------------------------ engine

inline SpliceEngine load_engine() {
  auto engine = SpliceEngine::load(kMaxSockets);
  REQUIRE_MESSAGE(engine.has_value(), (engine ? std::string() : engine.error().message()));
  return std::move(*engine);
}

// `other_peers`: peer entries the test inserted itself.
inline void require_maps_empty(const SpliceEngine& engine, size_t other_peers = 0) {
  auto occupancy = engine.occupancy();
  REQUIRE(occupancy.has_value());
  CHECK(occupancy->peer_entries == other_peers);
  CHECK(occupancy->stats_entries == 0);
  CHECK(occupancy->control_entries == 0);
}

inline SplicedPair splice_or_fail(const SpliceEngine& engine, const Topology& t) {
  auto pair = engine.splice(t.p1(), t.p2());
  REQUIRE_MESSAGE(pair.has_value(), (pair ? std::string() : pair.error().message));
  return std::move(*pair);
}

// The daemon's FIN watch for one direction: once the source reported POLLRDHUP, half-close
// the destination as soon as it is drained.
struct FinPropagation {
  SplicedPair& pair;
  int source_fd;
  Direction direction;
  bool propagated = false;
  bool fin_received = false;
  std::string error = {};
  void step() {
    if (propagated || !error.empty()) return;
    pollfd p{source_fd, POLLRDHUP, 0};
    if (::poll(&p, 1, 0) != 1 || (p.revents & POLLRDHUP) == 0) return;
    fin_received = true;
    auto done = pair.shutdown_peer_when_drained(direction);
    if (!done) error = done.error().message();
    else propagated = *done;
  }
};

}  // namespace splice_test
