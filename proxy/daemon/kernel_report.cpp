#include "daemon/kernel_report.h"

#include <liburing.h>

#include <fmt/format.h>

#include "bpf/kernel_features.h"

namespace snisplice::daemon {
namespace {

std::string io_uring_report() {
  io_uring_probe* probe = io_uring_get_probe();
  if (!probe) return "io_uring: unavailable\n";
  struct Op {
    int code;
    const char* name;
  };
  constexpr Op kOps[] = {{IORING_OP_ACCEPT, "accept"},   {IORING_OP_CONNECT, "connect"},
                         {IORING_OP_RECV, "recv"},       {IORING_OP_SEND, "send"},
                         {IORING_OP_POLL_ADD, "poll"},   {IORING_OP_LINK_TIMEOUT, "link_timeout"},
                         {IORING_OP_ASYNC_CANCEL, "cancel"}, {IORING_OP_PROVIDE_BUFFERS, "provide_buffers"}};
  std::string have;
  std::string missing;
  for (const auto& op : kOps) (io_uring_opcode_supported(probe, op.code) ? have : missing) += std::string(" ") + op.name;
  io_uring_free_probe(probe);
  return fmt::format("io_uring: ops{}{}\n", have, missing.empty() ? "" : " (missing:" + missing + ")");
}

}  // namespace

std::string kernel_report() {
  std::string out;
  out += io_uring_report();
  auto features = bpf::probe_kernel_features();
  out += bpf::describe(features);
  return out;
}

}  // namespace snisplice::daemon
