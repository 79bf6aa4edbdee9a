#pragma once
// In-kernel splice of a client socket and a backend socket through a sockhash whose
// SK_SKB stream verdict (ebpf/splice.bpf.c) sends the bytes each socket receives out of
// its peer. The kernel forwards bytes only: FIN, drain and backpressure stay with the
// caller, through the building blocks below (measured hazards: docs/architecture.md).
//
// Life of one spliced connection, for the daemon:
//  1. Read nothing you do not consume: peek the hello (MSG_PEEK). Write to the backend only
//     what it needs before the client's bytes (a PROXY header), every byte of it accepted by
//     send() (redirected bytes would overtake any you still hold), then call
//     SpliceEngine::splice(client, backend) while both sockets are ESTABLISHED. Bytes queued
//     on either socket that you never read are redirected too (splice() kicks both sockets).
//     But once you have read from a socket, read it until EAGAIN before splice(): the
//     verdict receives the head segment whole, so the part of it you had read would be sent
//     again (measured on 6.18). splice() refuses such a socket (SpliceFailure::partly_read)
//     rather than duplicate bytes. (A read that returned less than it asked for also leaves
//     no segment partly read: say so with ReadsBefore::ended_short.) No recv may be in flight on either socket from splice()
//     on: cancel a multishot recv first.
//     On error nothing is left in the maps: relay this connection in userspace
//     (SpliceError::failure says why, for the metric), sending SpliceError::from_client and
//     from_backend first: what an inserted socket's verdict took before a later step failed,
//     read back. SpliceFailure::lost: some of it could not be; reset both ends.
//     A hand-over of sockets already read (ReadsBefore::ended_short) starts with both
//     directions paused (step 4): relay what they hold, then resume.
//  2. Watch both sockets for POLLRDHUP (POLLERR and POLLHUP come with it). Not POLLIN: the
//     verdict's data-ready wakes POLLIN for every segment on its way through, redirected or
//     not (a one-shot POLLIN is the way to wake a quiet pair's check at its next segment).
//     Instead, read() the pair on a periodic check (step 4) and look at
//     stats[d].passed_bytes: non-zero means a peer entry was missing when bytes arrived
//     (the destination closed and left the map, or, for backend_to_client, the backend
//     sent in the microseconds between the two inserts). Direction d then belongs to
//     the userspace relay for good: read its source socket as usual (the bytes are there,
//     in order, and EOF reads as 0) and write them to the destination. Nothing is
//     redirected in d any more, so drained(d) and over_budget() stay exact. Start reading
//     only once undelivered(d) is 0 and holding(d) is false: bytes held by a pause (step 4)
//     come before the passed ones; resume(d) and call relay_held(d) until then.
//  3. On POLLRDHUP (FIN received) on the source of a direction d still in the kernel (or a
//     read() whose fin_received(d) says so: both FINs then need one check), call
//     shutdown_peer_when_drained(d, read()) until it returns true: it half-closes the
//     destination only once every redirected byte has reached its TCP send queue. (A
//     relayed direction forwards EOF itself, after flushing what it holds.)
//     There is no event for "drained": re-check on a short timer (a few ms) until true.
//     One read() per check serves every question of that check (progress, drained,
//     holding): each takes the PairState and makes no system call of its own.
//  4. Backpressure: the redirect has none of its own (a destination that reads slower than
//     its source sends makes the kernel queue without limit, outside TCP's accounting).
//     Check progress(d, read()).undelivered periodically (every few ms while bytes move; the
//     same reading serves step 2's passed_bytes and step 3). Above a high mark,
//     pause(d): the verdict stops redirecting and leaves what arrives on the source socket,
//     charged to its receive buffer, so TCP's own flow control throttles the sender. While
//     holding(d, stats), call relay_held(d) every check (1 ms): once every redirected byte is in the
//     destination's send queue it moves the held bytes there itself, as fast as the
//     destination takes them; each read reopens the source's window at once, so the sender
//     never waits for a zero-window probe. At or below a low mark, resume(d): the verdict
//     redirects again as soon as every held byte is in the destination's send queue.
//     (Order: held bytes are written only after every earlier redirected byte is queued, and
//     nothing is redirected while a held byte is not: docs/splice.md.)
//     over_budget(budget) stays as the last resort: abort() and close both fds (RST to
//     both ends).
//     POLLERR / POLLHUP on either socket (a reset end): abort() as well. relay_held() failing
//     with EPIPE or ECONNRESET means the same: that send took the socket's error, and its
//     POLLERR may never come.
//  5. When both directions are shut down (or after abort), destroy the SplicedPair, then
//     close the fds. Destroying it earlier drops bytes still queued toward a socket.
// Every SplicedPair must be destroyed before the SpliceEngine that made it.
#include <cstddef>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "bpf/held_repeats.h"
#include "bpf/splice_sockets.h"

