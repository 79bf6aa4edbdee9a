#include "bpf/splice_rollback.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <bpf/bpf.h>

#include <cerrno>

#include "bpf/splice_sockets.h"
#include "splice_abi.h"

namespace snisplice::bpf {
namespace {

// While reading back, the socket's receive buffer is this small (SO_RCVBUF is doubled by the
// kernel): the sender's window stays open but small, so the reads keep up with it. Not smaller: a
// window closed completely would reopen only at the sender's next zero-window probe (200 ms or
// more; measured: a 2 s stall after a few read-backs).
constexpr int kReadBackReceiveBuffer = 128 << 10;
// Bounds on the read-back: bytes, and 1 ms waits while the verdict's count is ahead of the reads
// (a skb queued to the psock's backlog, its receive buffer full, is made readable by a kworker).
constexpr size_t kReadBackMax = 32u << 20;
constexpr int kReadBackWaits = 20;

struct Taken {
  uint64_t into_psock = 0;  // held and passed bytes: queued on this socket's psock
  bool exact = false;       // nothing repeated, nothing redirected, the entry found
};

Taken verdict_took(int stats_map_fd, uint64_t stats_key) {
  splice_sock_stats value{};
  if (::bpf_map_lookup_elem(stats_map_fd, &stats_key, &value) != 0) return {};
  return Taken{value.held_bytes + value.passed_bytes, value.repeats == 0 && value.redirected_bytes == 0};
}

// Reads until every byte the verdict took is read (the counts agree after a read), or the socket
// ends, or a bound is reached.
void read_until_caught_up(int fd, int stats_map_fd, uint64_t stats_key, std::vector<uint8_t>& out) {
  constexpr size_t kStep = 256u << 10;
  int waits = 0;
  while (out.size() < kReadBackMax) {
    const size_t had = out.size();
    out.resize(had + kStep);
    const ssize_t n = ::recv(fd, out.data() + had, kStep, MSG_DONTWAIT);
    const int error = errno;
    out.resize(had + static_cast<size_t>(n > 0 ? n : 0));
    if (n < 0 && error == EINTR) continue;
    const bool waiting = n < 0 && (error == EAGAIN || error == EWOULDBLOCK);
    const Taken taken = verdict_took(stats_map_fd, stats_key);
    if (!taken.exact || taken.into_psock == out.size() || (n <= 0 && !waiting)) return;
    if (waiting) {
      if (++waits > kReadBackWaits) return;
      pollfd readable{fd, POLLIN, 0};
      (void)::poll(&readable, 1, 1);
    }
  }
}

struct ReadBack {
  std::vector<uint8_t> bytes;  // what the socket received since its insertion, in order
  std::string lost;            // empty when bytes is all the verdict took
};

// Reads `socket` (in the sockhash under `peers_key`) back, deletes the entry, and checks the
// counts.
ReadBack take_back(const SplicedSocket& socket, int peers_map_fd, uint64_t peers_key, int stats_map_fd) {
  const int fd = socket.fd;
  const uint64_t stats_key = socket.cookie;
  ReadBack back;
  // Bytes that arrived before the insertion wait in the receive queue, and a read would take
  // them ahead of the psock's queue only while that is empty: the kick hands them to the verdict
  // first, so every byte read below went through the verdict's count, in order.
  (void)kick(fd);
  // Most failed splices find nothing taken: the socket was in the map for microseconds.
  int buffer = 0;
  bool shrunk = false;
  if (verdict_took(stats_map_fd, stats_key).into_psock > 0) {
    // A sender with a large window outruns the reads (measured: 17 MB taken while 9 MB were
    // read). The buffer goes back to its size afterwards, fixed: autotuning is off from here.
    socklen_t length = sizeof buffer;
    shrunk = ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, &length) == 0 &&
             ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kReadBackReceiveBuffer, sizeof kReadBackReceiveBuffer) == 0;
    read_until_caught_up(fd, stats_map_fd, stats_key, back.bytes);
  }
  ::bpf_map_delete_elem(peers_map_fd, &peers_key);
  // A verdict running on another CPU holds the socket's lock until its skb is queued, and
  // TCP_INFO takes that lock (lock_sock_fast): the count read after it is final.
  tcp_info info{};
  socklen_t length = sizeof info;
  (void)::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length);
  if (shrunk) {
    // getsockopt reports the doubled size; FORCE passes rmem_max, as autotuning did.
    const int restored = buffer / 2;
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &restored, sizeof restored) != 0)
      (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &restored, sizeof restored);
  }
  const Taken taken = verdict_took(stats_map_fd, stats_key);
  // The kernel can still drop a segment unseen: one arriving while the psock is detached meets
  // the verdict's callback with no psock (sk_psock_verdict_recv), which eats it without running
  // the program, so the count above misses it. TCP counted it consumed, though: what the socket
  // consumed must be exactly what was read before splice() and read back here.
  auto consumed = baselines(fd);
  const uint64_t read = socket.read_before + back.bytes.size();
  if (!taken.exact) {
    back.lost = "a repeated or redirected skb";
  } else if (taken.into_psock != back.bytes.size()) {
    back.lost = std::to_string(back.bytes.size()) + " of " + std::to_string(taken.into_psock) + " bytes read back";
  } else if (!consumed) {
    back.lost = consumed.error().message();
  } else if (consumed->read != read) {
    back.lost = "TCP consumed " + std::to_string(consumed->read) + " bytes, " + std::to_string(read) + " were read";
  }
  return back;
}

}  // namespace

RolledBack roll_back(std::span<const MapEntry> made, int peers_map_fd, int stats_map_fd, const SplicedSocket& client,
                     const SplicedSocket& backend) {
  RolledBack rolled;
  for (auto entry = made.rbegin(); entry != made.rend(); ++entry) {
    if (entry->map_fd != peers_map_fd) {
      ::bpf_map_delete_elem(entry->map_fd, &entry->key);
      continue;
    }
    // Each socket is in the sockhash under its peer's cookie.
    const bool holds_backend = entry->key == client.cookie;
    ReadBack back = take_back(holds_backend ? backend : client, peers_map_fd, entry->key, stats_map_fd);
    if (!back.lost.empty() && rolled.lost.empty()) rolled.lost = std::move(back.lost);
    (holds_backend ? rolled.from_backend : rolled.from_client) = std::move(back.bytes);
  }
  if (!rolled.lost.empty()) {
    rolled.from_client.clear();
    rolled.from_backend.clear();
  }
  return rolled;
}

}  // namespace snisplice::bpf
