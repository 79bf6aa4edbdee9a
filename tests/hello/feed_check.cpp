#include "feed_check.h"

namespace snisplice::hello::testing {

std::string describe(const Outcome& outcome) {
  switch (outcome.state) {
    case Outcome::State::need_more: return "need_more";
    case Outcome::State::rejected: return "rejected(" + std::string(reject_label(outcome.reject)) + ")";
    case Outcome::State::done: break;
  }
  std::string out = "done(host=\"" + outcome.hello.host + "\" alpn=[";
  for (size_t i = 0; i < outcome.hello.alpn.size(); ++i)
    out += (i ? "," : "") + outcome.hello.alpn[i];
  out += "] ech=" + std::string(outcome.hello.ech_offered ? "yes" : "no") +
         " consumed=" + std::to_string(outcome.hello.consumed) + ")";
  return out;
}

}  // namespace snisplice::hello::testing
