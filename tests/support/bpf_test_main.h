#pragma once
// main() of a BPF doctest binary: skipped (exit 77, the reason printed) without root, or
// where the kernel refuses what the tests need, judged by one probe attempt.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <string>

#include "temp_pin_dir.h"

namespace snisplice::test {

// `probe(pin_dir)` tries what the tests need under a fresh temporary pin dir and returns a
// tl::expected whose error is a snisplice::Error; "cannot `attempt` here" names it in the skip.
template <typename Probe>
int run_bpf_tests(int argc, char** argv, const char* test_name, const char* needs, const char* attempt,
                  const std::string& pin_part, Probe probe) {
  if (::geteuid() != 0) {
    std::printf("SKIP: %s needs root (%s)\n", test_name, needs);
    return 77;
  }
  {
    TempPinDir pins{pin_part};
    auto probed = probe(pins.path());
    const std::string why = probed ? "" : probed.error().message();
    if (why.find("Operation not permitted") != std::string::npos ||
        why.find("Permission denied") != std::string::npos) {
      std::printf("SKIP: cannot %s here: %s\n", attempt, why.c_str());
      return 77;
    }
  }
  doctest::Context context(argc, argv);
  return context.run();
}

}  // namespace snisplice::test
