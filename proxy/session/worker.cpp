#include "session/worker.h"

#include <netinet/in.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <poll.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "events/finished.h"
#include "flow/accept/listener_socket.h"
#include "flow/connect/proxy_header.h"
#include "session/op_kind.h"

namespace snisplice::session {
namespace {



constexpr unsigned kRingEntries = 1024;
constexpr uint16_t kBufferGroup = 1;
constexpr uint16_t kBufferCount = 512;
constexpr uint32_t kBufferSize = 16 * 1024;
// Per direction: stop receiving past this many unsent buffers, resume at half of it.
constexpr size_t kPausePending = 4;
constexpr size_t kResumePending = 2;
constexpr size_t kInitialHelloBuffer = 2048;
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
// How long a surviving socket may keep unsent bytes after its peer failed, and how often
// that is checked.
constexpr auto kLingerLimit = std::chrono::seconds(5);
constexpr auto kLingerPoll = std::chrono::milliseconds(10);

io::Ring make_ring() {
  auto ring = io::Ring::create(kRingEntries);
  if (!ring) throw std::runtime_error(ring.error());
  return std::move(*ring);
}

SocketAddress socket_name(int fd, bool peer) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&storage), &length)
                : ::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length);
  if (rc < 0) return {};
  SocketAddress address = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&storage));
  address.ip = address.ip.unmapped();  // a v4 client on a dual-stack socket is a v4 client
  return address;
}

bool trusted_for_proxy_header(const config::Listener& listener, const IpAddress& peer) {
  for (const auto& network : listener.proxy_protocol_from)
    if (network.contains(peer)) return true;
  return false;
}

// Whether bytes one end sent, which this host's kernel acknowledged to it, have not reached the
// other end's send queue yet: unread on the source socket, in the relay's buffers, redirected by
// the kernel but not delivered, or the preamble's tail.
bool holds_undelivered(const Session& s) {
  if (s.preamble_sent < s.preamble.size()) return true;
  for (bool upstream : {true, false}) {
    const Direction& d = upstream ? s.up : s.down;
    if (!d.pending.empty() || d.send_in_flight) return true;
    int source = upstream ? s.client.get() : s.backend.get();
    int unread = 0;
    if (!d.source_failed && source >= 0 && ::ioctl(source, SIOCINQ, &unread) == 0 && unread > 0) return true;
    if (s.pair && d.in_kernel) {
      auto left = s.pair->undelivered(upstream ? bpf::Direction::client_to_backend
                                               : bpf::Direction::backend_to_client);
      if (!left || *left > 0) return true;
    }
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------- pools

WorkerPools::WorkerPools(const daemon::Runtime& runtime, daemon::HealthBoard& health)
    : generation_(runtime.generation) {
  for (const auto& backend : runtime.config->backends) {
    Entry entry{backend.name, connect::BackendPool(backend.servers, backend.balance), {}};
    for (const auto& server : backend.servers) entry.up.push_back(health.flag(backend.name, server));
    entries_.push_back(std::move(entry));
  }
}

connect::BackendPool* WorkerPools::pool(const std::string& name) {
  for (auto& entry : entries_) {
    if (entry.name != name) continue;
    for (size_t i = 0; i < entry.up.size(); ++i) entry.pool.set_health(i, entry.up[i]->load());
    return &entry.pool;
  }
  return nullptr;
}

// ---------------------------------------------------------------- setup

Worker::Worker(WorkerShared& shared, unsigned index)
    : shared_(shared), index_(index), ring_(make_ring()) {
  auto buffers = io::BufferRing::create(ring_, kBufferGroup, kBufferCount, kBufferSize);
  if (!buffers) throw std::runtime_error(buffers.error());
  buffers_.emplace(std::move(*buffers));
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC));
  if (!wake_fd_) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  published_ = shared_.current();
  pools_ = std::make_shared<WorkerPools>(*published_.runtime, shared_.health);
  refresh_resolver(published_.runtime->config->dns);
}

Worker::~Worker() = default;

bool Worker::bind_listeners() {
  const auto& config = *published_.runtime->config;
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    for (const auto& address : config.listeners[i].listen) {
      auto fd = accept::open_listener_socket(address, config.listeners[i].transparent);
      if (!fd) {
        spdlog::error("listener {}: {}", config.listeners[i].name, fd.error());
        return false;
      }
      listeners_.push_back({config.listeners[i].name, std::move(*fd)});
    }
  }
  return true;
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

