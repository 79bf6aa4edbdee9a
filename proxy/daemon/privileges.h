#pragma once
// Dropping what the daemon no longer needs once its sockets and BPF objects exist: switch to
// the configured user and keep only the capabilities later work uses.
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "base/error.h"

#include "config/config.h"

namespace snisplice::daemon {

// Capabilities still used after start-up, by name ("cap_net_admin", ...): re-attaching XDP on
// reload needs CAP_BPF + CAP_NET_ADMIN (+ CAP_PERFMON for the verifier's pointer checks).
// Splicing needs none: a process holding the sockhash fd may insert sockets without privilege.
std::vector<std::string> runtime_capabilities(const config::Config& config);

// When running as root with `user:` set: become that user (and its primary group), keeping
// exactly `keep` in the permitted and effective sets of the calling thread (threads started
// afterwards inherit them). Returns the description for the log line.
// Must run before the worker threads start: capability sets are per thread.
tl::expected<std::string, Error> drop_privileges(const std::string& user, const std::vector<std::string>& keep);

}  // namespace snisplice::daemon
