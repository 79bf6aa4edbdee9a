#include "flow/accept/listener_socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

#include <fmt/format.h>

namespace snisplice::accept {
namespace {

constexpr int kBacklog = 4096;

Error failure(const char* what, const SocketAddress& address) {
  return Error::from_errno(fmt::format("{} {}", what, address.to_string()), errno);
}

}  // namespace

tl::expected<UniqueFd, Error> open_listener_socket(const SocketAddress& address, bool transparent) {
  int family = address.ip.is_v4() ? AF_INET : AF_INET6;
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return tl::unexpected(failure("socket", address));
  int on = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0)
    return tl::unexpected(failure("SO_REUSEPORT", address));
  // "[::]:443" means IPv6 only, like nginx: "0.0.0.0:443" can be listed beside it.
  if (family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  if (transparent) {
    int rc = family == AF_INET ? ::setsockopt(fd.get(), SOL_IP, IP_TRANSPARENT, &on, sizeof on)
                               : ::setsockopt(fd.get(), SOL_IPV6, IPV6_TRANSPARENT, &on, sizeof on);
    if (rc < 0) return tl::unexpected(failure("IP_TRANSPARENT (needs CAP_NET_ADMIN)", address));
  }
  tune_connection_socket(fd.get());  // accepted sockets inherit the listener's options
  sockaddr_storage storage;
  socklen_t length = address.to_sockaddr(storage);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) < 0)
    return tl::unexpected(failure("bind", address));
  if (::listen(fd.get(), kBacklog) < 0) return tl::unexpected(failure("listen", address));
  return fd;
}

void tune_connection_socket(int fd) {
  int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

}  // namespace snisplice::accept
