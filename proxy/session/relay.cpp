// The userspace relay: a multishot receive per direction into the worker's shared buffers,
// one send in flight per direction, half-closes passed on once flushed, and a direction
// paused while its sink is slower than its source. With splice: auto, the hand-over of a
// connection that proved bulk to the kernel.
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "session/lifecycle.h"
#include "session/op_kind.h"
#include "session/worker.h"

namespace snisplice::session {

void Worker::arm_relay_recv(Session& s, bool upstream) {
  Direction& d = upstream ? s.up : s.down;
  // Capped at what a direction may hold before it pauses: uncapped, a multishot receive kept
  // taking buffers (measured: up to 100 of them, 3 MiB) before the cancel of a pause landed.
  const uint32_t cap = capped_receives_ ? static_cast<uint32_t>(lifecycle::kRelayMarks.pause_at * buffers_->buffer_size()) : 0;
  ring_.recv_multishot(upstream ? s.client.get() : s.backend.get(), kBufferGroup,
                       tag_for(s, upstream ? kRecvUp : kRecvDown), cap);
  d.recv_armed = true;
  d.recv_capped = cap != 0;
}

void Worker::on_relay_recv(Session& s, bool upstream, const io::Completion& done) {
  Direction& d = upstream ? s.up : s.down;
  const int result = done.result;
  if (!done.more()) d.recv_armed = false;
  if (auto buffer = done.buffer()) {
    const uint16_t id = *buffer;
    buffers_->took_one();
    if (result > 0 && relaying(s) && !d.sink_failed) {
      d.pending.push_back({id, 0, static_cast<uint32_t>(result)});
    } else {
      buffers_->recycle(id);
    }
  }
  if (!relaying(s)) return;
  if (result == -EINVAL && d.recv_capped) {
    // A kernel without the multishot byte cap: receive uncapped from now on.
    if (std::exchange(capped_receives_, false))
      spdlog::info("worker {}: the kernel refuses capped multishot receives (6.17+); receiving uncapped", index_);
    if (!d.recv_armed && !d.eof && !d.paused) arm_relay_recv(s, upstream);
    return;
  }
  if (result > 0) {
    count_moved(s, upstream, static_cast<uint64_t>(result));
    s.last_activity = Clock::now();
    send_next(s, upstream);
    if (lifecycle::relay_pacing(d.paused, d.recv_armed, d.pending.size()) == lifecycle::Pacing::pause) {
      // The sink is slower than the source: stop taking shared buffers for this direction.
      d.paused = true;
      if (d.recv_armed)
        ring_.cancel(io::OpTag{upstream ? kRecvUp : kRecvDown, s.slot, s.generation}, tag_for(s, kCancel));
    }
  } else if (result == 0) {
    d.eof = true;
  } else if (result == -ENOBUFS) {
    if (s.lazy.moving) return maybe_finish_relay(s);  // the drain reads what is queued
    // Every shared buffer is waiting to be sent somewhere: retry when one comes back.
    waiting_for_buffers_.push_back(s.slot);
    return;
  } else if (result != -ECANCELED) {
    // A reset: bytes already received from this source still go to its peer first.
    d.eof = true;
    d.source_failed = true;
    return maybe_finish_relay(s);
  }
  if (shut_sink_when_flushed(s, upstream)) return maybe_finish_relay(s);
  if (s.lazy.moving) return maybe_finish_relay(s);
  // A paused direction resumes when a send brings it under the mark with no receive armed. When
  // its sends all finished before the cancelled receive's last completion (this one), no send
  // is left to do it: without this the direction would wait forever, and a sink that failed in
  // the meantime would never be noticed.
  if (lifecycle::relay_pacing(d.paused, d.recv_armed, d.pending.size()) == lifecycle::Pacing::resume) d.paused = false;
  if (!d.recv_armed && !d.eof && !d.paused) arm_relay_recv(s, upstream);
  if (s.lazy.enabled && lifecycle::hand_over(s.up.bytes, s.down.bytes, s.up.eof || s.down.eof, s.lazy.at_bytes))
    begin_hand_over(s);
}

void Worker::count_moved(Session& s, bool upstream, uint64_t bytes) {
  (upstream ? s.up : s.down).bytes += bytes;
  (upstream ? shared_.metrics.bytes_client_to_backend : shared_.metrics.bytes_backend_to_client)
      .Increment(static_cast<double>(bytes));
}

void Worker::send_next(Session& s, bool upstream) {
  Direction& d = upstream ? s.up : s.down;
  if (d.send_in_flight || d.pending.empty() || d.sink_failed) return;
  const Chunk& chunk = d.pending.front();
  const std::span<const uint8_t> bytes = chunk.copy ? std::span<const uint8_t>(chunk.copy.get() + chunk.offset, chunk.length)
                                                    : buffers_->buffer(chunk.buffer_id).subspan(chunk.offset, chunk.length);
  ring_.send(upstream ? s.backend.get() : s.client.get(), bytes, tag_for(s, upstream ? kSendUp : kSendDown));
  d.send_in_flight = true;
  d.send_started_at = Clock::now();
}

void Worker::on_relay_sent(Session& s, bool upstream, int result) {
  Direction& d = upstream ? s.up : s.down;
  d.send_in_flight = false;
  if (!relaying(s)) return;
  // Only spill() cancels a relayed send while the connection relays (close cancels after
  // leaving the phase). A cancelled send wrote nothing (a partial one completes with its
  // count): its buffer is copied out now and sent from the copy.
  const bool cancelled = result == -ECANCELED || (d.send_cancelled_to_spill && result == -EINTR);
  const bool spilling = std::exchange(d.send_cancelled_to_spill, false) || cancelled;
  if (cancelled) result = 0;
  if (result < 0) {
    d.sink_failed = true;
    recycle_buffers(d);
    return maybe_finish_relay(s);
  }
  Chunk& chunk = d.pending.front();
  chunk.offset += static_cast<uint32_t>(result);
  chunk.length -= static_cast<uint32_t>(result);
  if (chunk.length == 0) {
    const uint16_t id = chunk.buffer_id;
    const bool in_ring = !chunk.copy;
    d.pending.pop_front();
    if (in_ring) give_back(id);
  }
  if (spilling) spill(s, upstream);
  if (result > 0) s.last_activity = Clock::now();
  send_next(s, upstream);
  if (!s.lazy.moving &&
      lifecycle::relay_pacing(d.paused, d.recv_armed, d.pending.size()) == lifecycle::Pacing::resume) {
    d.paused = false;
    if (!d.eof) arm_relay_recv(s, upstream);
  }
  shut_sink_when_flushed(s, upstream);
  maybe_finish_relay(s);
}

void Worker::give_back(uint16_t buffer_id) {
  buffers_->recycle(buffer_id);
  while (!waiting_for_buffers_.empty()) {
    uint32_t slot = waiting_for_buffers_.back();
    waiting_for_buffers_.pop_back();
    if (slot >= slots_.size() || !slots_[slot] || !relaying(*slots_[slot]) || slots_[slot]->lazy.moving) continue;
    Session& starved = *slots_[slot];
    for (bool direction : {true, false}) {
      Direction& sd = direction ? starved.up : starved.down;
      if (!sd.recv_armed && !sd.eof && !sd.paused && !sd.kernel.carries) arm_relay_recv(starved, direction);
    }
    break;
  }
}

void Worker::spill(Session& s, bool upstream) {
  Direction& d = upstream ? s.up : s.down;
  bool front = true;
  for (Chunk& chunk : d.pending) {
    const bool being_sent = std::exchange(front, false) && d.send_in_flight;
    if (chunk.copy) continue;
    if (being_sent) {
      // The kernel reads this buffer until the send ends: cancel it, and copy it out when the
      // send's completion comes back (on_relay_sent).
      if (!d.send_cancelled_to_spill) {
        ring_.cancel(io::OpTag{upstream ? kSendUp : kSendDown, s.slot, s.generation}, tag_for(s, kCancel));
        d.send_cancelled_to_spill = true;
      }
      continue;
    }
    chunk.copy = std::make_unique_for_overwrite<uint8_t[]>(chunk.length);
    std::memcpy(chunk.copy.get(), buffers_->buffer(chunk.buffer_id).data() + chunk.offset, chunk.length);
    chunk.offset = 0;
    give_back(chunk.buffer_id);  // wakes other connections' receives; this queue is untouched
  }
}

void Worker::spill_stalled(Clock::time_point now) {
  for (const auto& slot : slots_) {
    if (!slot || !relaying(*slot)) continue;
    for (bool upstream : {true, false}) {
      const Direction& d = upstream ? slot->up : slot->down;
      if (d.send_in_flight && lifecycle::sink_stalled(d.send_started_at, now)) spill(*slot, upstream);
    }
  }
}

namespace {

lifecycle::DirectionEnd relay_end(const Direction& d) {
  return {d.source_failed, d.sink_failed, d.shut, d.pending.empty() && !d.send_in_flight};
}

}  // namespace

bool Worker::shut_sink_when_flushed(Session& s, bool upstream) {
  Direction& d = upstream ? s.up : s.down;
  if (!d.eof || !d.pending.empty() || d.send_in_flight || d.shut) return false;
  // Half-close: the sink sees EOF only after every byte the source sent before its own.
  d.shut = true;
  // When this ends a relayed connection cleanly (the other direction ended first), the close
  // that follows sends the FIN: one system call fewer for every connection that ends normally.
  const bool closes_next = s.phase == Phase::relaying && !s.lazy.moving &&
                           lifecycle::fin_with_close(relay_end(s.up), relay_end(s.down));
  if (!closes_next) ::shutdown(upstream ? s.backend.get() : s.client.get(), SHUT_WR);
  return true;
}

void Worker::maybe_finish_relay(Session& s) {
  // A spliced connection with a direction handed back to the relay: the kernel's directions
  // have their own drain rules.
  if (s.phase == Phase::spliced) return check_splice(s, Clock::now());
  if (s.lazy.moving) return continue_hand_over(s);
  if (auto ending = lifecycle::ending(relay_end(s.up), relay_end(s.down))) end_with(s, *ending);
}

// ---------------------------------------------------------------- hand-over (splice: auto)
// The verdict is handed whole skbs, so the last read of a socket before its insertion must
// have left no segment partly read (a read that returns less than it asked for), and every
// byte read must be in the sink's send queue before the kernel redirects anything behind it
// (proxy/bpf/splice_engine.h, step 1).

void Worker::begin_hand_over(Session& s) {
  s.lazy.moving = true;
  s.lazy.rounds = 0;
  for (bool upstream : {true, false}) {
    Direction& d = upstream ? s.up : s.down;
    d.drain.read_short = false;
    // The final completion of each receive (-ECANCELED, or the bytes it still took) arrives
    // later; its bytes are sent like any other.
    if (d.recv_armed)
      ring_.cancel(io::OpTag{upstream ? kRecvUp : kRecvDown, s.slot, s.generation}, tag_for(s, kCancel));
  }
  continue_hand_over(s);
}

void Worker::continue_hand_over(Session& s) {
  auto quiet = [](const Direction& d) {
    return !d.recv_armed && d.pending.empty() && !d.send_in_flight && !d.drain.in_flight;
  };
  if (s.phase != Phase::relaying || !s.lazy.moving || !quiet(s.up) || !quiet(s.down)) return;
  auto ended = [](const Direction& d) { return d.eof || d.source_failed || d.sink_failed; };
  while (s.lazy.enabled && !s.lazy.backed_off) {
    lifecycle::HandOverProgress progress;
    for (bool upstream : {true, false}) {
      Direction& d = upstream ? s.up : s.down;
      if (ended(d) || d.drain.read_short || !d.drain.bytes.empty()) continue;
      if (!drain_source(s, upstream)) progress.too_large = true;
      ++s.lazy.rounds;
    }
    progress.reads = s.lazy.rounds;
    progress.ended = ended(s.up) || ended(s.down);
    progress.both_short = s.up.drain.read_short && s.down.drain.read_short;
    progress.unsent = !s.up.drain.bytes.empty() || !s.down.drain.bytes.empty();
    const auto step = lifecycle::after_drain(progress);
    if (step == lifecycle::HandOverStep::read_again) continue;
    if (step == lifecycle::HandOverStep::wait_for_sinks) break;  // on_drained_sent goes on
    if (step == lifecycle::HandOverStep::back_off) {
      // Bytes keep coming faster than the reads: relay on, and try again once the connection
      // moved twice as much.
      auto next = lifecycle::next_hand_over(s.up.bytes, s.down.bytes, ++s.lazy.attempts);
      spdlog::debug("{}: hand-over backed off after {} reads{}; next at {}", s.client_address.to_string(),
                    s.lazy.rounds, progress.too_large ? " (a queue too large)" : "", next ? *next : 0);
      if (next) {
        s.lazy.at_bytes = *next;
        s.lazy.backed_off = true;
      } else {
        s.lazy.enabled = false;
      }
      break;
    }
    if (step == lifecycle::HandOverStep::give_up) {
      spdlog::debug("{}: staying on the relay after {} reads: an end closed", s.client_address.to_string(),
                    s.lazy.rounds);
      s.lazy.enabled = false;
      break;
    }
    auto pair = shared_.splice->engine.splice(s.client.get(), s.backend.get(), bpf::ReadsBefore::ended_short);
    if (pair) {
      spdlog::debug("{}: handed to the kernel after {} + {} bytes, {} reads", s.client_address.to_string(),
                    s.up.bytes, s.down.bytes, s.lazy.rounds);
      return enter_kernel(s, std::move(*pair));
    }
    spdlog::debug("{}: staying on the relay: {} ({})", s.client_address.to_string(),
                  bpf::to_string(pair.error().failure), pair.error().message);
    if (!take_read_back(s, pair.error())) return;  // reset; finish() counted it relayed
    s.lazy.enabled = false;
    send_next(s, true);
    send_next(s, false);
  }
  const bool sending = !s.up.drain.bytes.empty() || !s.down.drain.bytes.empty();
  send_drained(s, true);
  send_drained(s, false);
  if (!sending && (!s.lazy.enabled || s.lazy.backed_off)) back_to_relay(s);
}

bool Worker::drain_source(Session& s, bool upstream) {
  Direction& d = upstream ? s.up : s.down;
  const int source = upstream ? s.client.get() : s.backend.get();
  const int sink = upstream ? s.backend.get() : s.client.get();
  int queued = 0;
  // The sink's room as its send() sees it: buffer size against memory queued, both counted with
  // overhead (SO_MEMINFO), so a sink whose peer stopped reading has none.
  std::array<uint32_t, SK_MEMINFO_VARS> sink_memory{};
  socklen_t length = sizeof sink_memory;
  if (::ioctl(source, SIOCINQ, &queued) != 0 ||
      ::getsockopt(sink, SOL_SOCKET, SO_MEMINFO, sink_memory.data(), &length) != 0) {
    queued = 0;  // a failed socket: the read below finds out how
    sink_memory = {};
  }
  const uint32_t sink_buffer = sink_memory[SK_MEMINFO_SNDBUF];
  const uint32_t sink_queued = sink_memory[SK_MEMINFO_WMEM_QUEUED];
  const size_t sink_room = sink_buffer > sink_queued ? sink_buffer - sink_queued : 0;
  spdlog::debug("{}: hand-over read of {}: {} queued, sink room {}", s.client_address.to_string(),
                upstream ? "the client" : "the backend", queued, sink_room);
  if (!lifecycle::drain_fits(static_cast<size_t>(queued), sink_room)) return false;
  // Asking for more than is queued: a read that returns less emptied the queue.
  const size_t want = static_cast<size_t>(queued) + lifecycle::kHandOverReadSlack;
  if (drain_buffer_.size() < want) drain_buffer_.resize(want);
  ssize_t n;
  do {
    n = ::recv(source, drain_buffer_.data(), want, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n == 0) {
    d.eof = true;
    return true;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      d.drain.read_short = true;
    } else {
      d.eof = true;
      d.source_failed = true;
    }
    return true;
  }
  const size_t read = static_cast<size_t>(n);
  d.drain.read_short = read < want;
  count_moved(s, upstream, read);
  s.last_activity = Clock::now();
  size_t taken = 0;
  while (taken < read) {
    const ssize_t sent = ::send(sink, drain_buffer_.data() + taken, read - taken, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent > 0) {
      taken += static_cast<size_t>(sent);
    } else if (sent < 0 && errno == EINTR) {
      continue;
    } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;  // the rest goes through the ring (send_drained)
    } else {
      d.sink_failed = true;
      return true;
    }
  }
  d.drain.bytes.assign(drain_buffer_.begin() + static_cast<std::ptrdiff_t>(taken),
                       drain_buffer_.begin() + static_cast<std::ptrdiff_t>(read));
  d.drain.sent = 0;
  return true;
}

