// The userspace relay: a multishot receive per direction into the worker's shared buffers,
// one send in flight per direction, half-closes passed on once flushed, and a direction
// paused while its sink is slower than its source.
#include <sys/socket.h>

#include <cerrno>

#include "session/lifecycle.h"
#include "session/op_kind.h"
#include "session/worker.h"

namespace snisplice::session {

void Worker::arm_relay_recv(Session& s, bool upstream) {
  Direction& d = upstream ? s.up : s.down;
  ring_.recv_multishot(upstream ? s.client.get() : s.backend.get(), kBufferGroup,
                       tag_for(s, upstream ? kRecvUp : kRecvDown));
  d.recv_armed = true;
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
  if (result > 0) {
    d.bytes += static_cast<uint64_t>(result);
    (upstream ? shared_.metrics.bytes_client_to_backend : shared_.metrics.bytes_backend_to_client)
        .Increment(result);
    s.last_activity = Clock::now();
    send_next(s, upstream);
    if (lifecycle::relay_pacing(d.paused, d.recv_armed, d.pending.size()) == lifecycle::Pacing::pause) {
      // The sink is slower than the source: stop taking shared buffers for this direction.
      d.paused = true;
      ring_.cancel(io::OpTag{upstream ? kRecvUp : kRecvDown, s.slot, s.generation}, tag_for(s, kCancel));
    }
  } else if (result == 0) {
    d.eof = true;
  } else if (result == -ENOBUFS) {
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
  if (!d.recv_armed && !d.eof && !d.paused) arm_relay_recv(s, upstream);
}

void Worker::send_next(Session& s, bool upstream) {
  Direction& d = upstream ? s.up : s.down;
  if (d.send_in_flight || d.pending.empty() || d.sink_failed) return;
  const Chunk& chunk = d.pending.front();
  ring_.send(upstream ? s.backend.get() : s.client.get(),
             buffers_->buffer(chunk.buffer_id).subspan(chunk.offset, chunk.length),
             tag_for(s, upstream ? kSendUp : kSendDown));
  d.send_in_flight = true;
}

void Worker::on_relay_sent(Session& s, bool upstream, int result) {
  Direction& d = upstream ? s.up : s.down;
  d.send_in_flight = false;
  if (!relaying(s)) return;
  if (result < 0) {
    d.sink_failed = true;
    recycle_buffers(d);
    return maybe_finish_relay(s);
  }
  Chunk& chunk = d.pending.front();
  chunk.offset += static_cast<uint32_t>(result);
  chunk.length -= static_cast<uint32_t>(result);
  if (chunk.length == 0) {
    uint16_t id = chunk.buffer_id;
    d.pending.pop_front();
    buffers_->recycle(id);
    // A buffer came back: connections starved of buffers may receive again.
    while (!waiting_for_buffers_.empty()) {
      uint32_t slot = waiting_for_buffers_.back();
      waiting_for_buffers_.pop_back();
      if (slot >= slots_.size() || !slots_[slot] || !relaying(*slots_[slot])) continue;
      Session& starved = *slots_[slot];
      for (bool direction : {true, false}) {
        Direction& sd = direction ? starved.up : starved.down;
        if (!sd.recv_armed && !sd.eof && !sd.paused && !sd.in_kernel) arm_relay_recv(starved, direction);
      }
      break;
    }
  }
  s.last_activity = Clock::now();
  send_next(s, upstream);
  if (lifecycle::relay_pacing(d.paused, d.recv_armed, d.pending.size()) == lifecycle::Pacing::resume) {
    d.paused = false;
    if (!d.eof) arm_relay_recv(s, upstream);
  }
  shut_sink_when_flushed(s, upstream);
  maybe_finish_relay(s);
}

bool Worker::shut_sink_when_flushed(Session& s, bool upstream) {
  Direction& d = upstream ? s.up : s.down;
  if (!d.eof || !d.pending.empty() || d.send_in_flight || d.shut) return false;
  // Half-close: the sink sees EOF only after every byte the source sent before its own.
  ::shutdown(upstream ? s.backend.get() : s.client.get(), SHUT_WR);
  d.shut = true;
  return true;
}

void Worker::maybe_finish_relay(Session& s) {
  // A spliced connection with a direction handed back to the relay: the kernel's directions
  // have their own drain rules.
  if (s.phase == Phase::spliced) return check_splice(s, Clock::now());
  auto end = [](const Direction& d) {
    return lifecycle::DirectionEnd{d.source_failed, d.sink_failed, d.shut, d.pending.empty() && !d.send_in_flight};
  };
  if (auto ending = lifecycle::ending(end(s.up), end(s.down))) end_with(s, *ending);
}
}  // namespace snisplice::session
