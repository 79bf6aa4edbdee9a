#include "daemon/health.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include <spdlog/spdlog.h>

#include "base/unique_fd.h"

namespace snisplice::daemon {
namespace {

// One TCP connect probe: true when the handshake completes within `timeout`.
bool probe(const SocketAddress& server, std::chrono::milliseconds timeout) {
  sockaddr_storage storage;
  socklen_t length = server.to_sockaddr(storage);
  UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) == 0) return true;
  if (errno != EINPROGRESS) return false;
  pollfd waiting{fd.get(), POLLOUT, 0};
  if (::poll(&waiting, 1, static_cast<int>(timeout.count())) != 1) return false;
  int error = 0;
  socklen_t size = sizeof error;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &size);
  return error == 0;
}

}  // namespace

HealthChecker::HealthChecker(runtime::HealthBoard& board, metrics::Metrics& metrics)
    : board_(board), metrics_(metrics), thread_([this] { run(); }) {}

HealthChecker::~HealthChecker() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HealthChecker::configure(const config::Config& config) {
  std::vector<Target> targets;
  auto now = std::chrono::steady_clock::now();
  for (const auto& backend : config.backends) {
    for (const auto& server : backend.servers) {
      auto up = board_.flag(backend.name, server);
      if (!backend.health_check.enabled) {
        up->store(true);  // a server whose check was removed goes back into rotation
        continue;
      }
      targets.push_back({backend.name, server, backend.health_check, up, now});
    }
  }
  {
    std::lock_guard lock(mutex_);
    targets_ = std::move(targets);
  }
  wake_.notify_all();
}

void HealthChecker::run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    auto due = std::min_element(targets_.begin(), targets_.end(),
                                [](const Target& a, const Target& b) { return a.next_probe < b.next_probe; });
    if (due == targets_.end()) {
      wake_.wait(lock);
      continue;
    }
    if (due->next_probe > std::chrono::steady_clock::now()) {
      wake_.wait_until(lock, due->next_probe);
      continue;
    }
    Target probing = *due;
    lock.unlock();
    bool up = probe(probing.server, probing.check.timeout);
    lock.lock();
    if (probing.up->exchange(up) != up)
      spdlog::warn("backend {} server {} is {} (health check)", probing.backend, probing.server.to_string(),
                   up ? "up" : "down");
    metrics_.backend_server_up.Add({{"backend", probing.backend}, {"server", probing.server.to_string()}})
        .Set(up ? 1 : 0);
    // targets_ may have been replaced while unlocked: find this server's entry again.
    for (auto& target : targets_)
      if (target.up == probing.up) target.next_probe = std::chrono::steady_clock::now() + target.check.interval;
  }
}

}  // namespace snisplice::daemon