void Worker::send_drained(Session& s, bool upstream) {
  Direction& d = upstream ? s.up : s.down;
  if (d.drain.in_flight || d.drain.sent == d.drain.bytes.size()) return;
  ring_.send(upstream ? s.backend.get() : s.client.get(), std::span(d.drain.bytes).subspan(d.drain.sent),
             tag_for(s, upstream ? kDrainedUp : kDrainedDown));
  d.drain.in_flight = true;
}

void Worker::on_drained_sent(Session& s, bool upstream, int result) {
  Direction& d = upstream ? s.up : s.down;
  d.drain.in_flight = false;
  if (s.phase != Phase::relaying) return;
  if (result < 0) {
    d.sink_failed = true;
    d.drain.sent = d.drain.bytes.size();
  } else {
    d.drain.sent += static_cast<size_t>(result);
  }
  if (d.drain.sent < d.drain.bytes.size()) return send_drained(s, upstream);
  std::vector<uint8_t>().swap(d.drain.bytes);
  d.drain.sent = 0;
  s.last_activity = Clock::now();
  if ((!s.lazy.enabled || s.lazy.backed_off) && s.up.drain.bytes.empty() && s.down.drain.bytes.empty())
    return back_to_relay(s);
  continue_hand_over(s);
}

void Worker::back_to_relay(Session& s) {
  if (!s.lazy.moving) return;
  s.lazy.moving = false;
  s.lazy.backed_off = false;
  if (!s.lazy.enabled) {
    // For good: it ended up relayed.
    shared_.metrics.spliced_userspace.Increment();
    shared_.event_bus.emit([&] { return events::Spliced{s.client_address, "userspace"}; });
  }
  for (bool upstream : {true, false}) {
    Direction& d = upstream ? s.up : s.down;
    d.paused = false;  // nothing is pending: the relay's pause has nothing left to wait for
    if (!d.recv_armed && !d.eof) arm_relay_recv(s, upstream);
    shut_sink_when_flushed(s, upstream);
  }
  maybe_finish_relay(s);
}
}  // namespace snisplice::session
