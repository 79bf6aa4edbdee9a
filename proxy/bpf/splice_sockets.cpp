#include "bpf/splice_sockets.h"

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <utility>

#include "base/error.h"

namespace snisplice::bpf {
namespace {

tl::expected<tcp_info, Error> tcp_info_of(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
    return tl::unexpected(Error::from_errno("getsockopt(TCP_INFO)", errno));
  }
  if (len < offsetof(tcp_info, tcpi_notsent_bytes) + sizeof info.tcpi_notsent_bytes) {
    return tl::unexpected(Error{"getsockopt(TCP_INFO): kernel reports no byte counters"});
  }
  return info;
}

// An empty send queue, known without SIOCOUTQ: no segment in flight and nothing unsent.
// tcp_get_info reads both under the socket lock, so this is exact for that instant.
bool send_queue_empty(const tcp_info& info) { return info.tcpi_unacked == 0 && info.tcpi_notsent_bytes == 0; }

// tcpi_state values (include/net/tcp_states.h, stable ABI; <netinet/tcp.h> has them too but
// clashes with <linux/tcp.h>, whose tcp_info carries the byte counters).
enum TcpState : uint8_t { kEstablished = 1, kTimeWait = 6, kClose = 7, kCloseWait = 8, kLastAck = 9, kClosing = 11 };

// States reached by receiving a FIN (kClose: reset or fully closed, counters final).
bool fin_received(uint8_t state) {
  switch (state) {
    case kCloseWait:
    case kLastAck:
    case kClosing:
    case kTimeWait:
    case kClose: return true;
    default: return false;
  }
}

// tcpi_bytes_received advances over the FIN's sequence number too; SIOCINQ does not.
uint64_t data_bytes_received(const tcp_info& info) {
  return info.tcpi_bytes_received - (fin_received(info.tcpi_state) && info.tcpi_bytes_received > 0 ? 1 : 0);
}

tl::expected<uint64_t, Error> queue_ioctl(int fd, unsigned long request, const char* name) {
  int bytes = 0;
  if (::ioctl(fd, request, &bytes) != 0) return tl::unexpected(Error::from_errno(name, errno));
  return static_cast<uint64_t>(bytes);
}

}  // namespace

tl::expected<Baselines, Error> baselines(int fd) {
  constexpr int kAttempts = 64;
  auto before = tcp_info_of(fd);
  if (!before) return tl::unexpected(before.error());
  // The usual backend socket (nothing written, nothing received): one question answers all.
  // Only userspace writes to it until splice(), so an empty send queue stays empty.
  const bool nothing_queued = send_queue_empty(*before);
  if (nothing_queued && data_bytes_received(*before) == 0)
    return Baselines{before->tcpi_bytes_acked, 0, 0, before->tcpi_state == kEstablished};
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto queued = nothing_queued ? uint64_t{0} : queue_ioctl(fd, SIOCOUTQ, "ioctl(SIOCOUTQ)");
    if (!queued) return tl::unexpected(queued.error());
    auto unread = queue_ioctl(fd, SIOCINQ, "ioctl(SIOCINQ)");
    if (!unread) return tl::unexpected(unread.error());
    auto after = tcp_info_of(fd);
    if (!after) return tl::unexpected(after.error());
    const bool still = before->tcpi_bytes_received == after->tcpi_bytes_received &&
                       before->tcpi_bytes_acked == after->tcpi_bytes_acked;
    const uint64_t received = data_bytes_received(*after);
    if (still && received >= *unread) {
      return Baselines{after->tcpi_bytes_acked + *queued, received - *unread, *unread,
                       after->tcpi_state == kEstablished};
    }
    before = std::move(after);
  }
  return tl::unexpected(Error{"socket counters kept moving"});
}

tl::expected<SocketState, Error> socket_state(int fd) {
  auto info = tcp_info_of(fd);
  if (!info) return tl::unexpected(info.error());
  auto queued = send_queue_empty(*info) ? uint64_t{0} : queue_ioctl(fd, SIOCOUTQ, "ioctl(SIOCOUTQ)");
  if (!queued) return tl::unexpected(queued.error());
  // CLOSE without our own close is a reset: POLLERR's, not a FIN to pass on.
  const bool fin = fin_received(info->tcpi_state) && info->tcpi_state != kClose;
  return SocketState{info->tcpi_bytes_acked + *queued, data_bytes_received(*info), fin};
}

tl::expected<uint64_t, Error> bytes_into_send_queue(int fd) {
  auto state = socket_state(fd);
  if (!state) return tl::unexpected(state.error());
  return state->into_send_queue;
}

tl::expected<uint64_t, int> socket_cookie(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) return tl::unexpected(errno);
  return cookie;
}

bool kick(int fd) {
  int lowat = 1;
  return ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0;
}

bool at_urgent_mark(int fd) {
  int at_mark = 0;
  return ::ioctl(fd, SIOCATMARK, &at_mark) != 0 || at_mark != 0;
}

}  // namespace snisplice::bpf
