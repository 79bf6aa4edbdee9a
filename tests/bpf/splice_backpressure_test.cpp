// Backpressure: a slow or stopped destination pauses its source without a stall, and one that
// never reads is aborted within the budget.
#include "splice_fixture.h"

using namespace splice_test;

namespace {

// The daemon's pacing of one spliced direction (proxy/session/splice.cpp): above a
// high mark of redirected-but-undelivered bytes pause the direction, at or below a low mark
// resume it, and while it holds bytes relay them. Checked as often as the worker does while
// a direction is paced (every ms).
struct Pacing {
  SplicedPair& pair;
  Direction direction;
  uint64_t pause_above = 16 * kMiB;
  uint64_t resume_below = 4 * kMiB;
  uint64_t peak_undelivered = 0;
  int pauses = 0;
  std::string error = {};
  bool step() {
    if (!error.empty()) return false;
    auto pending = pair.undelivered(direction);
    if (!pending) {
      error = pending.error().message();
      return false;
    }
    peak_undelivered = std::max(peak_undelivered, *pending);
    if (!pair.paused(direction) && *pending > pause_above) {
      auto paused = pair.pause(direction);
      if (!paused) error = paused.error().message();
      ++pauses;
    } else if (pair.paused(direction) && *pending <= resume_below) {
      auto resumed = pair.resume(direction);
      if (!resumed) error = resumed.error().message();
    }
    if (pair.holding(direction)) {
      auto relayed = pair.relay_held(direction);
      if (!relayed) error = relayed.error().message();
    }
    return error.empty();
  }
};

// A destination that reads at most `bytes_per_second`, in steady small steps. It records the
// longest wait between two reads that returned bytes, and the longest time it went hungry:
// from a read that found nothing although the rate allowed more, to the next read that
// returned bytes. (The first also counts the moments this process was not running at all,
// which on a loaded machine reach tens of ms while megabytes wait for it.)
struct SteadyReader {
  Reader reader;
  uint64_t bytes_per_second;
  Clock::time_point started = {};
  Clock::time_point last_bytes = {};
  Clock::time_point hungry_since = {};
  Clock::duration longest_gap = {};
  Clock::duration longest_hunger = {};
  void step(std::vector<uint8_t>& buffer) {
    const auto now = Clock::now();
    if (started == Clock::time_point{}) started = now;
    const double elapsed = std::chrono::duration<double>(now - started).count();
    const auto allowed = static_cast<uint64_t>(elapsed * static_cast<double>(bytes_per_second));
    if (allowed <= reader.received) return;
    reader.max_per_step = static_cast<size_t>(std::min<uint64_t>(allowed - reader.received, 256 * 1024));
    const uint64_t before = reader.received;
    step_reader(reader, buffer);
    if (reader.received == before) {
      if (hungry_since == Clock::time_point{} && before > 0) hungry_since = now;
      return;
    }
    if (last_bytes != Clock::time_point{}) longest_gap = std::max(longest_gap, now - last_bytes);
    if (hungry_since != Clock::time_point{}) longest_hunger = std::max(longest_hunger, now - hungry_since);
    last_bytes = now;
    hungry_since = {};
  }
};

}  // namespace

// Most pairs never pause: their control entries are not made (two inserts and two deletes
// fewer per connection); the first pause makes one, release removes it.
TEST_CASE("a control entry exists only for a direction that paused") {
  SpliceEngine engine = load_engine();
  {
    Topology t;
    SplicedPair pair = splice_or_fail(engine, t);
    CHECK(engine.occupancy()->control_entries == 0);
    CHECK(engine.occupancy()->stats_entries == 2);
    REQUIRE(pair.pause(Direction::backend_to_client).has_value());
    CHECK(engine.occupancy()->control_entries == 1);
    REQUIRE(pair.resume(Direction::backend_to_client).has_value());
    CHECK(engine.occupancy()->control_entries == 1);
    Writer down{t.backend.get(), 22, 1 * kMiB};
    Reader at_client{t.client.get(), 22, 1 * kMiB};
    INFO(describe(down) << "; " << describe(at_client) << "; " << describe(pair));
    REQUIRE(pump({&down}, {&at_client}, 5s));
    CHECK(at_client.intact());
    CHECK(pair.stats().backend_to_client.redirected_bytes == 1 * kMiB);
  }
  require_maps_empty(engine);
}

// Hazard (docs/architecture.md): no backpressure. A backend that never reads makes the kernel park whatever the
// client sends; the budget check must abort the pair before memory runs away.
TEST_CASE("a destination that never reads is aborted within the budget, with RST to both") {
  SpliceEngine engine = load_engine();
  {
    Topology t;
    SplicedPair pair = splice_or_fail(engine, t);
    constexpr uint64_t kBudget = 16 * kMiB;
    Writer flood{t.client.get(), 12, 4096 * kMiB};
    uint64_t undelivered_at_abort = 0;
    bool aborted = false;
    pump({&flood}, {}, 10s, [&] {
      auto over = pair.over_budget(kBudget);
      REQUIRE_MESSAGE(over.has_value(), (over ? std::string() : over.error().message()));
      if (!*over) return true;
      undelivered_at_abort = pair.stats().client_to_backend.redirected_bytes -
                             *pair.delivered(Direction::client_to_backend);
      pair.abort();
      t.proxy_client_side.reset();
      t.proxy_backend_side.reset();
      aborted = true;
      return false;
    });
    REQUIRE(aborted);
    MESSAGE("client sent " << flood.sent / kMiB << " MiB; undelivered at abort: "
                           << undelivered_at_abort / kMiB << " MiB");
    CHECK(undelivered_at_abort > kBudget);
    CHECK(undelivered_at_abort < 2 * kBudget);
    // Both ends see a reset, not a clean close.
    char byte = 0;
    CHECK(eventually([&] { return ::recv(t.client.get(), &byte, 1, MSG_DONTWAIT) == -1 && errno == ECONNRESET; },
                     1000ms));
    // The backend has unread bytes, which recv() would return before the error.
    CHECK(eventually([&] { return socket_error(t.backend.get()) == ECONNRESET; }, 1000ms));
  }
  require_maps_empty(engine);
}

