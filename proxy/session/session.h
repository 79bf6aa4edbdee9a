#pragma once
// Everything one client connection owns, from accept to close. A session lives in a
// worker's slot table; io_uring completions find it by slot and generation.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <linux/time_types.h>
#include <sys/socket.h>

#include "base/net_address.h"
#include "base/unique_fd.h"
#include "bpf/splice_engine.h"
#include "runtime/snapshot.h"
#include "flow/hello/preread.h"
#include "session/lifecycle.h"
#include "session/result.h"

namespace snisplice::session {

// A received buffer (from the worker's buffer ring) waiting to be sent on. Under pressure on
// the ring its bytes are copied out (`copy`) and the buffer goes back (relay.cpp, spill).
struct Chunk {
  uint16_t buffer_id;
  uint32_t offset;
  uint32_t length;
  std::unique_ptr<uint8_t[]> copy = nullptr;  // set: the bytes live here, buffer_id is not held
};

// Received buffers in arrival order. A vector with a read index rather than std::deque, which
// allocates a map and a 512-byte block up front: an idle connection must cost next to nothing.
class ChunkQueue {
 public:
  bool empty() const { return head_ == chunks_.size(); }
  size_t size() const { return chunks_.size() - head_; }
  Chunk& front() { return chunks_[head_]; }
  void push_back(Chunk chunk) { chunks_.push_back(std::move(chunk)); }
  void pop_front() {
    if (++head_ == chunks_.size()) clear();
  }
  void clear() {
    chunks_.clear();
    head_ = 0;
  }
  auto begin() const { return chunks_.begin() + static_cast<long>(head_); }
  auto end() const { return chunks_.end(); }
  auto begin() { return chunks_.begin() + static_cast<long>(head_); }
  auto end() { return chunks_.end(); }

 private:
  std::vector<Chunk> chunks_;
  size_t head_ = 0;
};

// A direction the kernel carries (splice.cpp): whether its source's FIN waits for the
// redirected bytes to drain, whether the relay takes it over once the kernel's bytes are
// delivered, and what the last check saw.
struct KernelDirection {
  bool carries = false;
  bool fin_pending = false;
  bool handing_over = false;
  uint64_t undelivered_seen = 0;  // at the last check, to tell a paused direction's progress
  uint64_t delivered_seen = 0;    // into the destination's send queue: progress for idle time
  Clock::time_point paced_at{};   // last pause or resume
  uint64_t redirected_counted = 0;
  uint64_t held_counted = 0;  // of redirected_counted, bytes relay_held moved
};

// A hand-over to the kernel (splice: auto, relay.cpp): the bytes the last reads took from the
// source that the sink did not take at once, sent before the kernel may redirect anything
// behind them.
struct HandOverDrain {
  std::vector<uint8_t> bytes;
  size_t sent = 0;
  bool in_flight = false;
  bool read_short = false;  // the last read emptied the queue: the source is not read again
};

// One direction of a connection: bytes received on its source and sent to the other socket,
// by the relay (relay.cpp), the kernel, or first one and then the other.
struct Direction {
  ChunkQueue pending;
  bool recv_armed = false;
  bool recv_capped = false;  // the armed receive carries the multishot byte cap
  bool send_in_flight = false;
  bool send_cancelled_to_spill = false;  // the in-flight send reads a ring buffer about to be copied out
  Clock::time_point send_started_at{};   // of the send in flight
  bool eof = false;          // the source shut down its sending side
  bool shut = false;         // we shut down the sink's sending side after flushing
  bool paused = false;       // recv cancelled because too much is pending
  bool source_failed = false;  // the source reset or errored: no more bytes will come
  bool sink_failed = false;    // sending to the sink failed: pending bytes are dropped
  uint64_t bytes = 0;
  KernelDirection kernel;
  HandOverDrain drain;
};

// The hello phase (hello.cpp): a trusted inbound PROXY header (read from the socket, not
// replayed), then the hello as last peeked: the hello and everything behind it stay queued on
// the client socket until the kernel or the relay forwards them.
struct Preread {
  std::vector<uint8_t> inbound;
  size_t inbound_length = 0;
  size_t proxy_header_length = 0;    // bytes consumed from the client socket
  bool proxy_header_done = false;
  bool hello_queued = false;         // peeked bytes sit on the client socket, unread
  bool low_water_raised = false;     // SO_RCVLOWAT is above 1 while waiting for more hello
  bool hello_hung_up = false;        // the last hello poll saw a FIN, a reset or an error
  bool receive_buffer_raised = false;  // SO_RCVBUF set to hold the largest allowed hello
  // On the heap and only during the hello: an idle connection should not carry its ~220 bytes.
  std::unique_ptr<hello::PrereadParser> parser;
};

// From route to connect (dial.cpp): what to dial, in order (a backend's servers with their pool
// index, or the addresses a resolve / original_dst route found: no pool index, checked against
// the route's policy), and the connect under way.
struct Dialing {
  struct Target {
    SocketAddress address;
    std::optional<size_t> server;
  };
  std::vector<Target> targets;
  size_t candidate = 0;
  bool policy_checked = false;  // targets of resolve / original_dst routes
  bool denied_any = false;
  Clock::time_point connect_started;
  __kernel_timespec connect_timeout{};
  // The connect's address until its completion: the ring copies it at the next submission.
  std::unique_ptr<sockaddr_storage> connect_address;
};

// splice: auto (relay.cpp): relayed until lifecycle::hand_over says the connection is bulk,
// then handed to the kernel. `enabled` while a hand-over may still happen; `moving` from the
// cancel of the relay's receives until splice() or giving up.
struct LazySplice {
  bool enabled = false;
  bool moving = false;
  unsigned rounds = 0;    // drains in this attempt
  unsigned attempts = 0;  // attempts that backed off
  uint64_t at_bytes = lifecycle::kHandOverBytes;
  bool backed_off = false;  // this attempt ends back on the relay
};

// The in-kernel splice of a connection (splice.cpp).
struct KernelSplice {
  bool spliced = false;
  std::optional<bpf::SplicedPair> pair;  // destroyed before the fds close (release)
  std::chrono::milliseconds check_interval{0};
  // A one-shot POLLIN per socket, armed while the checks back off (splice.cpp).
  bool wake_armed_client = false;
  bool wake_armed_backend = false;
};

class WorkerPools;

struct Session {
  uint32_t slot = 0;
  uint32_t generation = 0;
  Phase phase = Phase::hello;
  unsigned inflight = 0;  // submitted operations whose final completion has not arrived

