#pragma once
// One worker thread: its own io_uring, its own SO_REUSEPORT listener sockets, and every
// connection it accepted, carried through accept -> hello -> route -> connect -> preamble
// -> relay or splice -> close.
#include <sys/eventfd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <mutex>
#include <set>
#include <unordered_map>
#include <string>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

#include "base/error.h"
#include "base/unique_fd.h"
#include "flow/accept/admission.h"
#include "flow/close/access_log.h"
#include "flow/connect/backend_pool.h"
#include "flow/resolve/dns_cache.h"
#include "flow/resolve/resolver.h"
#include "io/ring.h"
#include "metrics/metrics.h"
#include "runtime/shared.h"
#include "session/lifecycle.h"
#include "session/session.h"

namespace snisplice::session {

using runtime::Published;
using runtime::WorkerShared;

// The backend pools of one runtime generation, per worker (balancing state is per worker;
// health is shared through the HealthBoard).
class WorkerPools {
 public:
  WorkerPools(const runtime::Snapshot& runtime, runtime::HealthBoard& health);
  // nullptr when the backend is not defined (never, for a validated config).
  connect::BackendPool* pool(const std::string& name);
  uint64_t generation() const { return generation_; }

 private:
  struct Entry {
    std::string name;
    connect::BackendPool pool;
    std::vector<std::shared_ptr<std::atomic<bool>>> up;
  };
  uint64_t generation_;
  std::vector<Entry> entries_;
};

class Worker {
 public:
  // A worker with its ring, its buffers and its own SO_REUSEPORT listener sockets. Workers are
  // created in index order, so worker i owns the i-th socket of every listening group;
  // `steer_by_cpu` (accept/cpu_placement.h) makes worker 0 attach the steering program.
  static tl::expected<std::unique_ptr<Worker>, Error> create(WorkerShared& shared, unsigned index,
                                                             bool steer_by_cpu);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void run();   // the thread body: returns after a stop once every connection is gone
  void wake();  // called from the daemon thread after changing shared state

 private:
  Worker(WorkerShared& shared, unsigned index, io::Ring ring, UniqueFd wake_fd);
  tl::expected<void, Error> bind_listeners(bool steer_by_cpu);

  struct ListenerSocket {
    std::string listener;  // its name: indexes change when a reload edits the list
    UniqueFd fd;
    // The address every connection it accepts arrives on, when there is only one (a specific
    // address, not transparent): spares a getsockname() per connection.
    std::optional<SocketAddress> local_address;
    bool accept_armed = false;
    std::chrono::steady_clock::time_point retry_at{};  // accept back-off after EMFILE
  };

  static constexpr uint16_t kBufferGroup = 1;

  // accept and hello (hello.cpp)
  void arm_accept(size_t socket_index);
  void on_accept(size_t socket_index, int result, bool more);
  void start_session(const ListenerSocket& listener, UniqueFd client);
  // The hello is peeked (MSG_PEEK) into s.preread.inbound after the consumed PROXY header; to wait
  // for more than was peeked, SO_RCVLOWAT is raised and the socket polled.
  void arm_hello_recv(Session& s);
  void on_hello_recv(Session& s, int result);
  void wait_for_more_hello(Session& s);
  void on_hello_poll(Session& s, int result);
  // SO_RCVLOWAT back to 1 before the data path (the relay's reads and the kernel's kick).
  void reset_low_water(Session& s);
  // Reads and drops the peeked bytes of a connection closed before its data path, so that the
  // close sends a FIN (unread bytes would make it a RST).
  void discard_peeked_hello(Session& s);
  void on_hello_complete(Session& s);
  // dial (dial.cpp)
  void route(Session& s);
  void resolve_route(Session& s, const config::Route& route);
  void on_resolved(Session& s, const resolve::Answer& answer, uint16_t port);
  void connect_next(Session& s);
  void on_connect(Session& s, int result);
  void send_preamble(Session& s);
  void on_preamble_sent(Session& s, int result);
  void start_data_path(Session& s);
  // userspace relay (relay.cpp)
  void arm_relay_recv(Session& s, bool upstream);
  void on_relay_recv(Session& s, bool upstream, const io::Completion& done);
  void send_next(Session& s, bool upstream);
  void on_relay_sent(Session& s, bool upstream, int result);
  bool shut_sink_when_flushed(Session& s, bool upstream);
  void maybe_finish_relay(Session& s);
  // A ring buffer whose bytes were sent on, or copied out: back to the kernel, and a starved
  // connection may receive again.
  void give_back(uint16_t buffer_id);
  // Copies a direction's unsent ring buffers out and gives them back (ring buffers scarce).
  void spill(Session& s, bool upstream);
  // While receives wait for a buffer: directions whose sink took nothing for a while spill.
  void spill_stalled(Clock::time_point now);
  // splice: auto (relay.cpp): stop the relay's receives, flush, read each socket until a read
  // comes back short, send what was read, then splice; or back to the relay.
  void begin_hand_over(Session& s);
  void continue_hand_over(Session& s);
  // One read of a source, sent on to its sink as far as the sink takes it at once; false when
  // the queue is too large for one read or for the sink's room.
  bool drain_source(Session& s, bool upstream);
  void send_drained(Session& s, bool upstream);  // what the sink did not take, through the ring
  void on_drained_sent(Session& s, bool upstream, int result);
  // After the drained bytes are sent: the relay again, for good or until the next attempt.
  void back_to_relay(Session& s);

