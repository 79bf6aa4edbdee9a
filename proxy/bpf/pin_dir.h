#pragma once
// The directory under a BPF filesystem where snisplice pins its maps (bpf_pin_path).
#include <linux/bpf.h>

#include <string>

#include <tl/expected.hpp>

#include "base/error.h"

namespace snisplice::bpf {

// Makes sure `pin_path` is a directory on a mounted bpffs, creating missing components
// (mode 0700). When the path lies under /sys/fs/bpf and nothing is mounted there (a fresh
// machine), mounts bpffs on /sys/fs/bpf first. Fails with a message naming the path and the
// reason (and how to fix it) otherwise.
tl::expected<void, Error> ensure_pin_dir(const std::string& pin_path);

// True when `path` exists and lies on a bpffs.
bool is_on_bpffs(const std::string& path);

// When a map is pinned at `pin_file` whose type, key size, value size, max_entries or flags
// differ from `wanted`, removes that pin so a fresh map can be created and pinned there.
// Returns whether a pin was removed.
tl::expected<bool, Error> remove_incompatible_pin(const std::string& pin_file, const bpf_map_info& wanted);

}  // namespace snisplice::bpf