  std::shared_ptr<const runtime::Snapshot> runtime;
  std::shared_ptr<WorkerPools> pools;  // the pools of the runtime this session started with
  size_t listener = 0;        // its index in runtime->config->listeners, when it is there
  std::string listener_name;  // a listener a reload removed keeps its sockets until restart

  UniqueFd client;
  UniqueFd backend;
  SocketAddress client_address;  // after any PROXY header: the real client
  SocketAddress peer_address;    // the TCP peer (the load balancer when PROXY is used)
  SocketAddress local_address;   // the original destination for transparent listeners

  Clock::time_point started;
  std::chrono::system_clock::time_point started_wall;
  Clock::time_point deadline;         // hello, connect or idle deadline: see Worker::on_deadline
  Clock::time_point last_activity;

  Preread preread;  // the hello phase (hello.cpp)
  hello::Hello hello;

  uint32_t route = 0;
  bool routed = false;
  std::string backend_name;
  Dialing dialing;  // route to connect (dial.cpp)
  bool connected = false;
  std::optional<size_t> connected_server;
  SocketAddress backend_address;

  std::vector<uint8_t> preamble;
  size_t preamble_sent = 0;

  Direction up;    // client -> backend
  Direction down;  // backend -> client

  LazySplice lazy;     // splice: auto, before and during the hand-over (relay.cpp)
  KernelSplice kernel; // once spliced (splice.cpp)
  std::optional<Result> result;
  bool abort = false;  // close with RST
  // One side failed: the other one was sent everything it was owed and gets a FIN; its
  // socket lingers until the kernel has sent those bytes (see Worker::linger_close).
  Survivor survivor = Survivor::none;
  bool counted_active = false;
  bool admitted = false;
};

// Whether the relay handlers still move bytes for this session: all of them in the relaying
// phase, a demoted direction in the spliced phase.
inline bool relaying(const Session& s) { return s.phase == Phase::relaying || s.phase == Phase::spliced; }

}  // namespace snisplice::session
