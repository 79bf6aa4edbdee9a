// The system calls behind cpu_placement.h: the pure choice is in cpu_placement.cpp.
#include <linux/filter.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "flow/accept/cpu_placement.h"

namespace snisplice::accept {

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

tl::expected<void, Error> steer_by_cpu(int listener_fd) {
  // Classic BPF: A = the CPU running the program (where the SYN was processed); return A.
  sock_filter code[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_CPU)},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  sock_fprog program{static_cast<unsigned short>(std::size(code)), code};
  if (::setsockopt(listener_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) != 0)
    return tl::unexpected(Error::from_errno("SO_ATTACH_REUSEPORT_CBPF", errno));
  return {};
}

tl::expected<void, Error> pin_thread(pthread_t thread, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int rc = ::pthread_setaffinity_np(thread, sizeof set, &set); rc != 0)
    return tl::unexpected(Error::from_errno("pinning a worker to CPU " + std::to_string(cpu), rc));
  return {};
}

}  // namespace snisplice::accept
