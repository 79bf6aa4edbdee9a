#include "socket_io.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>

namespace snisplice::load {

bool is_bench_address(const SocketAddress& address) {
  static const auto loopback_v4 = Cidr::parse("127.0.0.0/8");
  static const auto bench_namespaces = Cidr::parse("198.51.100.0/24");
  static const auto loopback_v6 = Cidr::parse("::1/128");
  if (!address.ip.is_v4()) return loopback_v6->contains(address.ip);
  return loopback_v4->contains(address.ip) || bench_namespaces->contains(address.ip);
}

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void set_io_timeout(int fd, double seconds) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

tl::expected<UniqueFd, std::string> connect_to(const SocketAddress& address) {
  sockaddr_storage storage{};
  const socklen_t length = address.to_sockaddr(storage);
  UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return tl::unexpected(std::string("socket: ") + std::strerror(errno));
  set_nodelay(fd.get());
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0) {
    return tl::unexpected("connect " + address.to_string() + ": " + std::strerror(errno));
  }
  return fd;
}

tl::expected<UniqueFd, std::string> listen_on(const SocketAddress& address) {
  sockaddr_storage storage{};
  const socklen_t length = address.to_sockaddr(storage);
  UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return tl::unexpected(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0) {
    return tl::unexpected("bind " + address.to_string() + ": " + std::strerror(errno));
  }
  if (::listen(fd.get(), 4096) != 0) return tl::unexpected(std::string("listen: ") + std::strerror(errno));
  return fd;
}

IoResult write_all(int fd, std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoResult::error;
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return IoResult::ok;
}

IoResult read_exact(int fd, std::span<uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::recv(fd, bytes.data(), bytes.size(), 0);
    if (n == 0) return IoResult::eof;
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoResult::error;
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return IoResult::ok;
}

}  // namespace snisplice::load
