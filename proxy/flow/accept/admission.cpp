#include "flow/accept/admission.h"

namespace snisplice::accept {

IpAddress Admission::client_group(const IpAddress& client) {
  IpAddress group = client.unmapped();
  if (!group.is_v4())
    for (size_t i = 8; i < 16; ++i) group.bytes[i] = 0;
  return group;
}

bool Admission::try_admit(const std::string& listener, const IpAddress& client,
                          uint32_t max_connections, uint32_t per_ip_max_connections) {
  std::lock_guard lock(mutex_);
  auto& counts = listeners_[listener];
  if (counts.total >= max_connections) return false;
  auto& per_client = counts.per_client[client_group(client)];
  if (per_client >= per_ip_max_connections) {
    if (per_client == 0) counts.per_client.erase(client_group(client));
    return false;
  }
  ++per_client;
  ++counts.total;
  return true;
}

void Admission::release(const std::string& listener, const IpAddress& client) {
  std::lock_guard lock(mutex_);
  auto it = listeners_.find(listener);
  if (it == listeners_.end()) return;
  auto& counts = it->second;
  auto group = counts.per_client.find(client_group(client));
  if (group == counts.per_client.end()) return;  // never admitted: nothing to give back
  if (--group->second == 0) counts.per_client.erase(group);
  --counts.total;
}

uint32_t Admission::active(const std::string& listener) const {
  std::lock_guard lock(mutex_);
  auto it = listeners_.find(listener);
  return it == listeners_.end() ? 0 : it->second.total;
}

}  // namespace snisplice::accept