  // Bytes taken from a direction's source on their way to its sink, by whichever path: the
  // access log's and the metrics' count.
  void count_moved(Session& s, bool upstream, uint64_t bytes);

  // splice (splice.cpp)
  // True when the connection went to the kernel or ended; false: the relay carries it.
  bool try_splice(Session& s);
  // After a failed splice(): what it read back from an inserted socket is queued ahead of the
  // relay's reads; false when bytes were lost (the connection is reset and finished).
  bool take_read_back(Session& s, bpf::SpliceError& error);
  void enter_kernel(Session& s, bpf::SplicedPair pair);
  void arm_splice_poll(Session& s, bool client_side);
  void on_splice_poll(Session& s, bool client_side, int result);
  // While the checks back off: the first segment a source receives wakes a check at once.
  void arm_splice_wake(Session& s, const bpf::PairStats& stats);
  void on_splice_wake(Session& s, bool client_side);
  void check_splice(Session& s, Clock::time_point now);
  // Pauses or resumes a spliced direction by its undelivered bytes; true when it did either.
  bool pace_direction(Session& s, bool upstream, uint64_t undelivered);
  bool count_splice_bytes(Session& s, const bpf::PairStats& stats);
  // close (close.cpp)
  // Every exit of a connection, whatever its phase (close.cpp).
  void finish(Session& s, Result result, bool abort);
  void end_with(Session& s, const lifecycle::Ending& ending);
  void release(Session& s);
  void linger_close(UniqueFd fd);
  void close_lingering(Clock::time_point now);

  // timers
  void set_deadline(Session& s, Clock::time_point when);
  void run_deadlines(Clock::time_point now);
  void on_deadline(Session& s, Clock::time_point now);

  // DNS: c-ares sockets polled through the ring, its timers folded into the ring wait (dns.cpp)
  void refresh_resolver(const config::Dns& dns);
  void watch_dns(resolve::Resolver* owner, int fd, bool read, bool write);
  void arm_dns_poll(int fd);
  void on_dns_poll(int fd, uint32_t serial, int result);
  std::optional<Clock::time_point> dns_deadline(Clock::time_point now) const;
  void run_dns_timers();

  // plumbing
  Session* session_for(uint32_t slot, uint32_t generation);
  Session& new_session();
  // The tag of an operation `s` submits, counted in flight until its final completion.
  io::OpTag tag_for(Session& s, uint8_t kind);
  void arm_wake();
  void dispatch(const io::Completion& done);
  void begin_stop();
  void recycle_buffers(Direction& d);

  WorkerShared& shared_;
  unsigned index_;
  io::Ring ring_;
  std::optional<io::BufferRing> buffers_;
  UniqueFd wake_fd_;
  uint64_t wake_value_ = 0;
  Published published_;
  std::shared_ptr<WorkerPools> pools_;
  std::vector<ListenerSocket> listeners_;
  std::vector<std::unique_ptr<Session>> slots_;
  std::vector<uint32_t> generations_;  // per slot: bumped at each reuse
  std::vector<uint32_t> free_slots_;
  size_t live_sessions_ = 0;
  std::set<std::pair<Clock::time_point, uint32_t>> deadlines_;
  std::vector<uint32_t> waiting_for_buffers_;
  Clock::time_point last_spill_{};
  bool capped_receives_ = true;  // until the kernel refuses the multishot byte cap
  // The hand-over's reads, sent on from here at once: only what a sink does not take is copied
  // into the connection (no per-connection buffer churn).
  std::vector<uint8_t> drain_buffer_;
  struct Lingering {
    UniqueFd fd;
    Clock::time_point until;
  };
  std::vector<Lingering> lingering_;
  bool stopping_ = false;
  Clock::time_point last_socket_warning_{};

  struct DnsWatch {
    resolve::Resolver* owner;
    uint32_t serial;  // tags the armed poll, so a completion for a closed fd is recognised
    bool read;
    bool write;
    bool armed;
  };
  std::unique_ptr<resolve::Resolver> resolver_;
  config::Dns resolver_config_;
  std::vector<std::unique_ptr<resolve::Resolver>> retired_resolvers_;  // freed once idle
  std::unordered_map<int, DnsWatch> dns_watches_;
  uint32_t dns_serial_ = 0;
};

}  // namespace snisplice::session