struct splice;  // the generated skeleton (splice.skel.h), kept out of this header

namespace snisplice::bpf {

// Why a pair could not be spliced. Every case means: relay this connection in userspace.
enum class SpliceFailure {
  not_established,  // a socket is not ESTABLISHED (e.g. CLOSE_WAIT after an early FIN)
  partly_read,      // bytes wait on a socket userspace has read from: read it until EAGAIN,
                    // replay, and call splice() again (or relay)
  map_full,         // max_sockets reached
  lost,             // an insert was refused after the first socket's verdict took bytes; removing
                    // its entry dropped them: the connection cannot go on, reset both ends
  system,           // anything else (errno in SpliceError)
};
std::string_view to_string(SpliceFailure failure);

struct SpliceError {
  SpliceFailure failure;
  int error_number;  // errno of the failing call
  std::string message;
  // What the verdict took from a socket already inserted when a later step failed, read back
  // before its entry went: owed to the peer ahead of anything read from that socket afterwards.
  // Empty when lost.
  std::vector<uint8_t> from_client = {};
  std::vector<uint8_t> from_backend = {};
};

// What the caller's reads left on the sockets it passes to splice().
enum class ReadsBefore {
  // Nothing read, or read until EAGAIN. Checked: a socket with bytes queued behind bytes read
  // is refused (partly_read).
  eagain,
  // The caller's last read of each socket it read from returned fewer bytes than it asked for,
  // and none followed. tcp_recvmsg stops short of its length only when no queued segment holds
  // a byte at or after the read position (or at an urgent mark, which splice() checks), so
  // every segment queued then is whole and the verdict may be handed it.
  ended_short,
};

enum class Direction { client_to_backend, backend_to_client };

// Counters of one direction, i.e. of its source socket's receive side.
struct DirectionStats {
  uint64_t redirected_bytes = 0;  // handed to the destination's egress by the verdict
  uint64_t redirected_skbs = 0;
  uint64_t passed_bytes = 0;  // left readable on the source socket (userspace owns them)
  uint64_t held_bytes = 0;    // left on the source socket while paused (relay_held moves them)
  bool fin_seen = false;      // a bare FIN reached the verdict (one riding on data does not)
  // Skbs the kernel handed over twice (splice_abi.h): how many, the latest few, and their
  // repeated bytes in all (held_bytes counts them, TCP received them once).
  uint32_t repeats = 0;
  RepeatSlots repeat_slots = {};
  uint64_t repeated_bytes = 0;
  // Repeats that came while the direction was passed: the stream can no longer be kept exact.
  uint32_t unplaced_repeats = 0;
};

struct PairStats {
  DirectionStats client_to_backend;
  DirectionStats backend_to_client;
  const DirectionStats& operator[](Direction direction) const {
    return direction == Direction::client_to_backend ? client_to_backend : backend_to_client;
  }
};

// One consistent reading of a pair: counters first, so every byte they count as redirected
// was received before the sockets were read.
struct PairState {
  PairStats stats;
  SocketState client;
  SocketState backend;
};

// Redirected bytes not yet in the destination's send queue. `delivered` counts only bytes
// the verdict put there (bytes_into_send_queue minus what was in it before splice()).
constexpr uint64_t undelivered_bytes(uint64_t redirected, uint64_t delivered) {
  return redirected > delivered ? redirected - delivered : 0;
}
constexpr bool drained(uint64_t redirected, uint64_t delivered) {
  return delivered >= redirected;
}
// Bytes a source received since splice() that no verdict has counted: each skb's bytes are
// counted once, as redirected, passed or held, and a repeated head is counted again in held.
constexpr uint64_t unseen_bytes(uint64_t received_since_splice, const DirectionStats& counters) {
  const uint64_t seen =
      counters.redirected_bytes + counters.passed_bytes + counters.held_bytes - counters.repeated_bytes;
  return received_since_splice > seen ? received_since_splice - seen : 0;
}

// Occupancy of the maps (entries, not pairs): for metrics and leak checks.
struct MapOccupancy {
  size_t peer_entries = 0;
  size_t stats_entries = 0;
  size_t control_entries = 0;
};

class SplicedPair;

// Owns the loaded skeleton: the maps and the verdict attached to splice_peers.
// One per process; its const methods may be called from any thread at once.
class SpliceEngine {
 public:
  // Opens and loads ebpf/splice.bpf.c sized for max_sockets sockets (two per pair) and
  // attaches the verdict. Needs CAP_BPF + CAP_NET_ADMIN; errors carry the errno text.
  static tl::expected<SpliceEngine, Error> load(uint32_t max_sockets);

