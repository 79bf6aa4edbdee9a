#pragma once
// A listening socket for one address of one listener, in one worker. Every worker binds
// its own with SO_REUSEPORT so the kernel spreads new connections across workers.
#include <tl/expected.hpp>

#include "base/error.h"
#include "base/net_address.h"
#include "base/unique_fd.h"

namespace snisplice::accept {

// The error names the call that failed and the address, with its errno.
tl::expected<UniqueFd, Error> open_listener_socket(const SocketAddress& address, bool transparent);

// Options every proxied socket gets (TCP_NODELAY: sniproxy #289 shows +40 ms without it): set
// on each listener, whose accepted sockets inherit them, and on each backend socket.
void tune_connection_socket(int fd);

}  // namespace snisplice::accept
