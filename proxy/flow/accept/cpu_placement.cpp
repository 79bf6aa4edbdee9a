#include "flow/accept/cpu_placement.h"

namespace snisplice::accept {

CpuPlacement place_workers(std::span<const int> allowed_cpus, unsigned configured_workers) {
  if (configured_workers > 0 || allowed_cpus.empty()) {
    return {configured_workers > 0 ? configured_workers : 1u, {}, false};
  }
  CpuPlacement placement{static_cast<unsigned>(allowed_cpus.size()), {allowed_cpus.begin(), allowed_cpus.end()}, true};
  // The program returns the CPU number as the socket's index in the group: that is the
  // worker on that CPU only when the CPUs are 0..n-1. A CPU outside the group (a handshake
  // processed on a CPU this process may not use) falls back to the kernel's hash.
  for (size_t i = 0; i < allowed_cpus.size(); ++i) {
    if (allowed_cpus[i] != static_cast<int>(i)) placement.steer_by_cpu = false;
  }
  return placement;
}

}  // namespace snisplice::accept
