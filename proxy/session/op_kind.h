#pragma once
// What each io_uring operation a worker submits is for (the `kind` of its io::OpTag).
#include <cstdint>

namespace snisplice::session {

enum OpKind : uint8_t {
  kAccept = 1,      // slot: listener socket index
  kWake,            // the daemon's eventfd
  kHelloRecv,       // MSG_PEEK: the hello stays queued on the client socket
  kHelloPoll,       // POLLIN over SO_RCVLOWAT: more hello bytes than were peeked
  kConnect,
  kConnectTimeout,  // linked to kConnect
  kPreamble,
  kRecvUp,          // client socket, relay
  kRecvDown,        // backend socket, relay
  kSendUp,          // to the backend
  kSendDown,        // to the client
  kCancel,
  kSplicePollClient,   // POLLRDHUP on a spliced client socket
  kSplicePollBackend,  // the same on its backend socket
  kDnsPoll,            // a c-ares socket; slot: the fd, generation: the watch's serial
  kDrainedUp,          // a hand-over's drained client bytes, to the backend
  kDrainedDown,        // a hand-over's drained backend bytes, to the client
  kSpliceWakeClient,   // POLLIN on a spliced client socket while its pair's checks back off
  kSpliceWakeBackend,  // the same on its backend socket
  kClose,              // a released connection's socket (no session: generation 0)
};

}  // namespace snisplice::session
