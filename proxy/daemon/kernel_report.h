#pragma once
// What `snisplice --version` says about the kernel: which of the features snisplice uses
// it offers to this process.
#include <string>

namespace snisplice::daemon {

std::string kernel_report();

}  // namespace snisplice::daemon
