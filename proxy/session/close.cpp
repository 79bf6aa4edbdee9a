// Close: every exit of a connection goes through finish(), which decides FIN or RST and
// cancels what is in flight; release() then closes the sockets (a survivor lingers until it
// has its bytes), updates the gauges and counters, and writes the access-log line.
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>

#include "events/finished.h"
#include "session/lifecycle.h"
#include "session/op_kind.h"
#include "session/worker.h"

namespace snisplice::session {
namespace {

// How long a surviving socket may keep unsent bytes after its peer failed (checked by the loop,
// worker.cpp).
constexpr auto kLingerLimit = std::chrono::seconds(5);

// Whether bytes one end sent, which this host's kernel acknowledged to it, have not reached the
// other end's send queue yet: unread on the source socket, in the relay's buffers, redirected by
// the kernel but not delivered, or the preamble's tail.
bool holds_undelivered(const Session& s) {
  if (s.preamble_sent < s.preamble.size()) return true;
  for (bool upstream : {true, false}) {
    const Direction& d = upstream ? s.up : s.down;
    if (!d.pending.empty() || d.send_in_flight || d.drain.sent < d.drain.bytes.size()) return true;
    // A relayed source that read its end of stream has nothing unread: no byte follows a FIN,
    // so the usual close (both ends finished) asks the kernel nothing.
    const bool read_to_end = d.eof && !d.kernel.carries;
    int source = upstream ? s.client.get() : s.backend.get();
    int unread = 0;
    if (!d.source_failed && !read_to_end && source >= 0 && ::ioctl(source, SIOCINQ, &unread) == 0 && unread > 0)
      return true;
    if (s.kernel.pair && d.kernel.carries) {
      auto left = s.kernel.pair->undelivered(upstream ? bpf::Direction::client_to_backend
                                               : bpf::Direction::backend_to_client);
      if (!left || *left > 0) return true;
    }
  }
  return false;
}

// A survivor's bytes toward its failed peer went nowhere: its close must say so with a RST
// (close() does that by itself for bytes still queued). Bytes a spliced socket held left with
// its psock when the pair was removed: TCP still counts them unread (SIOCINQ), but close()
// finds an empty queue and sends a FIN, and a peer still sending then waits on a closed
// window (seen under ASan: an upload toward a closed backend hung for its 20 s).
void reset_if_unread(const UniqueFd& fd) {
  int unread = 0;
  if (::ioctl(fd.get(), SIOCINQ, &unread) != 0 || unread == 0) return;
  linger hard{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
}

}  // namespace

void Worker::recycle_buffers(Direction& d) {
  for (const Chunk& chunk : d.pending) {
    if (!chunk.copy) give_back(chunk.buffer_id);
  }
  d.pending.clear();
}

void Worker::linger_close(UniqueFd fd) {
  if (!fd) return;
  ::shutdown(fd.get(), SHUT_WR);
  int unsent = 0;
  // close() now would reset the connection if unread bytes are queued, dropping what we sent
  // but the kernel has not: keep the socket until the peer has it all, or a bounded while.
  if (::ioctl(fd.get(), SIOCOUTQ, &unsent) == 0 && unsent > 0) {
    lingering_.push_back({std::move(fd), Clock::now() + kLingerLimit});
    return;
  }
  reset_if_unread(fd);
}

void Worker::close_lingering(Clock::time_point now) {
  std::erase_if(lingering_, [now](Lingering& l) {
    int unsent = 0;
    const bool done = now >= l.until || ::ioctl(l.fd.get(), SIOCOUTQ, &unsent) < 0 || unsent == 0;
    if (done) reset_if_unread(l.fd);
    return done;
  });
}

void Worker::finish(Session& s, Result result, bool abort) {
  if (s.phase == Phase::closing) return;
  switch (lifecycle::closing(abort, s.connected, s.survivor)) {
    case lifecycle::Close::fin: break;
    case lifecycle::Close::reset: break;
    case lifecycle::Close::reset_if_undelivered: abort = holds_undelivered(s); break;
  }
  if (s.lazy.enabled) {
    // splice: auto, never handed to the kernel: it ended up relayed.
    s.lazy.enabled = false;
    shared_.metrics.spliced_userspace.Increment();
    shared_.event_bus.emit([&] { return events::Spliced{s.client_address, "userspace"}; });
  }
  const Phase was = s.phase;
  s.result = result;
  s.abort = abort;
  s.phase = Phase::closing;
  set_deadline(s, {});
  if (s.inflight == 0) return release(s);
  // Each operation that may be in flight is cancelled by its own tag, which the kernel finds
  // by hash. A cancel by descriptor walks every poll the ring holds (two per spliced
  // connection): with thousands of idle connections, each close would take milliseconds.
  // A cancel finding nothing (the operation completed meanwhile) is harmless.
  auto cancel = [&](OpKind kind) {
    ring_.cancel(io::OpTag{kind, s.slot, s.generation}, tag_for(s, kCancel));
  };
  switch (was) {
    case Phase::hello:
      cancel(kHelloRecv);
      cancel(kHelloPoll);
      return;
    case Phase::connecting: cancel(kConnect); return;  // its linked timeout ends with it
    case Phase::preamble: cancel(kPreamble); return;
    case Phase::resolving:
    case Phase::closing: return;
    case Phase::spliced:
      cancel(kSplicePollClient);
      cancel(kSplicePollBackend);
      if (s.kernel.wake_armed_client) cancel(kSpliceWakeClient);
      if (s.kernel.wake_armed_backend) cancel(kSpliceWakeBackend);
      break;  // and any direction the relay took over
    case Phase::relaying: break;
  }
  for (bool upstream : {true, false}) {
    const Direction& d = upstream ? s.up : s.down;
    if (d.recv_armed) cancel(upstream ? kRecvUp : kRecvDown);
    if (d.send_in_flight) cancel(upstream ? kSendUp : kSendDown);
    if (d.drain.in_flight) cancel(upstream ? kDrainedUp : kDrainedDown);
  }
}

void Worker::end_with(Session& s, const lifecycle::Ending& ending) {
  s.survivor = ending.survivor;
  finish(s, ending.result, false);
}

void Worker::release(Session& s) {
  recycle_buffers(s.up);
  recycle_buffers(s.down);
  if (s.kernel.pair) {
    // The entries go before the fds close (nothing may stay queued toward them), and the
    // counters read as they go are the final ones.
    count_splice_bytes(s, s.kernel.pair->remove());
    if (s.abort) s.kernel.pair->abort();
    s.kernel.pair.reset();
  }
  if (s.abort) {
    // SO_LINGER 0: the close sends RST, so a peer never mistakes an abort for a clean end.
    linger hard{1, 0};
    for (int fd : {s.client.get(), s.backend.get()})
      if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  }
  if (!s.abort) discard_peeked_hello(s);  // so that closing the client sends a FIN, not a RST
  if (s.survivor != Survivor::none) {
    bool client_survives = s.survivor == Survivor::client;
    UniqueFd& failed = client_survives ? s.backend : s.client;
    linger hard{1, 0};
    if (failed) ::setsockopt(failed.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    linger_close(std::move(client_survives ? s.client : s.backend));
  }
  // Closed with the loop's next submission: two system calls fewer per connection.
  ring_.close(std::move(s.client), io::OpTag{kClose, 0, 0});
  ring_.close(std::move(s.backend), io::OpTag{kClose, 0, 0});

  const std::string& listener = s.listener_name;
  const std::string& route_label =
      s.routed ? s.runtime->route_labels[s.runtime->listener_table[s.listener]][s.route] : std::string();
  Result result = s.result.value_or(Result::proxied);
  shared_.metrics.connections(listener, route_label, std::string(result_label(result))).Increment();
  if (s.counted_active) shared_.metrics.active(listener).Decrement();
  if (s.admitted) shared_.admission.release(listener, s.peer_address.ip);
  if (s.connected_server) {
    if (auto* pool = s.pools->pool(s.backend_name)) pool->on_connection_end(*s.connected_server);
  }
  close::AccessRecord record;
  record.start = s.started_wall;
  record.listener = listener;
  record.client = s.client_address.to_string();
  record.host = s.hello.host;
  record.route = route_label;
  record.backend = s.connected ? s.backend_address.to_string() : std::string();
  record.splice_mode = s.connected ? (s.kernel.spliced ? "sockmap" : "userspace") : "";
  record.bytes_client_to_backend = s.up.bytes;
  record.bytes_backend_to_client = s.down.bytes;
  record.duration = Clock::now() - s.started;
  record.result = result_label(result);
  if (published_.access_log && published_.access_log->enabled()) published_.access_log->write(record);
  shared_.event_bus.emit([&] { return events::finished(record, s.client_address); });
  uint32_t slot = s.slot;
  slots_[slot].reset();
  free_slots_.push_back(slot);
  --live_sessions_;
}
}  // namespace snisplice::session
