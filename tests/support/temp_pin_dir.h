#pragma once
// A pin directory on bpffs that exists for one test and is removed with everything in it, so
// tests never touch the production pins under /sys/fs/bpf/snisplice.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

class TempPinDir {
 public:
  explicit TempPinDir(const std::string& part = "test")
      : path_("/sys/fs/bpf/snisplice-test-" + part + "-" + std::to_string(::getpid()) + "-" +
              std::to_string(counter_++)) {}
  ~TempPinDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempPinDir(const TempPinDir&) = delete;
  TempPinDir& operator=(const TempPinDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};
