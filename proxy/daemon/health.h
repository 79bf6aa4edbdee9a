#pragma once
// The health-check thread: TCP connect probes that set the flags of the runtime's HealthBoard.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "runtime/health_board.h"
#include "metrics/metrics.h"

namespace snisplice::daemon {

// Probes every server of every backend with a health_check, each at its interval, by a
// non-blocking TCP connect bounded by the check's timeout.
class HealthChecker {
 public:
  HealthChecker(runtime::HealthBoard& board, metrics::Metrics& metrics);
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

  runtime::HealthBoard& board_;
  metrics::Metrics& metrics_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Target> targets_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace snisplice::daemon