  SpliceEngine(SpliceEngine&& other) noexcept;
  SpliceEngine& operator=(SpliceEngine&& other) noexcept;
  SpliceEngine(const SpliceEngine&) = delete;
  SpliceEngine& operator=(const SpliceEngine&) = delete;
  ~SpliceEngine();

  // Splices two connected TCP sockets; the caller keeps owning the fds. On success bytes
  // flow in the kernel both ways, including any already queued. On failure nothing is left.
  tl::expected<SplicedPair, SpliceError> splice(int client_fd, int backend_fd,
                                                ReadsBefore reads = ReadsBefore::eagain) const;

  tl::expected<MapOccupancy, Error> occupancy() const;

  // For bpftool-style inspection and tests: the maps described in splice_abi.h.
  int peers_map_fd() const;
  int stats_map_fd() const;
  int control_map_fd() const;

 private:
  explicit SpliceEngine(struct splice* skeleton) noexcept : skeleton_(skeleton) {}
  void destroy() noexcept;

  struct splice* skeleton_ = nullptr;
};

// One spliced connection. Destroying it removes both sockhash entries, both stats entries
// and any control entry; the sockets then behave as plain sockets again (bytes still queued toward
// one of them in the splice are lost: destroy only after draining or aborting).
class SplicedPair {
 public:
  SplicedPair(SplicedPair&& other) noexcept;
  SplicedPair& operator=(SplicedPair&& other) noexcept;
  SplicedPair(const SplicedPair&) = delete;
  SplicedPair& operator=(const SplicedPair&) = delete;
  ~SplicedPair();

  int client_fd() const { return client_.fd; }
  int backend_fd() const { return backend_.fd; }

  // Counters from the stats map (zeros once the pair is released).
  PairStats stats() const;
  // Everything one check needs, read once: the counters first, then each socket's TCP_INFO
  // and SIOCOUTQ (2 lookups, 2 getsockopt, 2 ioctl). The questions below answer from it.
  tl::expected<PairState, Error> read() const;

