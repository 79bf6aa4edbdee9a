// load_config_text on arbitrary bytes: it never throws out or crashes, every error line names
// the file, and a Config it accepts satisfies the cross-references the daemon relies on.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/load.h"

namespace {

void require(bool condition) {
  if (!condition) __builtin_trap();
}

void check_accepted(const snisplice::config::Config& config) {
  require(!config.listeners.empty());
  for (const auto& listener : config.listeners) {
    require(!listener.listen.empty());
    require(config.find_table(listener.table) != nullptr);
    require(listener.client_hello_max_bytes >= 1024 && listener.client_hello_max_bytes <= 65536);
  }
  for (const auto& table : config.tables)
    for (const auto& route : table.routes)
      if (route.action == snisplice::config::RouteAction::backend)
        require(config.find_backend(route.backend) != nullptr);
  for (const auto& backend : config.backends) require(!backend.servers.empty());
  require(config.dns.min_ttl <= config.dns.max_ttl);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = snisplice::config::load_config_text(text, "fuzz.yaml");
  if (result) {
    check_accepted(*result);
  } else {
    require(!result.error().empty());
    for (const auto& line : result.error()) require(line.starts_with("fuzz.yaml:"));
  }
  return 0;
}
