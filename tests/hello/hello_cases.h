#pragma once
// The hand-built case tables: one entry per parser rule, each with the outcome it must give.
// The unit tests feed them every way (feed_check.h); the OpenSSL differential test replays
// the TLS ones that succeed.
#include <string>
#include <vector>

#include "flow/hello/outcome.h"
#include "tls_builder.h"

namespace snisplice::hello::testing {

struct Case {
  std::string name;
  Bytes bytes;
  Outcome expected;
  size_t max_bytes = kDefaultMaxHelloBytes;
};

std::vector<Case> tls_cases();
std::vector<Case> http_cases();

}  // namespace snisplice::hello::testing
