#include <doctest/doctest.h>

#include <vector>

#include "flow/accept/cpu_placement.h"

using snisplice::accept::place_workers;

TEST_CASE("auto: one worker per allowed CPU, pinned, steered when the CPUs are 0..n-1") {
  std::vector<int> cpus{0, 1, 2, 3};
  auto placement = place_workers(cpus, 0);
  CHECK(placement.workers == 4);
  CHECK(placement.worker_cpus == cpus);
  CHECK(placement.steer_by_cpu);
}

TEST_CASE("auto on a CPU subset that is not 0..n-1: pinned, left to the kernel's hash") {
  // The steering program returns a CPU number as a socket index: CPU 2 is no worker's index.
  std::vector<int> cpus{2, 3};
  auto placement = place_workers(cpus, 0);
  CHECK(placement.workers == 2);
  CHECK(placement.worker_cpus == cpus);
  CHECK_FALSE(placement.steer_by_cpu);

  std::vector<int> gap{0, 2};
  CHECK_FALSE(place_workers(gap, 0).steer_by_cpu);
}

TEST_CASE("a fixed worker count: neither pinned nor steered, whatever the CPUs") {
  std::vector<int> cpus{0, 1};
  for (unsigned workers : {1u, 2u, 8u}) {
    auto placement = place_workers(cpus, workers);
    CHECK(placement.workers == workers);
    CHECK(placement.worker_cpus.empty());
    CHECK_FALSE(placement.steer_by_cpu);
  }
}

TEST_CASE("no CPU known: one worker, left to the scheduler") {
  auto placement = place_workers({}, 0);
  CHECK(placement.workers == 1);
  CHECK(placement.worker_cpus.empty());
  CHECK_FALSE(placement.steer_by_cpu);
}
