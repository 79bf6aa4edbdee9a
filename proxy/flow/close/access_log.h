#pragma once
// One JSON object per finished connection, written with a single write(2) so lines from
// several workers never interleave.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "base/error.h"
#include "base/unique_fd.h"
#include "config/config.h"

namespace snisplice::close {

struct AccessRecord {
  std::chrono::system_clock::time_point start;
  std::string_view listener;
  std::string client;    // address:port
  std::string_view host;  // as the client sent it
  std::string_view route;
  std::string backend;   // address:port dialled, "" when none
  std::string_view splice_mode;  // "sockmap" | "userspace" | ""
  uint64_t bytes_client_to_backend = 0;
  uint64_t bytes_backend_to_client = 0;
  std::chrono::nanoseconds duration{};
  std::string_view result;
};

// The JSON line for a record (with the trailing newline). Pure, so it is unit-tested.
std::string format_access_record(const AccessRecord& record);

class AccessLog {
 public:
  // stdout, off, or a file opened for append (created 0640).
  static tl::expected<AccessLog, Error> open(const config::AccessLog& where);
  void write(const AccessRecord& record) const;
  bool enabled() const { return fd_ >= 0; }

 private:
  UniqueFd owned_;
  int fd_ = -1;
};

}  // namespace snisplice::close
