// Accept and hello: a new connection is admitted (or refused), its inbound PROXY header read
// when its peer is trusted, and its ClientHello / request head parsed, under one absolute
// deadline armed at accept.
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "flow/proxy_protocol/proxy_header.h"
#include "session/op_kind.h"
#include "session/worker.h"

namespace snisplice::session {
namespace {

constexpr size_t kInitialHelloBuffer = 2048;
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

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

hello::Protocol wire_protocol(config::Protocol protocol) {
  switch (protocol) {
    case config::Protocol::tls: return hello::Protocol::tls;
    case config::Protocol::http: return hello::Protocol::http;
  }
  return hello::Protocol::tls;  // unreachable for valid enum values
}

bool trusted_for_proxy_header(const config::Listener& listener, const IpAddress& peer) {
  for (const auto& network : listener.proxy_protocol_from)
    if (network.contains(peer)) return true;
  return false;
}

}  // namespace

// ---------------------------------------------------------------- accept

void Worker::arm_accept(size_t socket_index) {
  auto& l = listeners_[socket_index];
  ring_.accept_multishot(l.fd.get(), io::OpTag{kAccept, static_cast<uint32_t>(socket_index), 0});
  l.accept_armed = true;
}

void Worker::on_accept(size_t socket_index, int result, bool more) {
  auto& l = listeners_[socket_index];
  if (!more) l.accept_armed = false;
  if (result >= 0) {
    start_session(l, UniqueFd(result));
  } else if (result == -EMFILE || result == -ENFILE || result == -ENOBUFS || result == -ENOMEM) {
    // Out of descriptors or memory: pause accepting instead of spinning (sniproxy #89).
    spdlog::warn("worker {}: accept: {}; pausing accepts for {} ms", index_, std::strerror(-result),
                 kAcceptBackoff.count());
    l.retry_at = Clock::now() + kAcceptBackoff;
    if (l.accept_armed) ring_.cancel_fd(l.fd.get(), io::OpTag{kCancel, 0, 0});
  } else if (result != -ECANCELED) {
    spdlog::debug("worker {}: accept: {}", index_, std::strerror(-result));
  }
  if (!l.accept_armed && stopping_) l.fd.reset();
}

void Worker::start_session(const ListenerSocket& listener_socket, UniqueFd client) {
  Published now_published = shared_.current();
  if (now_published.runtime != published_.runtime) {
    published_ = std::move(now_published);
    pools_ = std::make_shared<WorkerPools>(*published_.runtime, shared_.health);
    refresh_resolver(published_.runtime->config->dns);  // a reload re-reads resolv.conf too
  }
  Session& s = new_session();
  s.runtime = published_.runtime;
  s.pools = pools_;
  s.listener_name = listener_socket.listener;
  s.client = std::move(client);
  s.peer_address = socket_name(s.client.get(), true);
  s.client_address = s.peer_address;
  s.local_address = listener_socket.local_address ? *listener_socket.local_address : socket_name(s.client.get(), false);
  s.started = Clock::now();
  s.started_wall = std::chrono::system_clock::now();
  s.last_activity = s.started;

  const auto& config = *s.runtime->config;
  auto found = std::find_if(config.listeners.begin(), config.listeners.end(),
                            [&](const config::Listener& l) { return l.name == s.listener_name; });
  // A reload removed the listener (its sockets stay until a restart): nothing routes it.
  if (found == config.listeners.end()) return finish(s, Result::no_route, false);
  const config::Listener& listener = *found;
  s.listener = static_cast<size_t>(found - config.listeners.begin());

  if (!shared_.admission.try_admit(listener.name, s.peer_address.ip, listener.max_connections,
                                   listener.per_ip_max_connections)) {
    spdlog::debug("{}: refusing {}: connection limit", listener.name, s.peer_address.to_string());
    return finish(s, Result::limit_exceeded, false);  // a plain FIN, no bytes read
  }
  s.admitted = true;  // TCP_NODELAY: inherited from the listening socket
  s.preread.parser = std::make_unique<hello::PrereadParser>(wire_protocol(listener.protocol), listener.client_hello_max_bytes);
  s.preread.proxy_header_done = !trusted_for_proxy_header(listener, s.peer_address.ip);
  s.preread.inbound.resize(std::min<size_t>(kInitialHelloBuffer, listener.client_hello_max_bytes));
  shared_.metrics.active(listener.name).Increment();
  s.counted_active = true;
  shared_.event_bus.emit([&] { return events::Accepted{listener.name, s.peer_address}; });
  // One absolute deadline for the whole hello: a dribbling client cannot extend it.
  set_deadline(s, s.started + listener.client_hello_timeout);
  arm_hello_recv(s);
}

// ---------------------------------------------------------------- hello

// The hello is peeked, not read: it stays queued on the client socket, and the kernel's splice
// (or the relay) forwards it with everything the client sent behind it.
void Worker::arm_hello_recv(Session& s) {
  ring_.peek(s.client.get(), std::span(s.preread.inbound).subspan(s.preread.proxy_header_length), tag_for(s, kHelloRecv));
}

void Worker::wait_for_more_hello(Session& s) {
  // A repeated peek would return the same bytes at once: poll until the queue holds more than
  // was peeked (TCP's poll honours SO_RCVLOWAT), or the client shuts down or resets. Bytes
  // already queued beyond a full buffer meet the mark at once.
  int low_water = static_cast<int>(s.preread.inbound_length - s.preread.proxy_header_length + 1);
  if (::setsockopt(s.client.get(), SOL_SOCKET, SO_RCVLOWAT, &low_water, sizeof low_water) != 0)
    return finish(s, Result::client_closed, true);
  s.preread.low_water_raised = true;
  ring_.poll(s.client.get(), POLLIN | POLLRDHUP, tag_for(s, kHelloPoll));
}

void Worker::on_hello_poll(Session& s, int result) {
  if (s.phase != Phase::hello) return;
  if (result < 0) return finish(s, Result::client_closed, true);
  s.preread.hello_hung_up = static_cast<unsigned>(result) & (POLLRDHUP | POLLHUP | POLLERR);
  arm_hello_recv(s);
}

void Worker::reset_low_water(Session& s) {
  if (!s.preread.low_water_raised) return;
  int low_water = 1;
  ::setsockopt(s.client.get(), SOL_SOCKET, SO_RCVLOWAT, &low_water, sizeof low_water);
  s.preread.low_water_raised = false;
}

void Worker::discard_peeked_hello(Session& s) {
  if (!s.preread.hello_queued || !s.client) return;
  s.preread.hello_queued = false;
  // MSG_TRUNC drops TCP bytes without copying them.
  ::recv(s.client.get(), nullptr, s.preread.inbound_length - s.preread.proxy_header_length, MSG_DONTWAIT | MSG_TRUNC);
}

void Worker::on_hello_recv(Session& s, int result) {
  if (s.phase != Phase::hello) return;
  if (result < 0) return finish(s, Result::client_closed, true);
  const config::Listener& listener = s.runtime->config->listeners[s.listener];
  switch (lifecycle::after_peek(s.preread.inbound_length - s.preread.proxy_header_length, static_cast<size_t>(result),
                                s.preread.hello_hung_up)) {
    case lifecycle::PeekStep::parse: break;
    case lifecycle::PeekStep::client_closed: return finish(s, Result::client_closed, false);
    case lifecycle::PeekStep::buffer_full: {
      // TCP's poll also wakes when the receive buffer is nearly full, and then the window is
      // closed on an incomplete hello (a large hello in small segments). Make room for the
      // largest allowed one, once: this stops autotuning for this connection only.
      spdlog::debug("{}: {}: receive buffer full after {} hello bytes{}", listener.name, s.peer_address.to_string(),
                    result, s.preread.receive_buffer_raised ? "" : "; raising it");
      if (s.preread.receive_buffer_raised) return finish(s, Result::client_hello_error, false);
      s.preread.receive_buffer_raised = true;
      int room = static_cast<int>(2 * (s.preread.proxy_header_length + listener.client_hello_max_bytes));
      ::setsockopt(s.client.get(), SOL_SOCKET, SO_RCVBUF, &room, sizeof room);  // doubled by the kernel
      return wait_for_more_hello(s);
    }
  }
  s.preread.inbound_length = s.preread.proxy_header_length + static_cast<size_t>(result);
  s.preread.hello_queued = true;
  std::span<const uint8_t> received(s.preread.inbound.data(), s.preread.inbound_length);

  if (!s.preread.proxy_header_done) {
    auto outcome = proxy_protocol::parse(received);
    if (std::holds_alternative<proxy_protocol::NeedMore>(outcome)) {
      if (s.preread.inbound_length == s.preread.inbound.size()) s.preread.inbound.resize(s.preread.inbound.size() * 2);
      return wait_for_more_hello(s);
    }
    if (auto* done = std::get_if<proxy_protocol::Done>(&outcome)) {
      if (done->source) s.client_address = *done->source;
      if (done->destination) s.local_address = *done->destination;
      // The header is consumed (the backend must not see it); the hello behind it stays
      // queued. The bytes are already in the buffer, the same ones the peek copied.
      ssize_t consumed = ::recv(s.client.get(), s.preread.inbound.data(), done->consumed, MSG_DONTWAIT);
      if (consumed != static_cast<ssize_t>(done->consumed)) return finish(s, Result::client_closed, true);
      s.preread.proxy_header_length = done->consumed;
    } else if (std::get<proxy_protocol::Rejected>(outcome).reason !=
               proxy_protocol::RejectReason::bad_signature) {
      spdlog::debug("{}: {}: bad PROXY header: {}", listener.name, s.peer_address.to_string(),
                    proxy_protocol::to_string(std::get<proxy_protocol::Rejected>(outcome).reason));
      return finish(s, Result::proxy_protocol_error, false);
    }
    // A trusted source may also connect without a header.
    s.preread.proxy_header_done = true;
  } else if (s.preread.proxy_header_length == 0) {
    switch (proxy_protocol::proxy_header_presence(received)) {
      case proxy_protocol::HeaderPresence::present:
        spdlog::debug("{}: {} sent a PROXY header but is not in proxy_protocol_from", listener.name,
                      s.peer_address.to_string());
        return finish(s, Result::proxy_protocol_error, false);
      case proxy_protocol::HeaderPresence::undecided:
        return wait_for_more_hello(s);  // fewer bytes than a signature: within the hello's buffer
      case proxy_protocol::HeaderPresence::absent:
        break;
    }
  }

  auto outcome = s.preread.parser->feed(received.subspan(s.preread.proxy_header_length));
  switch (outcome.state) {
    case hello::Outcome::State::need_more: {
      size_t limit = s.preread.proxy_header_length + listener.client_hello_max_bytes;
      if (s.preread.inbound_length == s.preread.inbound.size()) {
        // The parser rejects a hello over the limit itself; the +1 lets it see that byte.
        s.preread.inbound.resize(std::min(s.preread.inbound.size() * 2, limit + 1));
      }
      if (s.preread.inbound_length == s.preread.inbound.size()) return finish(s, Result::client_hello_error, false);
      return wait_for_more_hello(s);
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
  s.preread.parser.reset();  // its state is no longer needed; the Hello holds what routing uses
  route(s);
}
}  // namespace snisplice::session
