#pragma once
// Blocking socket helpers for the load tool: whole-buffer reads and writes that
// report EOF and errors instead of throwing.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <tl/expected.hpp>

#include "base/net_address.h"
#include "base/unique_fd.h"

namespace snisplice::load {

// Only loopback, or 198.51.100.0/24 (TEST-NET-2), which bench/run-peers uses only inside the
// network namespaces it creates: the tool must never load anything but this machine.
bool is_bench_address(const SocketAddress& address);

tl::expected<UniqueFd, std::string> connect_to(const SocketAddress& address);
tl::expected<UniqueFd, std::string> listen_on(const SocketAddress& address);

enum class IoResult { ok, eof, error };
IoResult write_all(int fd, std::span<const uint8_t> bytes);
IoResult read_exact(int fd, std::span<uint8_t> bytes);

void set_nodelay(int fd);
// Bounds every blocking send and recv on the socket, so a stalled proxy cannot hang the tool.
void set_io_timeout(int fd, double seconds);

}  // namespace snisplice::load
