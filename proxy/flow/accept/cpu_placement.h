#pragma once
// Where the workers run. With `workers: auto` there is one worker per CPU this process may
// use, each pinned to its CPU, and when those CPUs are 0..n-1 every listening group hands a new
// connection to the worker on the CPU that processed its handshake (SO_INCOMING_CPU's idea,
// applied at accept): the softirq that queued the connection, the worker that serves it and
// the wake-ups between them stay on one CPU and its cache. On a VM a wake-up across CPUs is an
// inter-processor interrupt, the dearest thing a short connection does.
#include <pthread.h>

#include <span>
#include <vector>

#include <tl/expected.hpp>

#include "base/error.h"

namespace snisplice::accept {

struct CpuPlacement {
  unsigned workers = 1;
  std::vector<int> worker_cpus;  // worker i runs on worker_cpus[i]; empty: the scheduler decides
  bool steer_by_cpu = false;     // listeners pick the worker whose index is the receiving CPU
};

// `configured_workers` 0 is "auto". A fixed count leaves placement to the scheduler, as
// before: an operator who chose it may run other work on these CPUs.
CpuPlacement place_workers(std::span<const int> allowed_cpus, unsigned configured_workers);

// The CPUs this process may run on (sched_getaffinity); never empty.
std::vector<int> allowed_cpus();

// Attaches the steering program to the SO_REUSEPORT group of `listener_fd` (one socket of the
// group is enough; the program serves the whole group). The group's i-th socket must belong to
// worker i: workers bind their listeners in index order.
tl::expected<void, Error> steer_by_cpu(int listener_fd);

tl::expected<void, Error> pin_thread(pthread_t thread, int cpu);

}  // namespace snisplice::accept
