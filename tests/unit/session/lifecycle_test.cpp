#include "session/lifecycle.h"

#include <doctest/doctest.h>

using namespace snisplice::session;
using namespace snisplice::session::lifecycle;
using namespace std::chrono_literals;

TEST_CASE("a connection ends cleanly only when both sinks got their FIN") {
  DirectionEnd up{.shut = true};
  DirectionEnd down{};
  CHECK_FALSE(ending(up, down));
  down.shut = true;
  auto end = ending(up, down);
  REQUIRE(end);
  CHECK(end->result == Result::proxied);
  CHECK(end->survivor == Survivor::none);
  CHECK_FALSE(any_end_failed(up, down));
}

TEST_CASE("the last FIN goes with the close only when it ends the connection cleanly") {
  DirectionEnd up{.shut = true};
  DirectionEnd down{};
  CHECK_FALSE(fin_with_close(up, down));  // a half-close: the connection goes on
  down.shut = true;
  CHECK(fin_with_close(up, down));
  DirectionEnd failed_source{.source_failed = true, .shut = true, .delivered = true};
  CHECK_FALSE(fin_with_close(up, failed_source));  // the survivor lingers: its FIN cannot wait
  CHECK_FALSE(fin_with_close(failed_source, down));
}

TEST_CASE("a failed client: the backend survives once it has what it is owed") {
  for (bool source_side : {true, false}) {
    CAPTURE(source_side);
    // The client reset (source of up) or could not be written to (sink of down).
    DirectionEnd up{.source_failed = source_side};
    DirectionEnd down{.sink_failed = !source_side};
    CHECK(any_end_failed(up, down));
    down.delivered = true;
    CHECK_FALSE(ending(up, down));  // the backend is still owed the client's bytes
    up.delivered = true;
    auto end = ending(up, down);
    REQUIRE(end);
    CHECK(end->result == Result::client_reset);
    CHECK(end->survivor == Survivor::backend);
  }
}

TEST_CASE("a failed backend: the client survives once it has what it is owed") {
  DirectionEnd up{};
  DirectionEnd down{.source_failed = true};
  CHECK_FALSE(ending(up, down));
  down.delivered = true;
  CHECK_FALSE(ending(up, down));  // up owes the backend nothing only once delivered too
  up.delivered = true;
  auto end = ending(up, down);
  REQUIRE(end);
  CHECK(end->result == Result::backend_reset);
  CHECK(end->survivor == Survivor::client);
}

TEST_CASE("a failed sink is owed nothing: its direction is settled") {
  DirectionEnd up{.sink_failed = true};  // the backend could not be written to
  DirectionEnd down{.delivered = true};
  auto end = ending(up, down);
  REQUIRE(end);
  CHECK(end->result == Result::backend_reset);
  CHECK(end->survivor == Survivor::client);
}

TEST_CASE("a failure overrides FINs already sent, and the client's failure counts first") {
  DirectionEnd up{.source_failed = true, .shut = true, .delivered = true};
  DirectionEnd down{.source_failed = true, .shut = true, .delivered = true};
  auto end = ending(up, down);
  REQUIRE(end);
  CHECK(end->result == Result::client_reset);
  CHECK(end->survivor == Survivor::backend);
}

TEST_CASE("FIN or RST") {
  CHECK(closing(true, true, Survivor::none) == Close::reset);
  CHECK(closing(true, false, Survivor::client) == Close::reset);
  CHECK(closing(false, true, Survivor::none) == Close::reset_if_undelivered);
  CHECK(closing(false, true, Survivor::backend) == Close::fin);  // the survivor got every byte
  CHECK(closing(false, false, Survivor::none) == Close::fin);    // nothing was relayed yet
}

TEST_CASE("deadlines by phase") {
  const Clock::time_point t0{};
  const auto idle = 10s;
  CHECK(on_deadline(Phase::hello, t0 + 1s, t0, idle).action == DeadlineAction::hello_timeout);
  CHECK(on_deadline(Phase::spliced, t0 + 1s, t0, idle).action == DeadlineAction::check_splice);
  for (Phase phase : {Phase::resolving, Phase::connecting, Phase::closing})
    CHECK(on_deadline(phase, t0 + 100s, t0, idle).action == DeadlineAction::none);
  for (Phase phase : {Phase::preamble, Phase::relaying}) {
    CHECK(on_deadline(phase, t0 + 10s, t0, idle).action == DeadlineAction::idle_timeout);
    auto later = on_deadline(phase, t0 + 10s, t0 + 4s, idle);  // there was activity since
    CHECK(later.action == DeadlineAction::rearm_idle);
    CHECK(later.rearm_at == t0 + 14s);
  }
  CHECK(idle_expired(t0 + 10s, t0, idle));
  CHECK_FALSE(idle_expired(t0 + 10s - 1ns, t0, idle));
}

TEST_CASE("relay pacing: pause at the mark, resume at half once the receive ended") {
  CHECK(relay_pacing(false, true, 3) == Pacing::keep);
  CHECK(relay_pacing(false, true, 4) == Pacing::pause);
  CHECK(relay_pacing(false, false, 9) == Pacing::pause);  // a capped receive ended: not re-armed
  CHECK(relay_pacing(true, false, 3) == Pacing::keep);
  CHECK(relay_pacing(true, false, 2) == Pacing::resume);
  CHECK(relay_pacing(true, true, 0) == Pacing::keep);  // the cancelled receive has not ended yet
  CHECK(relay_pacing(false, true, 1, RelayMarks{1, 0}) == Pacing::pause);
}

