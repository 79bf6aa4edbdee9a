#pragma once
// Admission limits shared by every worker: max_connections per listener and
// per_ip_max_connections per client address (IPv6 grouped by /64, since one host usually
// owns a whole /64). Counts survive reloads because they are keyed by listener name.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "base/net_address.h"

namespace snisplice::accept {

class Admission {
 public:
  // The key a client address is counted under.
  static IpAddress client_group(const IpAddress& client);

  bool try_admit(const std::string& listener, const IpAddress& client, uint32_t max_connections,
                 uint32_t per_ip_max_connections);
  void release(const std::string& listener, const IpAddress& client);

  uint32_t active(const std::string& listener) const;

 private:
  struct ListenerCounts {
    uint32_t total = 0;
    std::map<IpAddress, uint32_t> per_client;
  };
  mutable std::mutex mutex_;
  std::map<std::string, ListenerCounts, std::less<>> listeners_;
};

}  // namespace snisplice::accept