io_uring_sqe* Worker::sqe_for(Session& s, uint8_t kind) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_sqe_set_data64(sqe, io::OpTag{kind, s.slot, s.generation}.encode());
  ++s.inflight;
  return sqe;
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
  const auto idle = s.runtime->config->timeouts.idle;
  switch (s.phase) {
    case Phase::hello:
      finish(s, Result::client_hello_timeout, false);
      return;
    case Phase::spliced:
      return check_splice(s, now);
    case Phase::preamble:
    case Phase::relaying:
      if (now - s.last_activity >= idle) {
        finish(s, Result::idle_timeout, false);
      } else {
        set_deadline(s, s.last_activity + idle);
      }
      return;
    case Phase::resolving:   // bounded by dns.timeout x dns.tries
    case Phase::connecting:  // bounded by the linked connect timeout
    case Phase::closing:
      return;
  }
}

void Worker::run() {
  ring_.enable();
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_read(sqe, wake_fd_.get(), &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(sqe, io::OpTag{kWake, 0, 0}.encode());
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
    ring_.submit_and_wait(next - now);

    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring_.get(), head, cqe) {
      dispatch(*cqe);
      ++seen;
    }
    io_uring_cq_advance(ring_.get(), seen);

    now = Clock::now();
    run_deadlines(now);
    close_lingering(now);
    run_dns_timers();
    for (size_t i = 0; i < listeners_.size(); ++i) {
      auto& l = listeners_[i];
      if (l.fd && !l.accept_armed && !stopping_ && l.retry_at <= now) arm_accept(i);
    }
  }
}

void Worker::begin_stop() {
  stopping_ = true;
  for (auto& l : listeners_) {
    if (!l.fd) continue;
    if (l.accept_armed) {
      io_uring_sqe* sqe = ring_.sqe();
      io_uring_prep_cancel_fd(sqe, l.fd.get(), IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, io::OpTag{kCancel, 0, 0}.encode());
    } else {
      l.fd.reset();
    }
  }
}