// Hazard (docs/architecture.md), the graceful answer: a destination that reads, but slower than the source
// sends. Pausing the direction above a high mark (the verdict holds new bytes on the source,
// under TCP flow control, and they are relayed after the redirected ones) and resuming below
// a low one keeps the kernel's queue bounded. Without the pause the queue grows to most of
// the transfer.
TEST_CASE("a slow destination pauses its source: no reset, no loss, memory bounded") {
  SpliceEngine engine = load_engine();
  {
    Topology t;
    SplicedPair pair = splice_or_fail(engine, t);
    constexpr uint64_t kTotal = 96 * kMiB;
    Writer up{t.client.get(), 30, kTotal, /*shutdown_after=*/true};
    Reader at_backend{t.backend.get(), 30, kTotal, /*want_eof=*/true};
    at_backend.max_per_step = 64 * 1024;
    FinPropagation fin{pair, t.p1(), Direction::client_to_backend};
    Pacing pacing{pair, Direction::client_to_backend, 4 * kMiB, 1 * kMiB};
    uint64_t peak_held = 0;
    auto daemon = [&] {
      if (!pacing.step()) return false;
      const auto stats = pair.stats().client_to_backend;
      peak_held = std::max(peak_held, stats.held_bytes - pair.relayed(Direction::client_to_backend));
      fin.step();
      return fin.error.empty();
    };
    INFO(describe(up) << "; " << describe(at_backend) << "; " << describe(pair) << "; " << pacing.error);
    REQUIRE(pump({&up}, {&at_backend}, 60s, daemon));
    MESSAGE("peak undelivered " << pacing.peak_undelivered / 1024 << " KiB, peak held " << peak_held / 1024
                                << " KiB over " << pacing.pauses << " pauses");
    CHECK(pacing.pauses > 0);
    CHECK(at_backend.intact());
    CHECK(at_backend.eof);
    // The high mark, plus the window the sender had been granted before the pause, plus what
    // arrived between two checks of this loop.
    CHECK(pacing.peak_undelivered < pacing.pause_above + 16 * kMiB);
    // Held bytes are bounded by the source's receive buffer (tcp_rmem's maximum at most).
    CHECK(peak_held <= 32 * kMiB);
    const auto stats = pair.stats().client_to_backend;
    CHECK(stats.passed_bytes == 0);
    CHECK(stats.held_bytes == pair.relayed(Direction::client_to_backend));
    CHECK(stats.redirected_bytes + stats.held_bytes == kTotal);
  }
  require_maps_empty(engine);
}

// Issue 15: pacing must throttle the sender without ever starving a destination that still
// drains. A sender whose window closed completely learns of a reopened window only from its
// next zero-window probe (200 ms or more, backing off): the destination then waits for bytes
// although it reads at a steady rate.
TEST_CASE("a steady slow reader sees no stall over 50 ms") {
  SpliceEngine engine = load_engine();
  {
    Topology t;
    SplicedPair pair = splice_or_fail(engine, t);
    constexpr uint64_t kRate = 80 * kMiB;  // bytes per second, far below the sender's
    constexpr uint64_t kTotal = 400 * kMiB;  // five seconds at kRate
    // A destination with a fixed, modest receive buffer (as a remote client's window is):
    // an autotuned loopback buffer would hold tens of MiB and hide any stall upstream of it.
    const int backend_buffer = 128 * 1024;
    REQUIRE(::setsockopt(t.backend.get(), SOL_SOCKET, SO_RCVBUF, &backend_buffer, sizeof backend_buffer) == 0);
    Writer up{t.client.get(), 31, kTotal};
    SteadyReader at_backend{Reader{t.backend.get(), 31, kTotal}, kRate};
    Pacing pacing{pair, Direction::client_to_backend};
    std::vector<uint8_t> buffer(256 * 1024);
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline && !at_backend.reader.done() && pacing.step()) {
      if (!up.done()) step_writer(up, buffer);
      at_backend.step(buffer);
      pollfd p{t.client.get(), POLLOUT, 0};
      ::poll(&p, up.done() ? 0 : 1, 1);
      ::usleep(up.done() ? 1000 : 0);
    }
    const auto gap_ms = std::chrono::duration_cast<std::chrono::milliseconds>(at_backend.longest_gap).count();
    const auto hunger_ms = std::chrono::duration_cast<std::chrono::milliseconds>(at_backend.longest_hunger).count();
    MESSAGE("longest gap " << gap_ms << " ms, longest hunger " << hunger_ms << " ms; peak undelivered "
                           << pacing.peak_undelivered / kMiB << " MiB over " << pacing.pauses << " pauses");
    INFO(describe(up) << "; " << describe(at_backend.reader) << "; " << describe(pair) << "; " << pacing.error);
    REQUIRE(pacing.error.empty());
    REQUIRE(at_backend.reader.done());
    CHECK(at_backend.reader.intact());
    CHECK(pacing.pauses > 0);
    CHECK(hunger_ms <= 50);
    CHECK(pacing.peak_undelivered < 128 * kMiB);
  }
  require_maps_empty(engine);
}
