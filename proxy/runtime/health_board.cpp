#include "runtime/health_board.h"

namespace snisplice::runtime {

std::shared_ptr<std::atomic<bool>> HealthBoard::flag(const std::string& backend, const SocketAddress& server) {
  std::lock_guard lock(mutex_);
  auto& slot = flags_[backend + " " + server.to_string()];
  if (!slot) slot = std::make_shared<std::atomic<bool>>(true);
  return slot;
}

}  // namespace snisplice::runtime
