#pragma once
// What the running kernel lets this process do, for `snisplice --version` and for the
// `splice: auto` decision. Probing loads tiny programs and maps; without privileges every
// probe answers "unknown" with the reason instead of failing.
#include <string>

namespace snisplice::bpf {

enum class Support { available, unavailable, unknown };

struct FeatureProbe {
  Support support = Support::unknown;
  std::string detail;  // e.g. "available", "unknown: Operation not permitted (needs CAP_BPF)"
};

struct KernelFeatures {
  std::string kernel_release;  // uname -r
  FeatureProbe sockmap;        // SOCKHASH map + SK_SKB program: the in-kernel splice
  FeatureProbe xdp;            // XDP program type: generic mode works on every interface
  // Native XDP depends on each interface's driver; it is known only when attaching.
  std::string xdp_native_note;
};

KernelFeatures probe_kernel_features();

// One line per feature, e.g. "sockmap: available".
std::string describe(const KernelFeatures& features);

}  // namespace snisplice::bpf
