#include "bpf/kernel_features.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>

#include "base/unique_fd.h"

namespace snisplice::bpf {
namespace {

// libbpf probes return 1 (supported), 0 (not supported) or -errno (could not tell).
FeatureProbe from_probe_result(int result) {
  if (result == 1) return {Support::available, "available"};
  if (result == 0) return {Support::unavailable, "unavailable (not supported by this kernel)"};
  std::string detail = "unknown: ";
  detail += std::strerror(-result);
  if (result == -EPERM || result == -EACCES) detail += " (needs CAP_BPF and CAP_NET_ADMIN)";
  return {Support::unknown, std::move(detail)};
}

// libbpf's probes answer 0 ("unsupported") when they are merely not allowed to try. Find
// out first whether this process may create any map at all.
std::optional<FeatureProbe> denied() {
  UniqueFd map(bpf_map_create(BPF_MAP_TYPE_ARRAY, nullptr, sizeof(uint32_t), sizeof(uint32_t), 1, nullptr));
  if (map) return std::nullopt;
  const int error_number = errno;
  return from_probe_result(-error_number);
}

FeatureProbe both(const FeatureProbe& first, const FeatureProbe& second) {
  return first.support != Support::available ? first : second;
}

}  // namespace

KernelFeatures probe_kernel_features() {
  KernelFeatures features;
  utsname name{};
  features.kernel_release = ::uname(&name) == 0 ? name.release : "unknown";
  if (auto refusal = denied()) {
    features.sockmap = *refusal;
    features.xdp = *refusal;
    features.xdp_native_note = refusal->detail;
    return features;
  }
  features.sockmap = both(from_probe_result(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKHASH, nullptr)),
                          from_probe_result(libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_SKB, nullptr)));
  features.xdp = from_probe_result(libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, nullptr));
  if (features.xdp.support == Support::available) features.xdp.detail = "available (generic on every interface)";
  features.xdp_native_note = "native mode depends on each interface's driver; tried first when xdp.mode is auto";
  return features;
}

std::string describe(const KernelFeatures& features) {
  std::string text;
  text += "kernel: " + features.kernel_release + "\n";
  text += "sockmap splice: " + features.sockmap.detail + "\n";
  text += "xdp: " + features.xdp.detail + "\n";
  text += "xdp native: " + features.xdp_native_note + "\n";
  return text;
}

}  // namespace snisplice::bpf
