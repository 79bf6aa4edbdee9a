#include "bpf/pin_dir.h"

#include <bpf/bpf.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/unique_fd.h"

namespace snisplice::bpf {
namespace {

constexpr const char* kDefaultBpffs = "/sys/fs/bpf";

// The deepest component of `path` that exists (at worst "/").
std::filesystem::path nearest_existing(const std::filesystem::path& path) {
  std::filesystem::path candidate = path;
  std::error_code ec;
  while (!candidate.empty() && candidate != candidate.root_path() &&
         !std::filesystem::exists(candidate, ec))
    candidate = candidate.parent_path();
  return candidate.empty() ? std::filesystem::path("/") : candidate;
}

bool under(const std::filesystem::path& path, const std::filesystem::path& dir) {
  auto [dir_end, path_it] = std::mismatch(dir.begin(), dir.end(), path.begin(), path.end());
  return dir_end == dir.end();
}

}  // namespace

bool is_on_bpffs(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == BPF_FS_MAGIC;
}

tl::expected<void, Error> ensure_pin_dir(const std::string& pin_path) {
  const std::filesystem::path target = std::filesystem::path(pin_path).lexically_normal();
  if (!target.is_absolute())
    return tl::unexpected(Error{"bpf_pin_path " + pin_path + " is not an absolute path"});

  std::filesystem::path existing = nearest_existing(target);
  if (!is_on_bpffs(existing.string())) {
    if (existing != kDefaultBpffs || !under(target, kDefaultBpffs)) {
      return tl::unexpected(Error{"bpf_pin_path " + pin_path + ": " + existing.string() +
                                  " is not on a BPF filesystem; mount one there (mount -t bpf bpf "
                                  "DIR) or choose a path under /sys/fs/bpf"});
    }
    // A fresh machine: /sys/fs/bpf exists but nothing is mounted on it.
    if (::mount("bpf", kDefaultBpffs, "bpf", 0, "mode=0700") != 0) {
      const int err = errno;
      // The hint follows the errno's text, so the context says it all.
      return tl::unexpected(Error{std::string("bpf_pin_path ") + pin_path + ": " + kDefaultBpffs +
                                  " is not a BPF filesystem and mounting one failed (mount -t bpf "
                                  "bpf " + kDefaultBpffs + "): " + std::strerror(err) +
                                  (err == EPERM ? " (needs CAP_SYS_ADMIN; mount it before start)" : "")});
    }
  }

  std::filesystem::path built;
  for (const auto& component : target) {
    built /= component;
    if (::mkdir(built.c_str(), 0700) != 0 && errno != EEXIST) {
      return tl::unexpected(
          Error::from_errno("bpf_pin_path " + pin_path + ": cannot create " + built.string(), errno));
    }
  }
  struct stat st {};
  if (::stat(target.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return tl::unexpected(Error{"bpf_pin_path " + pin_path + " is not a directory"});
  if (!is_on_bpffs(target.string()))
    return tl::unexpected(Error{"bpf_pin_path " + pin_path + " is not on a BPF filesystem"});
  return {};
}

tl::expected<bool, Error> remove_incompatible_pin(const std::string& pin_file, const bpf_map_info& wanted) {
  UniqueFd fd(::bpf_obj_get(pin_file.c_str()));
  if (!fd) {
    if (errno == ENOENT) return false;
    return tl::unexpected(Error::from_errno("cannot open pinned map " + pin_file, errno));
  }
  bpf_map_info info{};
  __u32 info_len = sizeof(info);
  if (::bpf_obj_get_info_by_fd(fd.get(), &info, &info_len) != 0)
    return tl::unexpected(Error::from_errno("cannot inspect pinned map " + pin_file, errno));
  if (info.type == wanted.type && info.key_size == wanted.key_size &&
      info.value_size == wanted.value_size && info.max_entries == wanted.max_entries &&
      info.map_flags == wanted.map_flags)
    return false;
  if (::unlink(pin_file.c_str()) != 0)
    return tl::unexpected(Error::from_errno("cannot remove incompatible pinned map " + pin_file, errno));
  return true;
}

}  // namespace snisplice::bpf
