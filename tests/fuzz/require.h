#pragma once
// A fuzz target's check: a broken invariant aborts, which libFuzzer (and the replay runner)
// report as a crash with the input that caused it.
#include <cstdlib>

namespace snisplice::fuzzing {

inline void require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace snisplice::fuzzing
