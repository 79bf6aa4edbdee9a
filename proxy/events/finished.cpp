#include "events/finished.h"

#include <algorithm>
#include <array>

namespace snisplice::events {

bool is_refusal(std::string_view result) {
  static constexpr std::array<std::string_view, 7> kRefusals = {
      "rejected",           "no_route",      "client_hello_error", "client_hello_timeout",
      "proxy_protocol_error", "denied_address", "limit_exceeded"};
  return std::find(kRefusals.begin(), kRefusals.end(), result) != kRefusals.end();
}

Payload finished(const close::AccessRecord& record, const SocketAddress& client) {
  if (record.backend.empty() && is_refusal(record.result))
    return Refused{std::string(record.listener), client, std::string(record.host), std::string(record.result)};
  return Closed{std::string(record.listener),
                client,
                std::string(record.host),
                std::string(record.route),
                record.backend,
                std::string(record.splice_mode),
                record.bytes_client_to_backend,
                record.bytes_backend_to_client,
                record.duration,
                std::string(record.result)};
}

}  // namespace snisplice::events