void Worker::dispatch(const io_uring_cqe& cqe) {
  auto tag = io::OpTag::decode(cqe.user_data);
  if (tag.kind == kAccept) return on_accept(tag.slot, cqe.res, cqe.flags);
  if (tag.kind == kDnsPoll) return on_dns_poll(static_cast<int>(tag.slot), tag.generation, cqe.res);
  if (tag.kind == kWake) {
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_read(sqe, wake_fd_.get(), &wake_value_, sizeof wake_value_, 0);
    io_uring_sqe_set_data64(sqe, io::OpTag{kWake, 0, 0}.encode());
    return;
  }
  if (tag.generation == 0) {  // a cancel for a listener
    return;
  }
  Session* s = session_for(tag.slot, tag.generation);
  if (!s) {
    // Never expected (a slot is freed only when nothing is in flight), but a buffer must
    // still go back to the ring.
    if (cqe.flags & IORING_CQE_F_BUFFER) {
      buffers_->took_one();
      buffers_->recycle(static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
    }
    return;
  }
  if (!(cqe.flags & IORING_CQE_F_MORE)) --s->inflight;
  switch (tag.kind) {
    case kHelloRecv: on_hello_recv(*s, cqe.res); break;
    case kConnect: on_connect(*s, cqe.res); break;
    case kConnectTimeout: break;
    case kPreamble: on_preamble_sent(*s, cqe.res); break;
    case kRecvUp: on_relay_recv(*s, true, cqe.res, cqe.flags); break;
    case kRecvDown: on_relay_recv(*s, false, cqe.res, cqe.flags); break;
    case kSendUp: on_relay_sent(*s, true, cqe.res); break;
    case kSendDown: on_relay_sent(*s, false, cqe.res); break;
    case kCancel: break;
    case kSplicePollClient: on_splice_poll(*s, true, cqe.res); break;
    case kSplicePollBackend: on_splice_poll(*s, false, cqe.res); break;
    default: break;
  }
  // The handler may have finished and released the session already: look it up again.
  s = session_for(tag.slot, tag.generation);
  if (s && s->phase == Phase::closing && s->inflight == 0) release(*s);
}

// ---------------------------------------------------------------- accept

void Worker::arm_accept(size_t socket_index) {
  auto& l = listeners_[socket_index];
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_multishot_accept(sqe, l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, io::OpTag{kAccept, static_cast<uint32_t>(socket_index), 0}.encode());
  l.accept_armed = true;
}

void Worker::on_accept(size_t socket_index, int result, uint32_t flags) {
  auto& l = listeners_[socket_index];
  if (!(flags & IORING_CQE_F_MORE)) l.accept_armed = false;
  if (result >= 0) {
    start_session(l.listener, UniqueFd(result));
  } else if (result == -EMFILE || result == -ENFILE || result == -ENOBUFS || result == -ENOMEM) {
    // Out of descriptors or memory: pause accepting instead of spinning (sniproxy #89).
    spdlog::warn("worker {}: accept: {}; pausing accepts for {} ms", index_, std::strerror(-result),
                 kAcceptBackoff.count());
    l.retry_at = Clock::now() + kAcceptBackoff;
    if (l.accept_armed) {
      io_uring_sqe* sqe = ring_.sqe();
      io_uring_prep_cancel_fd(sqe, l.fd.get(), IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, io::OpTag{kCancel, 0, 0}.encode());
    }
  } else if (result != -ECANCELED) {
    spdlog::debug("worker {}: accept: {}", index_, std::strerror(-result));
  }
  if (!l.accept_armed && stopping_) l.fd.reset();
}

void Worker::start_session(const std::string& listener_name, UniqueFd client) {
  Published now_published = shared_.current();
  if (now_published.runtime != published_.runtime) {
    published_ = std::move(now_published);
    pools_ = std::make_shared<WorkerPools>(*published_.runtime, shared_.health);
    refresh_resolver(published_.runtime->config->dns);  // a reload re-reads resolv.conf too
  }
  const auto& config = *published_.runtime->config;
  size_t listener_index = 0;
  while (listener_index < config.listeners.size() && config.listeners[listener_index].name != listener_name)
    ++listener_index;
  if (listener_index == config.listeners.size()) return;  // removed by a reload: close
  const config::Listener& listener = config.listeners[listener_index];

  SocketAddress peer = socket_name(client.get(), true);
  if (!shared_.admission.try_admit(listener.name, peer.ip, listener.max_connections,
                                   listener.per_ip_max_connections)) {
    spdlog::debug("{}: refusing {}: connection limit", listener.name, peer.to_string());
    shared_.metrics.connections(listener.name, "", std::string(result_label(Result::limit_exceeded))).Increment();
    shared_.event_bus.emit([&] {
      return events::Refused{listener.name, peer, "", std::string(result_label(Result::limit_exceeded))};
    });
    return;  // `client` closes here: a plain FIN, no bytes read
  }
  accept::tune_connection_socket(client.get());

  Session& s = new_session();
  s.admitted = true;
  s.runtime = published_.runtime;
  s.pools = pools_;
  s.listener = listener_index;
  s.client = std::move(client);
  s.peer_address = peer;
  s.client_address = peer;
  s.local_address = socket_name(s.client.get(), false);
  s.started = Clock::now();
  s.started_wall = std::chrono::system_clock::now();
  s.last_activity = s.started;
  s.parser.emplace(listener.protocol, listener.client_hello_max_bytes);
  s.proxy_header_done = !trusted_for_proxy_header(listener, peer.ip);
  s.inbound.resize(std::min<size_t>(kInitialHelloBuffer, listener.client_hello_max_bytes));
  shared_.metrics.active(listener.name).Increment();
  s.counted_active = true;
  shared_.event_bus.emit([&] { return events::Accepted{listener.name, peer}; });
  // One absolute deadline for the whole hello: a dribbling client cannot extend it.
  set_deadline(s, s.started + listener.client_hello_timeout);
  arm_hello_recv(s);
}

// ---------------------------------------------------------------- hello

void Worker::arm_hello_recv(Session& s) {
  io_uring_sqe* sqe = sqe_for(s, kHelloRecv);
  io_uring_prep_recv(sqe, s.client.get(), s.inbound.data() + s.inbound_length,
                     s.inbound.size() - s.inbound_length, 0);
}

void Worker::on_hello_recv(Session& s, int result) {
  if (s.phase != Phase::hello) return;
  if (result == 0) return finish(s, Result::client_closed, false);
  if (result < 0) return finish(s, Result::client_closed, true);
  s.inbound_length += static_cast<size_t>(result);
  const config::Listener& listener = s.runtime->config->listeners[s.listener];
  std::span<const uint8_t> received(s.inbound.data(), s.inbound_length);

  if (!s.proxy_header_done) {
    auto outcome = proxy_protocol::parse(received);
    if (std::holds_alternative<proxy_protocol::NeedMore>(outcome)) {
      if (s.inbound_length == s.inbound.size()) s.inbound.resize(s.inbound.size() * 2);
      return arm_hello_recv(s);
    }
    if (auto* done = std::get_if<proxy_protocol::Done>(&outcome)) {
      if (done->source) s.client_address = *done->source;
      if (done->destination) s.local_address = *done->destination;
      s.proxy_header_length = done->consumed;
    } else if (std::get<proxy_protocol::Rejected>(outcome).reason !=
               proxy_protocol::RejectReason::bad_signature) {
      spdlog::debug("{}: {}: bad PROXY header: {}", listener.name, s.peer_address.to_string(),
                    proxy_protocol::to_string(std::get<proxy_protocol::Rejected>(outcome).reason));
      return finish(s, Result::proxy_protocol_error, false);
    }
    // A trusted source may also connect without a header.
    s.proxy_header_done = true;
  } else if (s.proxy_header_length == 0) {
    switch (proxy_protocol::proxy_header_presence(received)) {
      case proxy_protocol::HeaderPresence::present:
        spdlog::debug("{}: {} sent a PROXY header but is not in proxy_protocol_from", listener.name,
                      s.peer_address.to_string());
        return finish(s, Result::proxy_protocol_error, false);
      case proxy_protocol::HeaderPresence::undecided:
        return arm_hello_recv(s);  // fewer bytes than a signature: within the hello's buffer
      case proxy_protocol::HeaderPresence::absent:
        break;
    }
  }

  auto outcome = s.parser->feed(received.subspan(s.proxy_header_length));
  switch (outcome.state) {
    case hello::Outcome::State::need_more: {
      size_t limit = s.proxy_header_length + listener.client_hello_max_bytes;
      if (s.inbound_length == s.inbound.size()) {
        // The parser rejects a hello over the limit itself; the +1 lets it see that byte.
        s.inbound.resize(std::min(s.inbound.size() * 2, limit + 1));
      }
      if (s.inbound_length == s.inbound.size()) return finish(s, Result::client_hello_error, false);
      return arm_hello_recv(s);
    }
    case hello::Outcome::State::rejected:
      spdlog::debug("{}: {}: {}", listener.name, s.client_address.to_string(),
                    hello::reject_label(outcome.reject));
      return finish(s, Result::client_hello_error, false);
    case hello::Outcome::State::done:
      s.hello = std::move(outcome.hello);
      shared_.metrics.client_hello_bytes.Observe(static_cast<double>(s.hello.consumed));
      return on_hello_complete(s);
  }
}

void Worker::on_hello_complete(Session& s) {
  set_deadline(s, {});
  s.parser.reset();  // its state is no longer needed; the Hello holds what routing uses
  route(s);
}

// ---------------------------------------------------------------- route

void Worker::route(Session& s) {
  const auto& runtime = *s.runtime;
  size_t table_index = runtime.listener_table[s.listener];
  auto match = runtime.tables[table_index].match(s.hello.host, s.hello.alpn);
  if (!match) return finish(s, Result::no_route, false);
  s.route = *match;
  s.routed = true;
  const config::Route& route = runtime.config->tables[table_index].routes[s.route];
  shared_.event_bus.emit([&] {
    return events::Routed{runtime.config->listeners[s.listener].name, s.client_address, s.hello.host,
                          s.hello.alpn, runtime.route_labels[table_index][s.route], route.backend};
  });
  switch (route.action) {
    case config::RouteAction::reject:
      return finish(s, Result::rejected, false);
    case config::RouteAction::original_dst:
      // The address the client dialled (TPROXY); the address policy still applies.
      s.dial.push_back({s.local_address, std::nullopt});
      s.policy_checked = true;
      s.phase = Phase::connecting;
      return connect_next(s);
    case config::RouteAction::resolve:
      return resolve_route(s, route);
    case config::RouteAction::backend:
      break;
  }
  s.backend_name = route.backend;
  connect::BackendPool* pool = s.pools->pool(route.backend);
  if (!pool) return finish(s, Result::connect_error, false);
  const config::Backend* backend = runtime.config->find_backend(route.backend);
  for (size_t server : pool->candidates(s.client_address.ip, Clock::now()))
    s.dial.push_back({backend->servers[server], server});
  s.phase = Phase::connecting;
  connect_next(s);
}

// ---------------------------------------------------------------- resolve

void Worker::resolve_route(Session& s, const config::Route& route) {
  if (s.hello.host.empty()) return finish(s, Result::no_route, false);  // nothing to resolve
  if (!resolver_) return finish(s, Result::resolve_error, false);
  uint16_t port = route.resolve.port.value_or(s.local_address.port);
  s.phase = Phase::resolving;
  s.policy_checked = true;
  uint32_t slot = s.slot;
  uint32_t generation = s.generation;
  // The answer may come inside resolve() (a cache hit, a literal) or later from the loop.
  resolver_->resolve(s.hello.host, [this, slot, generation, port](const resolve::Answer& answer) {
    Session* waiting = session_for(slot, generation);
    if (!waiting || waiting->phase != Phase::resolving) return;
    on_resolved(*waiting, answer, port);
  });
}

void Worker::on_resolved(Session& s, const resolve::Answer& answer, uint16_t port) {
  if (answer.from_cache) {
    shared_.metrics.dns_cache_hit.Increment();
  } else if (answer.status == resolve::Answer::Status::ok) {
    shared_.metrics.dns_resolved.Increment();
  } else {
    shared_.metrics.dns_failed.Increment();
  }
  shared_.event_bus.emit([&] {
    bool ok = answer.status == resolve::Answer::Status::ok;
    return events::DnsLookup{s.hello.host, ok ? "resolved" : std::string(resolve::to_string(answer.status)),
                             answer.from_cache};
  });
  if (answer.status != resolve::Answer::Status::ok) {
    spdlog::debug("{}: {} did not resolve: {}", s.client_address.to_string(), s.hello.host,
                  resolve::to_string(answer.status));
    return finish(s, Result::resolve_error, false);
  }
  for (const auto& address : answer.addresses) s.dial.push_back({SocketAddress{address, port}, std::nullopt});
  s.phase = Phase::connecting;
  connect_next(s);
}

// ---------------------------------------------------------------- connect

void Worker::connect_next(Session& s) {
  const auto& runtime = *s.runtime;
  // Every address actually dialled is checked, so an answer that changes between lookup and
  // connect (DNS rebinding) cannot reach a refused range.
  while (s.candidate < s.dial.size() && s.policy_checked) {
    const auto& target = s.dial[s.candidate].address;
    size_t table_index = runtime.listener_table[s.listener];
    auto verdict = runtime.route_policies[table_index][s.route].check(target);
    if (verdict.allowed) break;
    spdlog::warn("{}: refusing to dial {} for \"{}\": {}{}{}", runtime.config->listeners[s.listener].name,
                 target.to_string(), s.hello.host, verdict.reason, verdict.embedded_in.empty() ? "" : " via ",
                 verdict.embedded_in);
    s.denied_any = true;
    ++s.candidate;
  }
  if (s.candidate >= s.dial.size())
    return finish(s, s.denied_any ? Result::denied_address : Result::connect_error, false);
  s.backend_address = s.dial[s.candidate].address;
  sockaddr_storage storage;
  socklen_t length = s.backend_address.to_sockaddr(storage);
  // Blocking sockets: io_uring would hand -EAGAIN back for O_NONBLOCK ones instead of waiting.
  s.backend.reset(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.backend) {
    // Out of descriptors, typically: say so at most once a second, count every connection.
    if (auto now = Clock::now(); now - last_socket_warning_ >= std::chrono::seconds(1)) {
      last_socket_warning_ = now;
      spdlog::warn("worker {}: cannot open a backend socket: {}", index_, std::strerror(errno));
    }
    return finish(s, Result::connect_error, false);
  }
  accept::tune_connection_socket(s.backend.get());
  s.connect_started = Clock::now();
  const config::Backend* backend = runtime.config->find_backend(s.backend_name);
  auto timeout = backend ? backend->connect_timeout : config::Backend{}.connect_timeout;
  s.connect_timeout.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
  s.connect_timeout.tv_nsec =
      std::chrono::duration_cast<std::chrono::nanoseconds>(timeout % std::chrono::seconds(1)).count();
  // io_uring copies the address at submission, so a local is fine until the submit below.
  io_uring_sqe* sqe = sqe_for(s, kConnect);
  io_uring_prep_connect(sqe, s.backend.get(), reinterpret_cast<sockaddr*>(&storage), length);
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe* timer = sqe_for(s, kConnectTimeout);
  io_uring_prep_link_timeout(timer, &s.connect_timeout, 0);
  io_uring_submit(ring_.get());
}

void Worker::on_connect(Session& s, int result) {
  if (s.phase != Phase::connecting) return;
  auto server = s.dial[s.candidate].server;
  connect::BackendPool* pool = server ? s.pools->pool(s.backend_name) : nullptr;
  if (result < 0) {
    spdlog::debug("{} {}: connect: {}", s.backend_name.empty() ? s.hello.host : s.backend_name,
                  s.backend_address.to_string(), result == -ECANCELED ? "timed out" : std::strerror(-result));
    if (pool) pool->report_failure(*server, Clock::now());
    s.backend.reset();
    ++s.candidate;
    return connect_next(s);
  }
  if (pool) {
    pool->report_success(*server);
    pool->on_connect_start(*server);
  }
  s.connected = true;
  s.connected_server = server;
  std::vector<Session::DialTarget>().swap(s.dial);
  shared_.metrics.connect_duration.Observe(
      std::chrono::duration<double>(Clock::now() - s.connect_started).count());
  send_preamble(s);
}

// ---------------------------------------------------------------- preamble

void Worker::send_preamble(Session& s) {
  const config::Backend* backend = s.runtime->config->find_backend(s.backend_name);
  if (backend && backend->proxy_protocol != config::ProxyProtocol::off) {
    auto version = backend->proxy_protocol == config::ProxyProtocol::v1 ? proxy_protocol::Version::v1
                                                                        : proxy_protocol::Version::v2;
    s.preamble = proxy_protocol::encode(version, s.client_address, s.local_address);
  }
  s.preamble.insert(s.preamble.end(), s.inbound.begin() + static_cast<long>(s.proxy_header_length),
                    s.inbound.begin() + static_cast<long>(s.inbound_length));
  s.up.bytes = s.inbound_length - s.proxy_header_length;
  shared_.metrics.bytes_client_to_backend.Increment(static_cast<double>(s.up.bytes));
  std::vector<uint8_t>().swap(s.inbound);  // an idle connection keeps no hello buffer
  s.phase = Phase::preamble;
  s.last_activity = Clock::now();
  set_deadline(s, s.last_activity + s.runtime->config->timeouts.idle);
  io_uring_sqe* sqe = sqe_for(s, kPreamble);
  io_uring_prep_send(sqe, s.backend.get(), s.preamble.data(), s.preamble.size(), MSG_NOSIGNAL);
}

void Worker::on_preamble_sent(Session& s, int result) {
  if (s.phase != Phase::preamble) return;
  if (result < 0) return finish(s, Result::backend_reset, true);
  s.preamble_sent += static_cast<size_t>(result);
  if (s.preamble_sent < s.preamble.size()) {
    io_uring_sqe* sqe = sqe_for(s, kPreamble);
    io_uring_prep_send(sqe, s.backend.get(), s.preamble.data() + s.preamble_sent,
                       s.preamble.size() - s.preamble_sent, MSG_NOSIGNAL);
    return;
  }
  std::vector<uint8_t>().swap(s.preamble);
  start_data_path(s);
}

void Worker::start_data_path(Session& s) {
  s.last_activity = Clock::now();
  if (try_splice(s)) return;
  shared_.metrics.spliced_userspace.Increment();
  shared_.event_bus.emit([&] { return events::Spliced{s.client_address, "userspace"}; });
  s.phase = Phase::relaying;
  arm_relay_recv(s, true);
  arm_relay_recv(s, false);
}

// ---------------------------------------------------------------- userspace relay

void Worker::arm_relay_recv(Session& s, bool upstream) {
  Direction& d = upstream ? s.up : s.down;
  io_uring_sqe* sqe = sqe_for(s, upstream ? kRecvUp : kRecvDown);
  io_uring_prep_recv_multishot(sqe, upstream ? s.client.get() : s.backend.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  d.recv_armed = true;
}

void Worker::on_relay_recv(Session& s, bool upstream, int result, uint32_t flags) {
  Direction& d = upstream ? s.up : s.down;
  if (!(flags & IORING_CQE_F_MORE)) d.recv_armed = false;
  if (flags & IORING_CQE_F_BUFFER) {
    auto id = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
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
    if (d.pending.size() >= kPausePending && d.recv_armed && !d.paused) {
      // The sink is slower than the source: stop taking shared buffers for this direction.
      d.paused = true;
      io_uring_sqe* sqe = sqe_for(s, kCancel);
      io_uring_prep_cancel64(sqe, io::OpTag{upstream ? kRecvUp : kRecvDown, s.slot, s.generation}.encode(), 0);
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
  io_uring_sqe* sqe = sqe_for(s, upstream ? kSendUp : kSendDown);
  io_uring_prep_send(sqe, upstream ? s.backend.get() : s.client.get(),
                     buffers_->buffer(chunk.buffer_id).data() + chunk.offset, chunk.length, MSG_NOSIGNAL);
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
  if (d.paused && d.pending.size() <= kResumePending && !d.recv_armed) {
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
  bool client_failed = s.up.source_failed || s.down.sink_failed;
  bool backend_failed = s.down.source_failed || s.up.sink_failed;
  if (client_failed || backend_failed) {
    // Once one side has failed, the connection ends when what the other side is owed has
    // been delivered (or cannot be); the survivor then gets a FIN (release, linger_close).
    auto settled = [](const Direction& d) { return d.sink_failed || (d.pending.empty() && !d.send_in_flight); };
    if (settled(s.up) && settled(s.down)) {
      s.survivor = client_failed ? Session::Survivor::backend : Session::Survivor::client;
      finish(s, client_failed ? Result::client_reset : Result::backend_reset, false);
    }
    return;
  }
  if (s.up.shut && s.down.shut) finish(s, Result::proxied, false);
}

// ---------------------------------------------------------------- DNS plumbing

void Worker::refresh_resolver(const config::Dns& dns) {
  resolve::DnsCache* cache = shared_.dns_cache.load();
  if (!cache) return;  // no resolve routes
  if (resolver_) retired_resolvers_.push_back(std::move(resolver_));
  auto owner = std::make_shared<resolve::Resolver*>(nullptr);
  auto created = resolve::Resolver::create(dns, *cache, [this, owner](int fd, bool read, bool write) {
    watch_dns(*owner, fd, read, write);
  });
  if (!created) {
    spdlog::error("worker {}: DNS resolver: {}; resolve routes will fail", index_, created.error());
    return;
  }
  resolver_ = std::move(*created);
  *owner = resolver_.get();
  resolver_config_ = dns;
}

void Worker::watch_dns(resolve::Resolver* owner, int fd, bool read, bool write) {
  auto it = dns_watches_.find(fd);
  if (it != dns_watches_.end() && it->second.armed) {
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_poll_remove(sqe, io::OpTag{kDnsPoll, static_cast<uint32_t>(fd), it->second.serial}.encode());
    io_uring_sqe_set_data64(sqe, io::OpTag{kCancel, 0, 0}.encode());
  }
  if (!read && !write) {
    if (it != dns_watches_.end()) dns_watches_.erase(it);
    return;
  }
  dns_watches_[fd] = DnsWatch{owner, 0, read, write, false};
  arm_dns_poll(fd);
}

void Worker::arm_dns_poll(int fd) {
  DnsWatch& watch = dns_watches_.at(fd);
  if (++dns_serial_ == 0) ++dns_serial_;  // 0 tags listener operations
  watch.serial = dns_serial_;
  watch.armed = true;
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_poll_add(sqe, fd, (watch.read ? POLLIN : 0) | (watch.write ? POLLOUT : 0));
  io_uring_sqe_set_data64(sqe, io::OpTag{kDnsPoll, static_cast<uint32_t>(fd), watch.serial}.encode());
}

void Worker::on_dns_poll(int fd, uint32_t serial, int result) {
  auto it = dns_watches_.find(fd);
  if (it == dns_watches_.end() || it->second.serial != serial) return;  // replaced or closed
  it->second.armed = false;
  if (result < 0) return;
  resolve::Resolver* owner = it->second.owner;
  auto events = static_cast<unsigned>(result);
  owner->on_fd_ready(fd, events & (POLLIN | POLLERR | POLLHUP), events & POLLOUT);
  it = dns_watches_.find(fd);
  if (it != dns_watches_.end() && !it->second.armed) arm_dns_poll(fd);
}

std::optional<Clock::time_point> Worker::dns_deadline(Clock::time_point now) const {
  std::optional<Clock::time_point> earliest;
  auto consider = [&](const resolve::Resolver& r) {
    if (auto wait = r.next_timeout()) {
      auto when = now + *wait;
      if (!earliest || when < *earliest) earliest = when;
    }
  };
  if (resolver_) consider(*resolver_);
  for (const auto& r : retired_resolvers_) consider(*r);
  return earliest;
}

void Worker::run_dns_timers() {
  // Harmless when early: c-ares only acts on queries whose time has come.
  if (resolver_) resolver_->on_timeout();
  for (const auto& r : retired_resolvers_) r->on_timeout();
  std::erase_if(retired_resolvers_, [](const auto& r) { return r->in_flight() == 0; });
}

// ---------------------------------------------------------------- close

void Worker::recycle_buffers(Direction& d) {
  for (const Chunk& chunk : d.pending) buffers_->recycle(chunk.buffer_id);
  d.pending.clear();
}

void Worker::linger_close(UniqueFd fd) {
  if (!fd) return;
  ::shutdown(fd.get(), SHUT_WR);
  int unsent = 0;
  // close() now would reset the connection if unread bytes are queued, dropping what we sent
  // but the kernel has not: keep the socket until the peer has it all, or a bounded while.
  if (::ioctl(fd.get(), SIOCOUTQ, &unsent) == 0 && unsent > 0)
    lingering_.push_back({std::move(fd), Clock::now() + kLingerLimit});
}

void Worker::close_lingering(Clock::time_point now) {
  std::erase_if(lingering_, [now](Lingering& l) {
    int unsent = 0;
    return now >= l.until || ::ioctl(l.fd.get(), SIOCOUTQ, &unsent) < 0 || unsent == 0;
  });
}

void Worker::finish(Session& s, Result result, bool abort) {
  if (s.phase == Phase::closing) return;
  // A FIN tells a peer it has every byte. When the proxy gives up (idle, shutdown) while it
  // still holds bytes one end sent, both ends get a reset instead: a truncated stream must not
  // look complete. (A failed end's survivor is owed its bytes first: see maybe_finish_relay.)
  if (!abort && s.connected && s.survivor == Session::Survivor::none && holds_undelivered(s)) abort = true;
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
    io_uring_sqe* sqe = sqe_for(s, kCancel);
    io_uring_prep_cancel64(sqe, io::OpTag{kind, s.slot, s.generation}.encode(), 0);
  };
  switch (was) {
    case Phase::hello: cancel(kHelloRecv); return;
    case Phase::connecting: cancel(kConnect); return;  // its linked timeout ends with it
    case Phase::preamble: cancel(kPreamble); return;
    case Phase::resolving:
    case Phase::closing: return;
    case Phase::spliced:
      cancel(kSplicePollClient);
      cancel(kSplicePollBackend);
      break;  // and any direction the relay took over
    case Phase::relaying: break;
  }
  for (bool upstream : {true, false}) {
    const Direction& d = upstream ? s.up : s.down;
    if (d.recv_armed) cancel(upstream ? kRecvUp : kRecvDown);
    if (d.send_in_flight) cancel(upstream ? kSendUp : kSendDown);
  }
}

void Worker::release(Session& s) {
  recycle_buffers(s.up);
  recycle_buffers(s.down);
  if (s.pair) {
    count_splice_bytes(s, s.pair->stats());
    if (s.abort) s.pair->abort();
    s.pair.reset();  // before the fds close: nothing may stay queued toward them
  }
  if (s.abort) {
    // SO_LINGER 0: the close sends RST, so a peer never mistakes an abort for a clean end.
    linger hard{1, 0};
    for (int fd : {s.client.get(), s.backend.get()})
      if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  }
  if (s.survivor != Session::Survivor::none) {
    bool client_survives = s.survivor == Session::Survivor::client;
    UniqueFd& failed = client_survives ? s.backend : s.client;
    linger hard{1, 0};
    if (failed) ::setsockopt(failed.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    linger_close(std::move(client_survives ? s.client : s.backend));
  }
  s.client.reset();
  s.backend.reset();

  const auto& config = *s.runtime->config;
  const config::Listener& listener = config.listeners[s.listener];
  size_t table_index = s.runtime->listener_table[s.listener];
  const std::string& route_label = s.routed ? s.runtime->route_labels[table_index][s.route] : std::string();
  Result result = s.result.value_or(Result::proxied);
  shared_.metrics.connections(listener.name, route_label, std::string(result_label(result))).Increment();
  if (s.counted_active) shared_.metrics.active(listener.name).Decrement();
  if (s.admitted) shared_.admission.release(listener.name, s.peer_address.ip);
  if (s.connected_server) {
    if (auto* pool = s.pools->pool(s.backend_name)) pool->on_connection_end(*s.connected_server);
  }
  close::AccessRecord record;
  record.start = s.started_wall;
  record.listener = listener.name;
  record.client = s.client_address.to_string();
  record.host = s.hello.host;
  record.route = route_label;
  record.backend = s.connected ? s.backend_address.to_string() : std::string();
  record.splice_mode = s.connected ? (s.spliced ? "sockmap" : "userspace") : "";
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