  // Bytes put into the destination's TCP send queue in direction d since splice(), by the
  // verdict or by relay_held().
  uint64_t delivered(Direction direction, const PairState& state) const;
  tl::expected<uint64_t, Error> delivered(Direction direction) const;
  // The source of direction d has received a FIN (its counters are final).
  bool fin_received(Direction direction, const PairState& state) const;
  // True when every byte the source has received went through the verdict and every
  // redirected or held byte is in the destination's send queue. Call after the source's FIN
  // (POLLRDHUP): a FIN can be seen before the verdict ran on the bytes in front of it.
  bool drained(Direction direction, const PairState& state) const;
  tl::expected<bool, Error> drained(Direction direction) const;
  // Bytes the source of direction d has received that no verdict has seen yet. Bytes in
  // flight between the counters and TCP_INFO show here for a moment; bytes that stay are
  // stranded on the source's receive queue (docs/splice.md, "Stranded bytes"): kick_source(d).
  uint64_t unseen(Direction direction, const PairState& state) const;
  // Runs the verdict on whatever waits on the source's receive queue (SO_RCVLOWAT, as at
  // splice()). False with errno set when the setsockopt fails.
  bool kick_source(Direction direction) const;
  // Half-closes the destination of direction d (shutdown SHUT_WR) if it is drained.
  // Returns true once done (then and on later calls), false while bytes are on their way.
  tl::expected<bool, Error> shutdown_peer_when_drained(Direction direction, const PairState& state);
  tl::expected<bool, Error> shutdown_peer_when_drained(Direction direction);
  // Redirected bytes of direction d not yet in the destination's send queue: kernel memory
  // that TCP does not account for (held bytes are not counted: TCP accounts for them).
  tl::expected<uint64_t, Error> undelivered(Direction direction) const;
  // Both at once.
  struct Progress {
    uint64_t delivered = 0;
    uint64_t undelivered = 0;
  };
  Progress progress(Direction direction, const PairState& state) const;
  // True when either direction holds more than budget_bytes redirected but undelivered.
  tl::expected<bool, Error> over_budget(uint64_t budget_bytes) const;
  // Holds direction d back (step 4 above) until resume(d): from the next segment on the
  // verdict leaves what the source receives on its socket, under TCP flow control.
  tl::expected<void, Error> pause(Direction direction);
  // Lets the verdict redirect again, once every held byte has been relayed.
  tl::expected<void, Error> resume(Direction direction);
  bool paused(Direction direction) const;
  // Paused, or held bytes not yet all in the destination's send queue: call relay_held(d).
  bool holding(Direction direction, const PairStats& counters) const;
  bool holding(Direction direction) const;
  // Moves held bytes of direction d from the source to the destination (non-blocking reads
  // and writes, at most max_bytes per call), only after every redirected byte is in the
  // destination's send queue. Returns the bytes written into the destination's send queue.
  tl::expected<uint64_t, Error> relay_held(Direction direction, uint64_t max_bytes = 4u << 20);
  // Held bytes of direction d written into the destination's send queue so far.
  uint64_t relayed(Direction direction) const;
  // Bytes of direction d's held stream read so far, repeated ones included: what held_bytes
  // reaches once every held byte is relayed.
  uint64_t taken(Direction direction) const;
  // Removes the map entries, as destruction does, and returns the counters read as the stats
  // entries go: after the sockhash entries, so no verdict of this pair starts later (one
  // already running on another CPU may still count). Zeros when already removed.
  PairStats remove() noexcept;
  // Whether direction d can no longer be carried exactly: the kernel handed an skb over twice
  // where its repeated bytes cannot be cut out (while passed, or more repeats than slots
  // between two of relay_held's readings; splice_abi.h). The caller then abort()s the pair:
  // a reset, never a corrupted stream.
  bool broken(Direction direction, const PairStats& counters) const;
  // Removes the map entries and sets SO_LINGER {on, 0} on both sockets, so that closing
  // them (the caller's job, right after) sends RST to both ends instead of a FIN.
  void abort();

 private:
  friend class SpliceEngine;
  struct Side {
    int fd = -1;
    uint64_t cookie = 0;
    uint64_t queue_baseline = 0;     // bytes_into_send_queue(fd) at splice time
    uint64_t received_baseline = 0;  // bytes userspace had read from fd at splice time
    bool shut_down = false;
    bool paused = false;  // pause() told the verdict to hold what this socket receives
    bool has_control = false;  // a splice_control entry exists (made by the first pause)
  };
  // relay_held()'s state for one direction, made on first use: most pairs never hold.
  struct HeldRelay {
    uint64_t relayed = 0;      // held bytes written to the peer
    uint64_t taken = 0;        // bytes read from the held stream, repeats included (published
                               // as relayed_bytes once none is in hand)
    std::string in_hand = {};  // held bytes read but not yet accepted by the peer's send()
    HeldRepeats repeats = {};  // repeated stretches (splice_abi.h) still to drop
    bool repeats_lost = false;  // one could not be placed: broken()
  };
  SplicedPair(int peers_map_fd, int stats_map_fd, int control_map_fd, Side client, Side backend) noexcept
      : peers_map_fd_(peers_map_fd),
        stats_map_fd_(stats_map_fd),
        control_map_fd_(control_map_fd),
        client_(client),
        backend_(backend),
        in_maps_(true) {}
  void release() noexcept;
  tl::expected<void, Error> publish_control(Direction direction);
  const HeldRelay* held_relay(Direction direction) const;
  // The counters and the destination of d only: enough for progress(d).
  tl::expected<PairState, Error> read_destination(Direction direction) const;
  const SocketState& source_state(Direction direction, const PairState& state) const;
  const SocketState& destination_state(Direction direction, const PairState& state) const;
  Side& source(Direction direction);
  const Side& source(Direction direction) const;
  Side& destination(Direction direction);
  const Side& destination(Direction direction) const;

  int peers_map_fd_ = -1;
  int stats_map_fd_ = -1;
  int control_map_fd_ = -1;
  Side client_;
  Side backend_;
  std::unique_ptr<std::array<HeldRelay, 2>> held_relays_;  // by Direction
  bool in_maps_ = false;
};

}  // namespace snisplice::bpf
