// main() of bpf_splice_test: skipped (exit 77, the reason printed) without root or where the
// kernel refuses the splice program.
#define DOCTEST_CONFIG_IMPLEMENT
#include "splice_fixture.h"

using namespace splice_test;

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::puts("bpf_splice_test: skipped: needs root (CAP_BPF and CAP_NET_ADMIN) to load BPF");
    return 77;
  }
  {
    auto probe = SpliceEngine::load(kMaxSockets);
    if (!probe) {
      const bool denied = probe.error().message().find(std::strerror(EPERM)) != std::string::npos;
      std::printf("bpf_splice_test: %s: cannot load the splice program: %s\n", denied ? "skipped" : "failed",
                  probe.error().message().c_str());
      return denied ? 77 : 1;
    }
  }
  doctest::Context context(argc, argv);
  return context.run();
}
