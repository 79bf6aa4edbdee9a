// The splice stage of a connection: after the PROXY header (if any) has been written, both
// sockets go into the sockhash and the kernel carries the bytes, the peeked hello first. The
// worker keeps what the kernel does not: FIN propagation after the redirected bytes drained,
// backpressure (pausing a direction whose destination reads slower than its source sends), the
// budget as a last resort, idle time and byte counts from the BPF counters, and the userspace
// relay for a direction the kernel handed back. (Hazards and their tests:
// proxy/bpf/splice_engine.h.)
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <spdlog/spdlog.h>

#include "session/lifecycle.h"
#include "session/op_kind.h"
#include "session/worker.h"

namespace snisplice::session {
namespace {

// While bytes move, counters and the backlog are checked this often; an idle pair backs off
// to the slow interval; a FIN waiting for its bytes to drain, or a paused direction, is
// re-checked fast.
constexpr std::chrono::milliseconds kActiveCheck{5};
constexpr std::chrono::milliseconds kIdleCheckMax{1000};
constexpr std::chrono::milliseconds kDrainCheck{1};
constexpr std::chrono::milliseconds kStalledCheckMax{50};
// From this check interval on, a quiet pair is also woken by its sources' next segment.
constexpr std::chrono::milliseconds kWakeFrom{20};

// How long a paused or resumed direction keeps being checked at the active interval even
// when nothing moves, so the switch between holding and redirecting is followed closely.
constexpr std::chrono::milliseconds kWatchAfterPacing{1000};

bpf::Direction kernel_direction(bool upstream) {
  return upstream ? bpf::Direction::client_to_backend : bpf::Direction::backend_to_client;
}

}  // namespace

bool Worker::try_splice(Session& s) {
  // splice: sockmap splices from the first byte; auto starts on the relay (relay.cpp).
  const bool kernel_splice = shared_.splice && s.runtime->config->splice == config::SpliceMode::sockmap;
  if (lifecycle::data_path(kernel_splice, s.preread.proxy_header_length) == lifecycle::DataPath::relay) return false;
  auto pair = shared_.splice->engine.splice(s.client.get(), s.backend.get());
  if (!pair) {
    // Per connection, not per process: e.g. a client that half-closed right after its hello.
    if (!take_read_back(s, pair.error())) return true;
    spdlog::debug("{}: relaying in userspace: {} ({})", s.client_address.to_string(),
                  bpf::to_string(pair.error().failure), pair.error().message);
    return false;
  }
  enter_kernel(s, std::move(*pair));
  return true;
}

bool Worker::take_read_back(Session& s, bpf::SpliceError& error) {
  if (error.failure == bpf::SpliceFailure::lost) {
    // Bytes the client or backend sent are gone with a psock: a reset, never a gap.
    spdlog::warn("{}: a failed splice lost bytes; resetting both ends ({})", s.client_address.to_string(),
                 error.message);
    finish(s, Result::splice_error, true);
    return false;
  }
  if (!error.from_client.empty() || !error.from_backend.empty())
    spdlog::debug("{}: a failed splice read back {} + {} bytes; they go first", s.client_address.to_string(),
                  error.from_client.size(), error.from_backend.size());
  for (bool upstream : {true, false}) {
    std::vector<uint8_t>& bytes = upstream ? error.from_client : error.from_backend;
    if (bytes.empty()) continue;
    count_moved(s, upstream, bytes.size());
    auto copy = std::make_unique_for_overwrite<uint8_t[]>(bytes.size());
    std::memcpy(copy.get(), bytes.data(), bytes.size());
    (upstream ? s.up : s.down).pending.push_back(Chunk{0, 0, static_cast<uint32_t>(bytes.size()), std::move(copy)});
  }
  return true;
}

void Worker::enter_kernel(Session& s, bpf::SplicedPair pair) {
  s.kernel.pair.emplace(std::move(pair));
  s.kernel.spliced = true;
  s.lazy.enabled = false;
  s.lazy.moving = false;
  s.phase = Phase::spliced;
  for (Direction* d : {&s.up, &s.down}) {
    d->kernel.carries = true;
    d->paused = false;  // the relay's pause: its receive is already cancelled
  }
  shared_.metrics.spliced_sockmap.Increment();
  shared_.event_bus.emit([&] { return events::Spliced{s.client_address, "sockmap"}; });
  arm_splice_poll(s, true);
  arm_splice_poll(s, false);
  s.kernel.check_interval = kActiveCheck;
  set_deadline(s, Clock::now() + kActiveCheck);
}

void Worker::arm_splice_poll(Session& s, bool client_side) {
  // Not POLLIN: the verdict wakes it for every segment it redirects. Passed bytes (a missing
  // peer) are found by check_splice, which reads the counters anyway.
  ring_.poll_multishot(client_side ? s.client.get() : s.backend.get(), POLLRDHUP,
                       tag_for(s, client_side ? kSplicePollClient : kSplicePollBackend));
}

void Worker::arm_splice_wake(Session& s, const bpf::PairStats& stats) {
  // A quiet pair is checked ever more rarely (up to kIdleCheckMax), but a source that starts
  // sending again may outrun its destination at once, and nothing paces it until the next
  // check: redirected bytes would pile up, unaccounted, toward the budget abort (measured: 214
  // MB in one 165 ms interval, a download resuming after a stall). POLLIN wakes for each
  // segment the verdict sees, redirected or not: the first one starts the checks again.
  // Only over a source with nothing readable (held or passed bytes, or a FIN, would complete it
  // at once), and only from the second back-off step: should it still complete at once, that
  // costs one check per back-off cycle, not a loop.
  if (s.kernel.check_interval < kWakeFrom) return;
  for (bool client_side : {true, false}) {
    bool& armed = client_side ? s.kernel.wake_armed_client : s.kernel.wake_armed_backend;
    const Direction& from = client_side ? s.up : s.down;
    const bpf::Direction direction = kernel_direction(client_side);
    if (armed || !from.kernel.carries || from.kernel.handing_over || from.kernel.fin_pending || from.eof ||
        s.kernel.pair->paused(direction) || s.kernel.pair->holding(direction, stats))
      continue;
    ring_.poll(client_side ? s.client.get() : s.backend.get(), POLLIN,
               tag_for(s, client_side ? kSpliceWakeClient : kSpliceWakeBackend));
    armed = true;
  }
}

void Worker::on_splice_wake(Session& s, bool client_side) {
  (client_side ? s.kernel.wake_armed_client : s.kernel.wake_armed_backend) = false;
  if (s.phase != Phase::spliced) return;
  s.kernel.check_interval = kActiveCheck;
  check_splice(s, Clock::now());
}

void Worker::on_splice_poll(Session& s, bool client_side, int result) {
  if (s.phase != Phase::spliced || result < 0) return;
  auto events = static_cast<unsigned>(result);
  Direction& from = client_side ? s.up : s.down;  // the direction this socket is the source of
  Direction& to = client_side ? s.down : s.up;    // the direction this socket is the sink of
  if (events & POLLERR) {
    // A reset end: what its peer is still owed drains first (check_splice), as in the relay.
    from.source_failed = true;
    from.eof = true;
    to.sink_failed = true;
    return check_splice(s, Clock::now());
  }
  if ((events & (POLLRDHUP | POLLHUP)) && from.kernel.carries && !from.kernel.handing_over && !from.kernel.fin_pending) {
    from.kernel.fin_pending = true;
    check_splice(s, Clock::now());
  }
}

bool Worker::pace_direction(Session& s, bool upstream, uint64_t undelivered) {
  const bpf::Direction direction = kernel_direction(upstream);
  switch (lifecycle::splice_pacing(s.kernel.pair->paused(direction), undelivered)) {
    case lifecycle::Pacing::keep:
      return false;
    case lifecycle::Pacing::pause:
      // The destination reads slower than the source sends: hold the source's sender back.
      if (auto paused = s.kernel.pair->pause(direction); !paused) {
        spdlog::warn("{}: cannot pause a spliced direction: {}", s.client_address.to_string(), paused.error().message());
        return false;
      }
      shared_.metrics.splice_pauses.Increment();
      shared_.event_bus.emit(
          [&] { return events::Paused{s.client_address, std::string(events::direction_label(upstream))}; });
      return true;
    case lifecycle::Pacing::resume:
      if (auto resumed = s.kernel.pair->resume(direction); !resumed) {
        spdlog::warn("{}: cannot resume a spliced direction: {}", s.client_address.to_string(), resumed.error().message());
        return false;
      }
      shared_.event_bus.emit(
          [&] { return events::Resumed{s.client_address, std::string(events::direction_label(upstream))}; });
      return true;
  }
  return false;
}

bool Worker::count_splice_bytes(Session& s, const bpf::PairStats& stats) {
  bool moved = false;
  for (bool upstream : {true, false}) {
    Direction& d = upstream ? s.up : s.down;
    const uint64_t held = s.kernel.pair->relayed(kernel_direction(upstream));
    if (held > d.kernel.held_counted) {
      shared_.metrics.splice_held_bytes.Increment(static_cast<double>(held - d.kernel.held_counted));
      d.kernel.held_counted = held;
    }
    uint64_t redirected = stats[kernel_direction(upstream)].redirected_bytes + held;
    if (redirected <= d.kernel.redirected_counted) continue;
    uint64_t delta = redirected - d.kernel.redirected_counted;
    d.kernel.redirected_counted = redirected;
    count_moved(s, upstream, delta);
    moved = true;
  }
  return moved;
}

void Worker::check_splice(Session& s, Clock::time_point now) {
  if (s.phase != Phase::spliced) return;
  // One reading serves the whole check: counters, then both sockets.
  const auto state = s.kernel.pair->read();
  const bpf::PairStats stats = state ? state->stats : s.kernel.pair->stats();
  bool moved = count_splice_bytes(s, stats);

  // No reading (a socket gone): POLLERR ends the connection; until then the counters are
  // still counted and the check backs off like an idle one.
  bool draining = false;
  bool paced = false;    // a paused direction whose destination is taking bytes
  bool stalled = false;  // a paused direction whose destination takes none
  bool watched = false;  // a direction paused or resumed a moment ago
  bool kicked = false;   // a source kicked for stranded bytes: see that they moved
  for (bool upstream : {true, false}) {
    Direction& d = upstream ? s.up : s.down;
    if (!state) continue;
    const bpf::Direction direction = kernel_direction(upstream);
    // Checked for a direction the relay took over too: its source is still in the verdict's map.
    if (s.kernel.pair->broken(direction, stats)) {
      spdlog::warn("{}: the kernel repeated bytes the splice cannot cut out; resetting both ends",
                   s.client_address.to_string());
      s.kernel.pair->abort();
      return finish(s, Result::splice_error, true);
    }
    if (!d.kernel.carries) continue;
    if (!d.kernel.handing_over && stats[direction].passed_bytes > 0) {
      // The verdict found no peer entry and left the bytes on the socket: this direction is
      // the userspace relay's, in order, EOF included, once the kernel's bytes are delivered.
      d.kernel.handing_over = true;
    }
    // A FIN whose POLLRDHUP completion has not been handled yet: this check takes it too.
    if (!d.kernel.handing_over && s.kernel.pair->fin_received(direction, *state)) d.kernel.fin_pending = true;
    const auto progress = s.kernel.pair->progress(direction, *state);
    const uint64_t undelivered = progress.undelivered;
    // Idle time counts bytes the destination took, not bytes redirected: a paused source
    // still trickles its window probes into the backlog of a destination that reads nothing.
    if (progress.delivered > d.kernel.delivered_seen) {
      d.kernel.delivered_seen = progress.delivered;
      s.last_activity = now;
    }
    if (undelivered > shared_.splice->budget) {
      // The last resort, should a pause not hold the sender (docs/architecture.md, hazards:
      // the kernel would queue redirected bytes without limit).
      shared_.metrics.splice_budget_aborts.Increment();
      spdlog::debug("{}: more than {} bytes redirected but undelivered; aborting", s.client_address.to_string(),
                    shared_.splice->budget);
      s.kernel.pair->abort();
      return finish(s, Result::splice_budget, true);
    }
    if (d.kernel.handing_over) {
      // Bytes held by a pause come before the passed ones: the engine moves them first.
      if (s.kernel.pair->paused(direction)) (void)s.kernel.pair->resume(direction);
      if (s.kernel.pair->holding(direction, stats)) (void)s.kernel.pair->relay_held(direction);
      if (undelivered == 0 && !s.kernel.pair->holding(direction)) {
        // Every redirected byte is in the destination's queue: the relay's writes go behind.
        d.kernel.handing_over = false;
        d.kernel.carries = false;
        d.kernel.fin_pending = false;
        arm_relay_recv(s, upstream);
      } else {
        draining = true;
      }
      continue;
    }
    // Quiet, yet the source received bytes no verdict saw: they are stranded on its receive
    // queue, and no data-ready event will come for them (docs/splice.md, "Stranded bytes").
    if (const uint64_t unseen = s.kernel.pair->unseen(direction, *state);
        unseen > 0 && undelivered == 0 && !s.kernel.pair->holding(direction, stats)) {
      if (s.kernel.pair->kick_source(direction)) {
        spdlog::debug("{}: {} bytes received but not seen by the verdict; kicked the source",
                      s.client_address.to_string(), unseen);
        kicked = true;
      } else {
        spdlog::warn("{}: cannot kick a spliced socket: {}", s.client_address.to_string(), std::strerror(errno));
      }
    }
    // After a pause or a resume, the direction switches between held and redirected bytes.
    if (pace_direction(s, upstream, undelivered)) d.kernel.paced_at = now;
    // Paused: the bytes held on the source go through userspace, after every redirected one
    // (not to a sink that failed: the ending rule settles that direction).
    if (s.kernel.pair->holding(direction, stats) && !d.sink_failed) {
      if (auto relayed = s.kernel.pair->relay_held(direction); !relayed) {
        const int error = relayed.error().errno_value;
        if (error == EPIPE || error == ECONNRESET) {
          // The destination was reset. This send may have taken the socket's error, and with it
          // the POLLERR its poll would have reported: settle that socket's ends here, as a
          // POLLERR would (on_splice_poll).
          Direction& back = upstream ? s.down : s.up;  // the reset socket is its source
          d.sink_failed = true;
          back.source_failed = true;
          back.eof = true;
          continue;
        }
        spdlog::warn("{}: cannot relay held bytes: {}", s.client_address.to_string(), relayed.error().message());
        if (s.kernel.pair->broken(direction, stats)) {
          s.kernel.pair->abort();
          return finish(s, Result::splice_error, true);
        }
      }
      draining = true;
    }
    if (now - d.kernel.paced_at < kWatchAfterPacing) watched = true;
    if (s.kernel.pair->paused(direction)) {
      // Paused: poll fast while the destination takes bytes, so the source resumes in time
      // to keep it fed; back off while it takes none.
      if (undelivered < d.kernel.undelivered_seen) paced = true;
      else stalled = true;
    }
    d.kernel.undelivered_seen = undelivered;
  }

  for (bool upstream : {true, false}) {
    Direction& d = upstream ? s.up : s.down;
    if (!state || !d.kernel.carries || d.kernel.handing_over || !d.kernel.fin_pending || d.shut || d.source_failed) continue;
    // Held bytes relayed during this check are not in the reading: not drained yet, and
    // checked again in a moment (the reading can only be behind, never ahead).
    auto shut = s.kernel.pair->shutdown_peer_when_drained(kernel_direction(upstream), *state);
    if (shut && *shut) {
      d.eof = true;
      d.shut = true;
    } else {
      draining = true;
    }
  }

  // The relay's ending rule; whether the kernel delivered a direction's bytes is asked only
  // once an end failed.
  auto end = [&](const Direction& d, bool upstream, bool failed) {
    lifecycle::DirectionEnd e{d.source_failed, d.sink_failed, d.shut, false};
    if (!failed || d.sink_failed) return e;
    if (!d.kernel.carries) {
      e.delivered = d.pending.empty() && !d.send_in_flight;
    } else {
      // No reading: the sockets cannot be asked (gone), so nothing more will be delivered.
      e.delivered = !state || s.kernel.pair->drained(kernel_direction(upstream), *state);
    }
    return e;
  };
  const bool failed = lifecycle::any_end_failed(end(s.up, true, false), end(s.down, false, false));
  if (auto ending = lifecycle::ending(end(s.up, true, failed), end(s.down, false, failed)))
    return end_with(s, *ending);
  if (failed) draining = true;

  const auto idle = s.runtime->config->timeouts.idle;
  if (lifecycle::idle_expired(now, s.last_activity, idle)) return finish(s, Result::idle_timeout, false);
  if (draining || paced) {
    s.kernel.check_interval = kDrainCheck;
  } else if (moved || watched || kicked) {
    s.kernel.check_interval = kActiveCheck;
  } else {
    s.kernel.check_interval = std::min(stalled ? kStalledCheckMax : kIdleCheckMax, s.kernel.check_interval * 2);
    arm_splice_wake(s, stats);
  }
  set_deadline(s, std::min(now + s.kernel.check_interval, s.last_activity + idle));
}

}  // namespace snisplice::session
