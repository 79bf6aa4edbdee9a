#pragma once
// What the splice asks of a TCP socket, in as few system calls as the answer allows: one
// TCP_INFO, and SIOCOUTQ / SIOCINQ only when TCP_INFO cannot tell (proxy/bpf/splice_engine.*).
#include <cstdint>
#include <string>

#include <tl/expected.hpp>

#include "base/error.h"

namespace snisplice::bpf {

// What one socket's TCP_INFO (and SIOCOUTQ) said; SplicedPair::read() asks after the counters.
struct SocketState {
  uint64_t into_send_queue = 0;  // bytes_into_send_queue()
  uint64_t received = 0;         // data bytes received (the FIN's sequence number not counted)
  bool fin_received = false;     // a FIN, not a reset
};

// Bytes userspace wrote into the send queue, read, and left unread before splice(). A socket
// that has sent and received nothing costs one TCP_INFO; otherwise TCP_INFO, SIOCINQ (and
// SIOCOUTQ unless the queue is empty), TCP_INFO again, retried until neither the received nor
// the acknowledged count moved in between (either would make the sums inexact).
struct Baselines {
  uint64_t into_send_queue = 0;
  uint64_t read = 0;
  uint64_t unread = 0;
  bool established = false;  // at the last TCP_INFO
};
tl::expected<Baselines, Error> baselines(int fd);

// TCP_INFO first, then SIOCOUTQ unless TCP_INFO shows the queue empty. An ACK between the two
// can only make into_send_queue smaller than the truth (never larger), so a drain is never
// reported early.
tl::expected<SocketState, Error> socket_state(int fd);

// Bytes written into fd's TCP send queue since the connection started, whoever wrote them:
// tcpi_bytes_acked (left the queue, acknowledged) + SIOCOUTQ (still queued, unacked or
// unsent). Monotonic until the socket sends its own FIN.
tl::expected<uint64_t, Error> bytes_into_send_queue(int fd);

// The socket's cookie (SO_COOKIE): its key in the splice maps. Errno on failure.
tl::expected<uint64_t, int> socket_cookie(int fd);

// Makes the verdict look at bytes already queued on fd: they arrived before the socket was
// in the map and no data-ready event will come for them. SO_RCVLOWAT runs tcp_data_ready(),
// which calls the psock's data-ready and so the verdict (tests/bpf/splice_test.cpp "bytes
// queued before splice() reach the peer" fails without it). recv(MSG_PEEK | MSG_DONTWAIT)
// was measured to work as well on 6.18; SO_RCVLOWAT copies nothing to userspace and 1 is
// the default value anyway.
bool kick(int fd);

// A read stops before an urgent byte even with bytes of its segment left (tcp_recvmsg): a short
// read there does not end at a segment's end. An error counts as at the mark.
bool at_urgent_mark(int fd);

}  // namespace snisplice::bpf
