// c-ares inside the worker's loop: its sockets polled through the ring, its timers folded
// into the ring's wait, and resolvers of an older configuration kept until their queries end.
#include <poll.h>

#include <spdlog/spdlog.h>

#include "session/op_kind.h"
#include "session/worker.h"

namespace snisplice::session {

void Worker::refresh_resolver(const config::Dns& dns) {
  resolve::DnsCache* cache = shared_.dns_cache();
  if (!cache) return;  // no resolve routes
  if (resolver_) retired_resolvers_.push_back(std::move(resolver_));
  auto owner = std::make_shared<resolve::Resolver*>(nullptr);
  auto created = resolve::Resolver::create(dns, *cache, [this, owner](int fd, bool read, bool write) {
    watch_dns(*owner, fd, read, write);
  });
  if (!created) {
    spdlog::error("worker {}: DNS resolver: {}; resolve routes will fail", index_, created.error().message());
    return;
  }
  resolver_ = std::move(*created);
  *owner = resolver_.get();
  resolver_config_ = dns;
}

void Worker::watch_dns(resolve::Resolver* owner, int fd, bool read, bool write) {
  auto it = dns_watches_.find(fd);
  if (it != dns_watches_.end() && it->second.armed) {
    ring_.remove_poll(io::OpTag{kDnsPoll, static_cast<uint32_t>(fd), it->second.serial}, io::OpTag{kCancel, 0, 0});
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
  ring_.poll(fd, (watch.read ? POLLIN : 0) | (watch.write ? POLLOUT : 0),
             io::OpTag{kDnsPoll, static_cast<uint32_t>(fd), watch.serial});
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
}  // namespace snisplice::session
