#include "session/lifecycle.h"

#include <algorithm>

namespace snisplice::session::lifecycle {
namespace {

// A client's socket is the source of "up" and the sink of "down".
bool client_failed(const DirectionEnd& up, const DirectionEnd& down) { return up.source_failed || down.sink_failed; }
bool backend_failed(const DirectionEnd& up, const DirectionEnd& down) { return down.source_failed || up.sink_failed; }

bool settled(const DirectionEnd& d) { return d.sink_failed || d.delivered; }

}  // namespace

bool any_end_failed(const DirectionEnd& up, const DirectionEnd& down) {
  return client_failed(up, down) || backend_failed(up, down);
}

std::optional<Ending> ending(const DirectionEnd& up, const DirectionEnd& down) {
  if (any_end_failed(up, down)) {
    if (!settled(up) || !settled(down)) return std::nullopt;
    if (client_failed(up, down)) return Ending{Result::client_reset, Survivor::backend};
    return Ending{Result::backend_reset, Survivor::client};
  }
  if (up.shut && down.shut) return Ending{Result::proxied, Survivor::none};
  return std::nullopt;
}

bool fin_with_close(const DirectionEnd& up, const DirectionEnd& down) {
  auto end = ending(up, down);
  return end && end->survivor == Survivor::none;
}

Close closing(bool abort, bool connected, Survivor survivor) {
  if (abort) return Close::reset;
  if (connected && survivor == Survivor::none) return Close::reset_if_undelivered;
  return Close::fin;
}

bool idle_expired(Clock::time_point now, Clock::time_point last_activity, Clock::duration idle) {
  return now - last_activity >= idle;
}

DeadlineVerdict on_deadline(Phase phase, Clock::time_point now, Clock::time_point last_activity,
                            Clock::duration idle) {
  switch (phase) {
    case Phase::hello:
      return {DeadlineAction::hello_timeout};
    case Phase::spliced:
      return {DeadlineAction::check_splice};  // which applies the idle rule with fresh counters
    case Phase::preamble:
    case Phase::relaying:
      if (idle_expired(now, last_activity, idle)) return {DeadlineAction::idle_timeout};
      return {DeadlineAction::rearm_idle, last_activity + idle};
    case Phase::resolving:   // bounded by dns.timeout x dns.tries
    case Phase::connecting:  // bounded by the linked connect timeout
    case Phase::closing:
      return {DeadlineAction::none};
  }
  return {DeadlineAction::none};
}

PeekStep after_peek(size_t peeked_before, size_t peeked_now, bool hung_up) {
  if (peeked_now > peeked_before) return PeekStep::parse;
  return hung_up || peeked_now == 0 ? PeekStep::client_closed : PeekStep::buffer_full;
}

DataPath data_path(bool kernel_splice, size_t consumed_from_client) {
  return kernel_splice && consumed_from_client == 0 ? DataPath::splice : DataPath::relay;
}

bool hand_over(uint64_t bytes_up, uint64_t bytes_down, bool any_eof, uint64_t threshold) {
  return !any_eof && (bytes_up >= threshold || bytes_down >= threshold);
}

HandOverStep after_drain(const HandOverProgress& progress, HandOverLimits limits) {
  if (progress.ended) return HandOverStep::give_up;
  if (progress.too_large) return HandOverStep::back_off;
  if (progress.unsent) return HandOverStep::wait_for_sinks;
  if (progress.both_short) return HandOverStep::splice;
  return progress.reads < limits.reads ? HandOverStep::read_again : HandOverStep::back_off;
}

bool drain_fits(size_t queued, size_t sink_room, HandOverLimits limits) {
  const size_t read = queued + kHandOverReadSlack;
  return read <= limits.read_bytes && read <= sink_room + limits.unsent_bytes;
}

std::optional<uint64_t> next_hand_over(uint64_t bytes_up, uint64_t bytes_down, unsigned attempts,
                                       unsigned max_attempts) {
  if (attempts >= max_attempts) return std::nullopt;
  return 2 * std::max(bytes_up, bytes_down);
}

Pacing relay_pacing(bool paused, bool receiving, size_t pending, RelayMarks marks) {
  if (!paused) return pending >= marks.pause_at ? Pacing::pause : Pacing::keep;
  return pending <= marks.resume_at && !receiving ? Pacing::resume : Pacing::keep;
}

bool sink_stalled(Clock::time_point send_started_at, Clock::time_point now) {
  return now - send_started_at >= kSinkStalledAfter;
}

Pacing splice_pacing(bool paused, uint64_t undelivered, SpliceMarks marks) {
  if (!paused) return undelivered > marks.pause_above ? Pacing::pause : Pacing::keep;
  return undelivered <= marks.resume_below ? Pacing::resume : Pacing::keep;
}

}  // namespace snisplice::session::lifecycle
