#pragma once
// The error of a fallible call outside config loading (which throws, and is caught at its
// boundary): what was being done, and the errno when a system call failed.
#include <cstring>
#include <string>
#include <utility>

namespace snisplice {

struct Error {
  std::string context;  // what failed, e.g. "io_uring_queue_init" or "listener tls"
  int errno_value = 0;  // 0: not a system call's failure (the context says it all)

  static Error from_errno(std::string context, int errno_value) { return {std::move(context), errno_value}; }
  // The same failure seen from the caller, which names what it was doing: "listener web: bind ...".
  Error within(const std::string& outer) const { return {outer + ": " + context, errno_value}; }
  std::string message() const {
    return errno_value == 0 ? context : context + ": " + std::strerror(errno_value);
  }
};

}  // namespace snisplice
