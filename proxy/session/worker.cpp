// The worker's loop: its ring, its slot table of sessions, their deadlines, and the dispatch of
// each completion to the stage that submitted it. The stages live in their own files, in the
// order of a connection's life: hello.cpp (accept, inbound PROXY, hello), dial.cpp (route,
// resolve, connect, preamble), relay.cpp, splice.cpp, close.cpp; dns.cpp runs c-ares here.
#include "session/worker.h"

#include <cerrno>

#include "flow/accept/cpu_placement.h"
#include "flow/accept/listener_socket.h"
#include "session/lifecycle.h"
#include "session/op_kind.h"

namespace snisplice::session {
namespace {

constexpr unsigned kRingEntries = 1024;
// 8 MiB of shared receive buffers per worker. 32 KiB each moves a bulk stream with half the
// receives and sends of 16 KiB (measured: 1.5-2x the relay's throughput on loopback, one stream
// or 32 each way). A direction pauses at 4 pending; directions whose sinks stopped copy their
// buffers out once buffers are scarce (relay.cpp, spill), so they cannot hold them all.
constexpr uint16_t kBufferCount = 256;
constexpr uint32_t kBufferSize = 32 * 1024;
// How often sockets lingering after their peer failed are checked (close.cpp).
constexpr auto kLingerPoll = std::chrono::milliseconds(10);

}  // namespace

// ---------------------------------------------------------------- setup

tl::expected<std::unique_ptr<Worker>, Error> Worker::create(WorkerShared& shared, unsigned index,
                                                             bool steer_by_cpu) {
  auto ring = io::Ring::create(kRingEntries);
  if (!ring) return tl::unexpected(ring.error());
  UniqueFd wake_fd(::eventfd(0, EFD_CLOEXEC));
  if (!wake_fd) return tl::unexpected(Error::from_errno("eventfd", errno));
  std::unique_ptr<Worker> worker(new Worker(shared, index, std::move(*ring), std::move(wake_fd)));
  // The buffer ring registers with the ring where it now lives, inside the worker.
  auto buffers = io::BufferRing::create(worker->ring_, kBufferGroup, kBufferCount, kBufferSize);
  if (!buffers) return tl::unexpected(buffers.error());
  worker->buffers_.emplace(std::move(*buffers));
  if (auto bound = worker->bind_listeners(steer_by_cpu); !bound) return tl::unexpected(bound.error());
  return worker;
}

Worker::Worker(WorkerShared& shared, unsigned index, io::Ring ring, UniqueFd wake_fd)
    : shared_(shared), index_(index), ring_(std::move(ring)), wake_fd_(std::move(wake_fd)) {
  published_ = shared_.current();
  pools_ = std::make_shared<WorkerPools>(*published_.runtime, shared_.health);
  refresh_resolver(published_.runtime->config->dns);
}

Worker::~Worker() = default;

tl::expected<void, Error> Worker::bind_listeners(bool steer_by_cpu) {
  const auto& config = *published_.runtime->config;
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    for (const auto& address : config.listeners[i].listen) {
      auto fd = accept::open_listener_socket(address, config.listeners[i].transparent);
      if (!fd) return tl::unexpected(fd.error().within("listener " + config.listeners[i].name));
      if (steer_by_cpu && index_ == 0) {
        if (auto steered = accept::steer_by_cpu(fd->get()); !steered)
          return tl::unexpected(steered.error().within("listener " + config.listeners[i].name));
      }
      bool wildcard = address.ip == IpAddress{address.ip.family, {}};
      std::optional<SocketAddress> local;
      if (!wildcard && !config.listeners[i].transparent && address.port != 0) local = address;
      listeners_.push_back({config.listeners[i].name, std::move(*fd), local});
    }
  }
  return {};
}

void Worker::wake() {
  uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(wake_fd_.get(), &one, sizeof one);
}

// ---------------------------------------------------------------- plumbing

Session* Worker::session_for(uint32_t slot, uint32_t generation) {
  if (slot >= slots_.size() || !slots_[slot]) return nullptr;
  Session* s = slots_[slot].get();
  return s->generation == generation ? s : nullptr;
}

Session& Worker::new_session() {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  if (generations_.size() <= slot) generations_.resize(slot + 1, 0);
  uint32_t generation = ++generations_[slot];
  if (generation == 0) generation = ++generations_[slot];  // 0 tags listener operations
  slots_[slot] = std::make_unique<Session>();
  Session& s = *slots_[slot];
  s.slot = slot;
  s.generation = generation;
  ++live_sessions_;
  return s;
}

io::OpTag Worker::tag_for(Session& s, uint8_t kind) {
  ++s.inflight;
  return io::OpTag{kind, s.slot, s.generation};
}

void Worker::set_deadline(Session& s, Clock::time_point when) {
  if (s.deadline != Clock::time_point{}) deadlines_.erase({s.deadline, s.slot});
  s.deadline = when;
  if (when != Clock::time_point{}) deadlines_.insert({when, s.slot});
}

void Worker::run_deadlines(Clock::time_point now) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    auto [when, slot] = *deadlines_.begin();
    deadlines_.erase(deadlines_.begin());
    Session& s = *slots_[slot];
    s.deadline = {};
    on_deadline(s, now);
  }
}