TEST_CASE("a sink is stalled once a send waited 50 ms") {
  const Clock::time_point start{};
  CHECK_FALSE(sink_stalled(start, start));
  CHECK_FALSE(sink_stalled(start, start + std::chrono::milliseconds(49)));
  CHECK(sink_stalled(start, start + std::chrono::milliseconds(50)));
}

TEST_CASE("splice pacing: pause above 16 MiB undelivered, resume at 4 MiB or less") {
  CHECK(kSpliceMarks.pause_above == 16u << 20);
  CHECK(kSpliceMarks.resume_below == 4u << 20);
  CHECK(splice_pacing(false, 16u << 20) == Pacing::keep);
  CHECK(splice_pacing(false, (16u << 20) + 1) == Pacing::pause);
  CHECK(splice_pacing(true, (4u << 20) + 1) == Pacing::keep);
  CHECK(splice_pacing(true, 4u << 20) == Pacing::resume);
  CHECK(splice_pacing(true, 0) == Pacing::resume);
  CHECK(splice_pacing(false, 0) == Pacing::keep);
  CHECK(splice_pacing(false, 101, SpliceMarks{100, 10}) == Pacing::pause);
}

TEST_CASE("after a peek: parse new bytes, else a hang-up or a full receive buffer") {
  CHECK(after_peek(0, 0, false) == PeekStep::client_closed);  // a first peek found EOF
  CHECK(after_peek(0, 1, false) == PeekStep::parse);
  CHECK(after_peek(10, 11, false) == PeekStep::parse);        // the low-water mark was met
  CHECK(after_peek(10, 12, true) == PeekStep::parse);         // bytes and a FIN: parse them first
  CHECK(after_peek(10, 10, true) == PeekStep::client_closed);  // woken by a FIN or a reset
  CHECK(after_peek(10, 10, false) == PeekStep::buffer_full);   // woken by receive-buffer pressure
  CHECK(after_peek(10, 9, false) == PeekStep::buffer_full);
}

TEST_CASE("data path: spliced only when the kernel splice is on and nothing was consumed") {
  CHECK(data_path(true, 0) == DataPath::splice);
  CHECK(data_path(true, 16) == DataPath::relay);   // a trusted PROXY header was read
  CHECK(data_path(false, 0) == DataPath::relay);   // splice: userspace, or no engine
  CHECK(data_path(false, 16) == DataPath::relay);
}

TEST_CASE("splice: auto hands a connection to the kernel once one direction moved enough") {
  CHECK_FALSE(hand_over(0, 0, false));
  CHECK_FALSE(hand_over(64, 64, false));  // one short exchange stays on the relay
  CHECK_FALSE(hand_over(kHandOverBytes - 1, kHandOverBytes - 1, false));
  CHECK(hand_over(kHandOverBytes, 0, false));
  CHECK(hand_over(0, kHandOverBytes, false));
  CHECK_FALSE(hand_over(kHandOverBytes, kHandOverBytes, true));  // a half-closed socket cannot be inserted
  CHECK(hand_over(10, 10, false, 10));
}

TEST_CASE("the hand-over splices once both sockets' last reads came back short and the sinks took them") {
  const HandOverLimits limits{3, 1000, 100};
  auto step = [&](HandOverProgress p) { return after_drain(p, limits); };
  CHECK(step({.reads = 2, .both_short = true}) == HandOverStep::splice);
  CHECK(step({.reads = 3, .both_short = true}) == HandOverStep::splice);  // the last read counts, not how many
  // Bytes read that a sink did not take go first, through the ring; a short socket is not read again.
  CHECK(step({.reads = 2, .both_short = true, .unsent = true}) == HandOverStep::wait_for_sinks);
  CHECK(step({.reads = 3, .both_short = false, .unsent = true}) == HandOverStep::wait_for_sinks);
  // A read that came back full: read again, a bounded number of times.
  CHECK(step({.reads = 2}) == HandOverStep::read_again);
  CHECK(step({.reads = 3}) == HandOverStep::back_off);
  CHECK(step({.reads = 1, .too_large = true, .both_short = true}) == HandOverStep::back_off);
  CHECK(step({.reads = 1, .ended = true, .both_short = true}) == HandOverStep::give_up);  // EOF or an error
  CHECK(step({.reads = 1, .ended = true, .too_large = true}) == HandOverStep::give_up);
}

TEST_CASE("a hand-over reads a queue only if one read holds it and its sink has room for most of it") {
  const HandOverLimits limits{3, kHandOverReadSlack + 1000, 100};
  CHECK(drain_fits(0, 0, {3, kHandOverReadSlack, kHandOverReadSlack}));  // nothing queued: the slack alone
  CHECK(drain_fits(1000, kHandOverReadSlack + 900, limits));
  CHECK_FALSE(drain_fits(1001, kHandOverReadSlack + 10000, limits));  // more than one read
  CHECK_FALSE(drain_fits(1000, kHandOverReadSlack + 899, limits));    // more than the sink's room + unsent_bytes
  CHECK(drain_fits(4u << 20, 4u << 20));  // a full loopback receive buffer into a sink with room
}

TEST_CASE("a hand-over that backed off is tried again after twice the bytes, a bounded number of times") {
  CHECK(next_hand_over(200, 100, 0, 3) == 400u);
  CHECK(next_hand_over(100, 300, 2, 3) == 600u);
  CHECK_FALSE(next_hand_over(100, 300, 3, 3));
}
