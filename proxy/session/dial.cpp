// Dial: route the hello, resolve the name of a resolve route, connect to the candidates in
// order (each checked against the route's address policy), then write the PROXY header, if
// the backend wants one, before the data path starts (and forwards the peeked hello).
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "flow/accept/listener_socket.h"
#include "flow/proxy_protocol/proxy_header.h"
#include "session/op_kind.h"
#include "session/worker.h"

namespace snisplice::session {

// ---------------------------------------------------------------- pools

WorkerPools::WorkerPools(const runtime::Snapshot& runtime, runtime::HealthBoard& health)
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
      s.dialing.targets.push_back({s.local_address, std::nullopt});
      s.dialing.policy_checked = true;
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
    s.dialing.targets.push_back({backend->servers[server], server});
  s.phase = Phase::connecting;
  connect_next(s);
}

// ---------------------------------------------------------------- resolve

void Worker::resolve_route(Session& s, const config::Route& route) {
  if (s.hello.host.empty()) return finish(s, Result::no_route, false);  // nothing to resolve
  if (!resolver_) return finish(s, Result::resolve_error, false);
  uint16_t port = route.resolve.port.value_or(s.local_address.port);
  s.phase = Phase::resolving;
  s.dialing.policy_checked = true;
  uint32_t slot = s.slot;
  uint32_t generation = s.generation;
  // The answer always comes later, from the loop (never inside resolve()).
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
  for (const auto& address : answer.addresses) s.dialing.targets.push_back({SocketAddress{address, port}, std::nullopt});
  s.phase = Phase::connecting;
  connect_next(s);
}

// ---------------------------------------------------------------- connect

void Worker::connect_next(Session& s) {
  const auto& runtime = *s.runtime;
  // Every address actually dialled is checked, so an answer that changes between lookup and
  // connect (DNS rebinding) cannot reach a refused range.
  while (s.dialing.candidate < s.dialing.targets.size() && s.dialing.policy_checked) {
    const auto& target = s.dialing.targets[s.dialing.candidate].address;
    size_t table_index = runtime.listener_table[s.listener];
    auto verdict = runtime.route_policies[table_index][s.route].check(target);
    if (verdict.allowed) break;
    spdlog::warn("{}: refusing to dial {} for \"{}\": {}{}{}", runtime.config->listeners[s.listener].name,
                 target.to_string(), s.hello.host, verdict.reason, verdict.embedded_in.empty() ? "" : " via ",
                 verdict.embedded_in);
    s.dialing.denied_any = true;
    ++s.dialing.candidate;
  }
  if (s.dialing.candidate >= s.dialing.targets.size())
    return finish(s, s.dialing.denied_any ? Result::denied_address : Result::connect_error, false);
  s.backend_address = s.dialing.targets[s.dialing.candidate].address;
  if (!s.dialing.connect_address) s.dialing.connect_address = std::make_unique<sockaddr_storage>();
  sockaddr_storage& storage = *s.dialing.connect_address;
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
  s.dialing.connect_started = Clock::now();
  const config::Backend* backend = runtime.config->find_backend(s.backend_name);
  auto timeout = backend ? backend->connect_timeout : config::Backend{}.connect_timeout;
  s.dialing.connect_timeout.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
  s.dialing.connect_timeout.tv_nsec =
      std::chrono::duration_cast<std::chrono::nanoseconds>(timeout % std::chrono::seconds(1)).count();
  io::OpTag connect_tag = tag_for(s, kConnect);
  ring_.connect(s.backend.get(), storage, length, s.dialing.connect_timeout, connect_tag, tag_for(s, kConnectTimeout));
}

void Worker::on_connect(Session& s, int result) {
  if (s.phase != Phase::connecting) return;
  auto server = s.dialing.targets[s.dialing.candidate].server;
  connect::BackendPool* pool = server ? s.pools->pool(s.backend_name) : nullptr;
  if (result < 0) {
    spdlog::debug("{} {}: connect: {}", s.backend_name.empty() ? s.hello.host : s.backend_name,
                  s.backend_address.to_string(), result == -ECANCELED ? "timed out" : std::strerror(-result));
    if (pool) pool->report_failure(*server, Clock::now());
    s.backend.reset();
    ++s.dialing.candidate;
    return connect_next(s);
  }
  if (pool) {
    pool->report_success(*server);
    pool->on_connect_start(*server);
  }
  s.connected = true;
  s.connected_server = server;
  std::vector<Dialing::Target>().swap(s.dialing.targets);
  s.dialing.connect_address.reset();
  shared_.metrics.connect_duration.Observe(
      std::chrono::duration<double>(Clock::now() - s.dialing.connect_started).count());
  send_preamble(s);
}

// ---------------------------------------------------------------- preamble

void Worker::send_preamble(Session& s) {
  // The hello is not part of it: it is still queued on the client socket, and the data path
  // forwards (and counts) it with whatever the client sent behind it.
  std::vector<uint8_t>().swap(s.preread.inbound);  // an idle connection keeps no hello buffer
  s.last_activity = Clock::now();
  set_deadline(s, s.last_activity + s.runtime->config->timeouts.idle);
  const config::Backend* backend = s.runtime->config->find_backend(s.backend_name);
  if (!backend || backend->proxy_protocol == config::ProxyProtocol::off) return start_data_path(s);
  auto version = backend->proxy_protocol == config::ProxyProtocol::v1 ? proxy_protocol::Version::v1
                                                                      : proxy_protocol::Version::v2;
  s.preamble = proxy_protocol::encode(version, s.client_address, s.local_address);
  s.phase = Phase::preamble;
  ring_.send(s.backend.get(), s.preamble, tag_for(s, kPreamble));
}

void Worker::on_preamble_sent(Session& s, int result) {
  if (s.phase != Phase::preamble) return;
  if (result < 0) return finish(s, Result::backend_reset, true);
  s.preamble_sent += static_cast<size_t>(result);
  if (s.preamble_sent < s.preamble.size()) {
    ring_.send(s.backend.get(), std::span(s.preamble).subspan(s.preamble_sent), tag_for(s, kPreamble));
    return;
  }
  std::vector<uint8_t>().swap(s.preamble);
  start_data_path(s);
}

void Worker::start_data_path(Session& s) {
  s.last_activity = Clock::now();
  reset_low_water(s);
  s.preread.hello_queued = false;  // from here the data path owns the queued bytes
  if (try_splice(s)) return;
  // splice: auto: counted as what the connection ends up as, at its hand-over or when it
  // stays on the relay for good (relay.cpp, close.cpp).
  s.lazy.enabled = shared_.splice && s.runtime->config->splice == config::SpliceMode::automatic &&
                  lifecycle::data_path(true, s.preread.proxy_header_length) == lifecycle::DataPath::splice;
  if (!s.lazy.enabled) {
    shared_.metrics.spliced_userspace.Increment();
    shared_.event_bus.emit([&] { return events::Spliced{s.client_address, "userspace"}; });
  }
  s.phase = Phase::relaying;
  for (bool upstream : {true, false}) {
    send_next(s, upstream);  // bytes a failed splice read back
    arm_relay_recv(s, upstream);
  }
}
}  // namespace snisplice::session
