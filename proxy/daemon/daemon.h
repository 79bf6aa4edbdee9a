#pragma once
// The long-lived parts of a running snisplice: metrics endpoint, health checks, workers,
// and the signal loop that reloads and stops them.
#include <string>

#include "config/config.h"

namespace snisplice::daemon {

// Runs the proxy in the foreground until SIGTERM/SIGINT; returns the exit code.
int run(const std::string& config_path, config::Config config);

}  // namespace snisplice::daemon
