#pragma once
// Backend server health, shared by every worker: one flag per (backend, server), set by
// the health-check thread's TCP connect probes (daemon/health.h) and read by the pools when
// they choose.
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/net_address.h"

namespace snisplice::runtime {

class HealthBoard {
 public:
  // The flag for one server; servers without health checks stay up.
  std::shared_ptr<std::atomic<bool>> flag(const std::string& backend, const SocketAddress& server);

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> flags_;
};

}  // namespace snisplice::runtime
