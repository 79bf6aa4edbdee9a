#pragma once
// Backend server health, shared by every worker: one flag per (backend, server), set by
// the health-check thread's TCP connect probes and read by the pools when they choose.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "metrics/metrics.h"

namespace snisplice::daemon {

class HealthBoard {
 public:
  // The flag for one server; servers without health checks stay up.
  std::shared_ptr<std::atomic<bool>> flag(const std::string& backend, const SocketAddress& server);

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> flags_;
};

// Probes every server of every backend with a health_check, each at its interval, by a
// non-blocking TCP connect bounded by the check's timeout.
class HealthChecker {
 public:
  HealthChecker(HealthBoard& board, metrics::Metrics& metrics);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void configure(const config::Config& config);  // on start and on every reload

 private:
  struct Target {
    std::string backend;
    SocketAddress server;
    config::HealthCheck check;
    std::shared_ptr<std::atomic<bool>> up;
    std::chrono::steady_clock::time_point next_probe;
  };
  void run();

  HealthBoard& board_;
  metrics::Metrics& metrics_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Target> targets_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace snisplice::daemon
