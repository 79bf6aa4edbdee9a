#include "daemon/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include <fmt/format.h>

namespace snisplice::daemon {
namespace {

Error failure(const char* what) { return Error::from_errno(what, errno); }

}  // namespace

std::vector<std::string> runtime_capabilities(const config::Config& config) {
  if (config.xdp.interfaces.empty()) return {};
  return {"cap_bpf", "cap_net_admin", "cap_perfmon"};
}

tl::expected<std::string, Error> drop_privileges(const std::string& user, const std::vector<std::string>& keep) {
  if (user.empty()) return std::string("user: not set; privileges unchanged");
  if (::geteuid() != 0) return fmt::format("user: {} ignored: not started as root", user);
  errno = 0;
  passwd* account = ::getpwnam(user.c_str());
  if (!account) return tl::unexpected(Error{fmt::format("user: {}: no such account", user)});
  uid_t uid = account->pw_uid;
  gid_t gid = account->pw_gid;

  std::vector<cap_value_t> values;
  for (const auto& name : keep) {
    cap_value_t value;
    if (cap_from_name(name.c_str(), &value) != 0) continue;  // unknown to this libcap: skip
    if (CAP_IS_SUPPORTED(value)) values.push_back(value);
  }
  // Keep the permitted set across setuid, then narrow it to `keep`.
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return tl::unexpected(failure("PR_SET_KEEPCAPS"));
  if (::setgroups(0, nullptr) != 0) return tl::unexpected(failure("setgroups"));
  if (::setgid(gid) != 0) return tl::unexpected(failure("setgid"));
  if (::setuid(uid) != 0) return tl::unexpected(failure("setuid"));
  ::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);

  std::unique_ptr<_cap_struct, int (*)(void*)> caps(cap_init(), cap_free);
  if (!caps) return tl::unexpected(failure("cap_init"));
  if (!values.empty()) {
    cap_set_flag(caps.get(), CAP_PERMITTED, static_cast<int>(values.size()), values.data(), CAP_SET);
    cap_set_flag(caps.get(), CAP_EFFECTIVE, static_cast<int>(values.size()), values.data(), CAP_SET);
  }
  if (cap_set_proc(caps.get()) != 0) return tl::unexpected(failure("cap_set_proc"));
  ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);

  std::string kept;
  for (cap_value_t value : values) {
    char* name = cap_to_name(value);
    kept += kept.empty() ? name : fmt::format(", {}", name);
    cap_free(name);
  }
  return fmt::format("running as {} (uid {}, gid {}); capabilities kept: {}", user, uid, gid,
                     kept.empty() ? "none" : kept);
}

}  // namespace snisplice::daemon
