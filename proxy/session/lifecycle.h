#pragma once
// The rules of a connection's life as pure decisions over plain state: how it ends (result,
// which end survives, FIN or RST), what a deadline means in each phase, and when a direction
// pauses or resumes. The worker's relay and splice stages gather the facts (socket flags,
// queue lengths, BPF counters) and act on the answer; nothing here does I/O or reads a clock.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "session/result.h"

namespace snisplice::session {

using Clock = std::chrono::steady_clock;

enum class Phase {
  hello,       // reading the PROXY header (when trusted) and the ClientHello / request head
  resolving,   // waiting for the DNS answer of a resolve route
  connecting,  // dialling the backend's servers (or the resolved addresses) in order
  preamble,    // writing the PROXY header and the buffered hello to the backend
  relaying,    // userspace relay: multishot recv + one send in flight per direction
  spliced,     // the kernel carries the bytes; we watch for FIN, errors and the budget
  closing,     // cancelling what is in flight; freed when nothing is
};

// After one end failed, the other one is sent everything it is owed, then a FIN.
enum class Survivor { none, client, backend };

namespace lifecycle {

// One direction (client -> backend is "up") as the ending rule sees it.
struct DirectionEnd {
  bool source_failed = false;  // its source reset or errored: no more bytes will come
  bool sink_failed = false;    // sending to its sink failed: what it is owed is lost
  bool shut = false;           // its sink got a FIN after every byte its source sent
  bool delivered = false;      // its sink has every byte it is owed; read only once an end failed
};

// Whether an end of the connection failed (its socket reset or errored).
bool any_end_failed(const DirectionEnd& up, const DirectionEnd& down);

struct Ending {
  Result result;
  Survivor survivor = Survivor::none;
};

// How a connection past its preamble ends, or nullopt while it goes on. Once an end failed,
// it ends when what the other end is owed has been delivered (or cannot be): that end
// survives and gets a FIN. With no failure it ends once both sinks got their FIN.
std::optional<Ending> ending(const DirectionEnd& up, const DirectionEnd& down);

// Whether the end of stream a direction just passed on (marked shut in `up` or `down`) can go
// with the connection's close instead of a shutdown() of its own: only when that ends the
// connection cleanly, so the close follows at once and sends the FIN after the queued bytes.
bool fin_with_close(const DirectionEnd& up, const DirectionEnd& down);

// How the sockets close. A FIN tells a peer it has every byte: when the proxy gives up (idle,
// shutdown) while it still holds bytes one end sent, both ends get a reset instead, so a
// truncated stream never looks complete. A survivor is owed its FIN: it got every byte.
enum class Close { fin, reset, reset_if_undelivered };
Close closing(bool abort, bool connected, Survivor survivor);

// The hello is read with MSG_PEEK: each peek returns every byte queued so far, and a peek after
// the first follows a poll with SO_RCVLOWAT above what was peeked. A peek with no more bytes
// means the client shut down or reset (the poll said so, or a first peek found EOF), or else
// that the poll woke on receive-buffer pressure: the window is closed on an incomplete hello.
enum class PeekStep { parse, client_closed, buffer_full };
PeekStep after_peek(size_t peeked_before, size_t peeked_now, bool hung_up);

// How the bytes of a connection move once the backend is connected. The verdict is handed whole
// skbs, so a client socket userspace consumed bytes from (a trusted inbound PROXY header) could
// have the consumed part forwarded again: such a connection is relayed in userspace.
enum class DataPath { splice, relay };
DataPath data_path(bool kernel_splice, size_t consumed_from_client);

// `splice: auto` relays a connection first and hands it to the kernel once it has proven bulk:
// this many bytes relayed in one direction. Per connection the splice costs a fixed ~90 us of
// CPU more than the relay (docs/short-connections.md) and saves per byte; a connection that
// moved 128 KiB is likely to move much more, while one-exchange connections never get there.
// A connection open long but moving little costs the relay next to nothing, so time alone
// does not count. A direction at EOF keeps it on the relay (its socket cannot be inserted).
inline constexpr uint64_t kHandOverBytes = 128u << 10;
bool hand_over(uint64_t bytes_up, uint64_t bytes_down, bool any_eof, uint64_t threshold = kHandOverBytes);

// The hand-over reads each socket once more, asking for more than it holds: a read that
// returns less emptied the queue, so every segment queued behind it is whole and the verdict
// may take it (proxy/bpf/splice_engine.h, ReadsBefore::ended_short). That socket is not read
// again before splice(); what was read goes to the sink first (through the ring if the sink
// does not take it at once). A sender that fills every read, or a queue larger than a read or
// than the sink's room, sends the connection back to the relay, to be tried again later
// (next_hand_over). Reads are synchronous: the bounds keep the worker's other connections from
// waiting long.
struct HandOverLimits {
  unsigned reads;       // per attempt, both sockets together
  size_t read_bytes;    // one read: what is queued plus kHandOverReadSlack must fit
  size_t unsent_bytes;  // read beyond the sink's room, kept in memory until the sink takes it
};
inline constexpr HandOverLimits kHandOverLimits{16, 8u << 20, 1u << 20};
// Asked for beyond what a socket holds: a read that fills this much too is not short.
inline constexpr size_t kHandOverReadSlack = 256u << 10;
enum class HandOverStep {
  splice,          // both sockets' last reads were short and the sinks took every byte read
  wait_for_sinks,  // send what the sinks did not take through the ring, then go on
  read_again,      // a read came back full: read that socket again
  back_off,        // back to the relay once what was read is sent; maybe try later (next_hand_over)
  give_up,         // back to the relay for good, once what was read is sent
};
struct HandOverProgress {
  unsigned reads = 0;        // done in this attempt
  bool ended = false;        // a socket read EOF or an error, or a sink failed
  bool too_large = false;    // a queue too large for one read or for its sink's room
  bool both_short = false;   // each socket's last read emptied its queue
  bool unsent = false;       // bytes read wait for a sink
};
HandOverStep after_drain(const HandOverProgress& progress, HandOverLimits limits = kHandOverLimits);
// Whether a queue of `queued` bytes may be read now, with `sink_room` bytes free in its sink.
bool drain_fits(size_t queued, size_t sink_room, HandOverLimits limits = kHandOverLimits);

// After a hand-over backed off (bytes kept coming): the bytes one direction must have moved
// before the next try, twice what the busier one moved so far, or nullopt once `attempts`
// tries have failed: the connection stays on the relay.
inline constexpr unsigned kHandOverAttempts = 6;
std::optional<uint64_t> next_hand_over(uint64_t bytes_up, uint64_t bytes_down, unsigned attempts,
                                       unsigned max_attempts = kHandOverAttempts);

// What a session's deadline means in its phase: the absolute hello deadline, the idle timeout
// (re-armed from the last activity while there was some), or the splice's periodic check.
enum class DeadlineAction { none, hello_timeout, idle_timeout, rearm_idle, check_splice };
struct DeadlineVerdict {
  DeadlineAction action = DeadlineAction::none;
  Clock::time_point rearm_at{};  // for rearm_idle
};
DeadlineVerdict on_deadline(Phase phase, Clock::time_point now, Clock::time_point last_activity,
                            Clock::duration idle);

// No bytes moved either way for `idle`.
bool idle_expired(Clock::time_point now, Clock::time_point last_activity, Clock::duration idle);

// Pausing and resuming a direction whose sink is slower than its source. The gap between the
// marks keeps the sink fed while the source's backlog flows in again.
enum class Pacing { keep, pause, resume };

// Userspace relay: in unsent received buffers of the direction.
struct RelayMarks {
  size_t pause_at;   // stop receiving at this many
  size_t resume_at;  // receive again at this many or fewer
};
inline constexpr RelayMarks kRelayMarks{4, 2};
// `receiving`: a receive is armed (a pause cancels any; a resume waits for its last completion).
Pacing relay_pacing(bool paused, bool receiving, size_t pending, RelayMarks marks = kRelayMarks);

// While a receive waits for a buffer of the worker's shared ring, every direction whose sink has
// taken nothing of a send for this long copies its buffers out and gives them back, so that
// sinks that stopped reading cannot hold them all; checked this often.
inline constexpr auto kSinkStalledAfter = std::chrono::milliseconds(50);
bool sink_stalled(Clock::time_point send_started_at, Clock::time_point now);

// Splice: in bytes the kernel redirected but the sink's send queue has not taken (memory TCP
// does not account for).
struct SpliceMarks {
  uint64_t pause_above;
  uint64_t resume_below;  // resume at this many or fewer
};
inline constexpr SpliceMarks kSpliceMarks{16u << 20, 4u << 20};
Pacing splice_pacing(bool paused, uint64_t undelivered, SpliceMarks marks = kSpliceMarks);

}  // namespace lifecycle
}  // namespace snisplice::session