void Worker::on_deadline(Session& s, Clock::time_point now) {
  auto verdict = lifecycle::on_deadline(s.phase, now, s.last_activity, s.runtime->config->timeouts.idle);
  switch (verdict.action) {
    case lifecycle::DeadlineAction::hello_timeout: return finish(s, Result::client_hello_timeout, false);
    case lifecycle::DeadlineAction::idle_timeout: return finish(s, Result::idle_timeout, false);
    case lifecycle::DeadlineAction::rearm_idle: return set_deadline(s, verdict.rearm_at);
    case lifecycle::DeadlineAction::check_splice: return check_splice(s, now);
    case lifecycle::DeadlineAction::none: return;
  }
}

void Worker::run() {
  ring_.enable();
  arm_wake();
  for (size_t i = 0; i < listeners_.size(); ++i) arm_accept(i);

  while (true) {
    if (shared_.stopping.load() && !stopping_) begin_stop();
    auto now = Clock::now();
    if (stopping_) {
      auto grace_end = Clock::time_point(Clock::duration(shared_.drain_deadline_ns.load()));
      if (now >= grace_end) {
        for (auto& slot : slots_)
          if (slot && slot->phase != Phase::closing) finish(*slot, Result::shutdown, false);
      }
      bool listeners_closed = true;
      for (auto& l : listeners_) listeners_closed &= !l.fd;
      if (live_sessions_ == 0 && listeners_closed) {
        lingering_.clear();
        break;
      }
    }
    auto next = now + std::chrono::seconds(1);
    if (!deadlines_.empty()) next = std::min(next, deadlines_.begin()->first);
    for (auto& l : listeners_)
      if (l.fd && !l.accept_armed && !stopping_) next = std::min(next, l.retry_at);
    if (stopping_)
      next = std::min(next, Clock::time_point(Clock::duration(shared_.drain_deadline_ns.load())));
    if (!lingering_.empty()) next = std::min(next, now + kLingerPoll);
    if (auto dns = dns_deadline(now)) next = std::min(next, *dns);
    if (!waiting_for_buffers_.empty()) next = std::min(next, last_spill_ + lifecycle::kSinkStalledAfter);
    ring_.submit_and_wait(next - now);

    ring_.drain_completions([this](const io::Completion& done) { dispatch(done); });

    now = Clock::now();
    run_deadlines(now);
    close_lingering(now);
    if (!waiting_for_buffers_.empty() && now - last_spill_ >= lifecycle::kSinkStalledAfter) {
      last_spill_ = now;
      spill_stalled(now);
    }
    run_dns_timers();
    for (size_t i = 0; i < listeners_.size(); ++i) {
      auto& l = listeners_[i];
      if (l.fd && !l.accept_armed && !stopping_ && l.retry_at <= now) arm_accept(i);
    }
  }
  ring_.submit();  // the closes of the last sessions released
}

void Worker::begin_stop() {
  stopping_ = true;
  for (auto& l : listeners_) {
    if (!l.fd) continue;
    if (l.accept_armed) {
      ring_.cancel_fd(l.fd.get(), io::OpTag{kCancel, 0, 0});
    } else {
      l.fd.reset();
    }
  }
}

void Worker::arm_wake() {
  ring_.read(wake_fd_.get(), {reinterpret_cast<uint8_t*>(&wake_value_), sizeof wake_value_}, io::OpTag{kWake, 0, 0});
}

void Worker::dispatch(const io::Completion& done) {
  const io::OpTag tag = done.tag;
  if (tag.kind == kAccept) return on_accept(tag.slot, done.result, done.more());
  if (tag.kind == kDnsPoll) return on_dns_poll(static_cast<int>(tag.slot), tag.generation, done.result);
  if (tag.kind == kWake) return arm_wake();
  if (tag.generation == 0) return;  // a cancel for a listener, or a released socket's close
  Session* s = session_for(tag.slot, tag.generation);
  if (!s) {
    // Never expected (a slot is freed only when nothing is in flight), but a buffer must
    // still go back to the ring.
    if (auto buffer = done.buffer()) {
      buffers_->took_one();
      buffers_->recycle(*buffer);
    }
    return;
  }
  if (!done.more()) --s->inflight;
  switch (tag.kind) {
    case kHelloRecv: on_hello_recv(*s, done.result); break;
    case kHelloPoll: on_hello_poll(*s, done.result); break;
    case kConnect: on_connect(*s, done.result); break;
    case kConnectTimeout: break;
    case kPreamble: on_preamble_sent(*s, done.result); break;
    case kRecvUp: on_relay_recv(*s, true, done); break;
    case kRecvDown: on_relay_recv(*s, false, done); break;
    case kSendUp: on_relay_sent(*s, true, done.result); break;
    case kSendDown: on_relay_sent(*s, false, done.result); break;
    case kCancel: break;
    case kDrainedUp: on_drained_sent(*s, true, done.result); break;
    case kDrainedDown: on_drained_sent(*s, false, done.result); break;
    case kSplicePollClient: on_splice_poll(*s, true, done.result); break;
    case kSplicePollBackend: on_splice_poll(*s, false, done.result); break;
    case kSpliceWakeClient: on_splice_wake(*s, true); break;
    case kSpliceWakeBackend: on_splice_wake(*s, false); break;
    default: break;
  }
  // The handler may have finished and released the session already: look it up again.
  s = session_for(tag.slot, tag.generation);
  if (s && s->phase == Phase::closing && s->inflight == 0) release(*s);
}
}  // namespace snisplice::session
