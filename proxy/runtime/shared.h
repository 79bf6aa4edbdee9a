#pragma once
// What the daemon shares with every worker: the published snapshot (replaced as a whole on
// reload), the objects the workers borrow, and the stop signal. The daemon owns everything
// referenced here and outlives the workers.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "events/bus.h"
#include "flow/accept/admission.h"
#include "flow/close/access_log.h"
#include "metrics/metrics.h"
#include "runtime/health_board.h"
#include "runtime/snapshot.h"

namespace snisplice::bpf {
class SpliceEngine;
}
namespace snisplice::resolve {
class DnsCache;
}

namespace snisplice::runtime {

// What the daemon publishes to every worker; replaced as a whole on reload.
struct Published {
  std::shared_ptr<const Snapshot> runtime;
  std::shared_ptr<const close::AccessLog> access_log;
};

// The in-kernel splice, when the daemon loaded it.
struct SpliceUse {
  const bpf::SpliceEngine& engine;
  uint64_t budget;  // redirected-but-undelivered bytes allowed per direction
};

class WorkerShared {
 public:
  WorkerShared(metrics::Metrics& m, accept::Admission& a, HealthBoard& h, events::EventBus& e)
      : metrics(m), admission(a), health(h), event_bus(e) {}
  WorkerShared(const WorkerShared&) = delete;
  WorkerShared& operator=(const WorkerShared&) = delete;

  // Borrowed from the daemon.
  metrics::Metrics& metrics;
  accept::Admission& admission;
  HealthBoard& health;
  events::EventBus& event_bus;  // live events (proxy/events): publishing never waits
  // Set before the workers start; none: userspace relay only.
  std::optional<SpliceUse> splice;

  // The DNS cache map, borrowed: opened by the daemon with the first configuration that has
  // resolve routes (at start or on a reload), never replaced; null until then.
  resolve::DnsCache* dns_cache() const { return dns_cache_.load(); }
  void set_dns_cache(resolve::DnsCache& cache) { dns_cache_.store(&cache); }

  Published current() const {
    std::lock_guard lock(mutex_);
    return published_;
  }
  void publish(Published next) {
    std::lock_guard lock(mutex_);
    published_ = std::move(next);
  }

  std::atomic<bool> stopping{false};
  std::atomic<int64_t> drain_deadline_ns{0};  // steady_clock, set before `stopping`

 private:
  std::atomic<resolve::DnsCache*> dns_cache_{nullptr};
  mutable std::mutex mutex_;
  Published published_;
};

}  // namespace snisplice::runtime
