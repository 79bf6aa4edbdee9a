// The splice stage of a connection: after the hello has been replayed, both sockets go into
// the sockhash and the kernel carries the bytes. The worker keeps what the kernel does not:
// FIN propagation after the redirected bytes drained, the budget for a peer that stops
// reading, idle time and byte counts from the BPF counters, and the userspace relay for a
// direction the kernel handed back. (Hazards and their tests: proxy/bpf/splice_engine.h.)
#include <poll.h>

#include <spdlog/spdlog.h>

#include "session/op_kind.h"
#include "session/worker.h"

namespace snisplice::session {
namespace {

// While bytes move, counters and budget are checked this often; an idle pair backs off to
// the slow interval; a FIN waiting for its bytes to drain is re-checked fast.
constexpr std::chrono::milliseconds kActiveCheck{5};
constexpr std::chrono::milliseconds kIdleCheckMax{1000};
constexpr std::chrono::milliseconds kDrainCheck{2};

}  // namespace

bool Worker::try_splice(Session& s) {
  if (!shared_.splice || s.runtime->config->splice == config::SpliceMode::userspace) return false;
  auto pair = shared_.splice->splice(s.client.get(), s.backend.get());
  if (!pair) {
    // Per connection, not per process: e.g. a client that half-closed right after its hello.
    spdlog::debug("{}: relaying in userspace: {} ({})", s.client_address.to_string(),
                  bpf::to_string(pair.error().failure), pair.error().message);
    return false;
  }
  s.pair.emplace(std::move(*pair));
  s.spliced = true;
  s.phase = Phase::spliced;
  s.up.in_kernel = true;
  s.down.in_kernel = true;
  shared_.metrics.spliced_sockmap.Increment();
  arm_splice_poll(s, true);
  arm_splice_poll(s, false);
  s.splice_check_interval = kActiveCheck;
  set_deadline(s, Clock::now() + kActiveCheck);
  return true;
}

void Worker::arm_splice_poll(Session& s, bool client_side) {
  io_uring_sqe* sqe = sqe_for(s, client_side ? kSplicePollClient : kSplicePollBackend);
  io_uring_prep_poll_multishot(sqe, client_side ? s.client.get() : s.backend.get(), POLLIN | POLLRDHUP);
}

void Worker::on_splice_poll(Session& s, bool client_side, int result) {
  if (s.phase != Phase::spliced || result < 0) return;
  auto events = static_cast<unsigned>(result);
  Direction& from = client_side ? s.up : s.down;  // the direction this socket is the source of
  Direction& to = client_side ? s.down : s.up;    // the direction this socket is the sink of
  bpf::Direction kernel_from = client_side ? bpf::Direction::client_to_backend : bpf::Direction::backend_to_client;
  if (events & POLLERR) {
    // A reset end: what its peer is still owed drains first (check_splice), as in the relay.
    from.source_failed = true;
    from.eof = true;
    to.sink_failed = true;
    return check_splice(s, Clock::now());
  }
  if ((events & POLLIN) && from.in_kernel && s.pair->stats()[kernel_from].passed_bytes > 0) {
    // The verdict found no peer entry and left the bytes on the socket: from now on this
    // direction is the userspace relay's, in order, EOF included.
    from.in_kernel = false;
    from.fin_pending = false;
    arm_relay_recv(s, client_side);
  }
  if ((events & (POLLRDHUP | POLLHUP)) && from.in_kernel && !from.fin_pending) {
    from.fin_pending = true;
    check_splice(s, Clock::now());
  }
}

bool Worker::count_splice_bytes(Session& s) {
  auto stats = s.pair->stats();
  bool moved = false;
  for (bool upstream : {true, false}) {
    Direction& d = upstream ? s.up : s.down;
    uint64_t redirected = stats[upstream ? bpf::Direction::client_to_backend : bpf::Direction::backend_to_client].redirected_bytes;
    if (redirected <= d.redirected_counted) continue;
    uint64_t delta = redirected - d.redirected_counted;
    d.redirected_counted = redirected;
    d.bytes += delta;
    (upstream ? shared_.metrics.bytes_client_to_backend : shared_.metrics.bytes_backend_to_client)
        .Increment(static_cast<double>(delta));
    moved = true;
  }
  return moved;
}

void Worker::check_splice(Session& s, Clock::time_point now) {
  if (s.phase != Phase::spliced) return;
  bool moved = count_splice_bytes(s);
  if (moved) s.last_activity = now;

  auto kernel = [](bool upstream) {
    return upstream ? bpf::Direction::client_to_backend : bpf::Direction::backend_to_client;
  };
  auto over = s.pair->over_budget(shared_.splice_budget);
  if (over && *over) {
    // A peer that reads slower than its peer sends, or not at all: the kernel would queue
    // redirected bytes without limit (notes, pitfall 4). Handing the direction back to TCP
    // flow control (demotion) duplicated bytes in our 1 GiB test on 6.18, so abort instead.
    shared_.metrics.splice_budget_aborts.Increment();
    spdlog::debug("{}: more than {} bytes redirected but undelivered; aborting", s.client_address.to_string(),
                  shared_.splice_budget);
    s.pair->abort();
    return finish(s, Result::splice_budget, true);
  }

  bool draining = false;
  for (bool upstream : {true, false}) {
    Direction& d = upstream ? s.up : s.down;
    if (!d.in_kernel || !d.fin_pending || d.shut || d.source_failed) continue;
    auto shut = s.pair->shutdown_peer_when_drained(kernel(upstream));
    if (shut && *shut) {
      d.eof = true;
      d.shut = true;
    } else {
      draining = true;
    }
  }

  bool client_failed = s.up.source_failed || s.down.sink_failed;
  bool backend_failed = s.down.source_failed || s.up.sink_failed;
  if (client_failed || backend_failed) {
    // As in the relay: the survivor gets every byte it is owed, then a FIN.
    auto settled = [&](const Direction& d, bool upstream) {
      if (d.sink_failed) return true;
      if (!d.in_kernel) return d.pending.empty() && !d.send_in_flight;
      auto done = s.pair->drained(kernel(upstream));
      return !done || *done;
    };
    if (settled(s.up, true) && settled(s.down, false)) {
      s.survivor = client_failed ? Session::Survivor::backend : Session::Survivor::client;
      return finish(s, client_failed ? Result::client_reset : Result::backend_reset, false);
    }
    draining = true;
  } else if (s.up.shut && s.down.shut) {
    return finish(s, Result::proxied, false);
  }

  const auto idle = s.runtime->config->timeouts.idle;
  if (now - s.last_activity >= idle) return finish(s, Result::idle_timeout, false);
  if (draining) {
    s.splice_check_interval = kDrainCheck;
  } else if (moved) {
    s.splice_check_interval = kActiveCheck;
  } else {
    s.splice_check_interval = std::min(kIdleCheckMax, s.splice_check_interval * 2);
  }
  set_deadline(s, std::min(now + s.splice_check_interval, s.last_activity + idle));
}

}  // namespace snisplice::session
