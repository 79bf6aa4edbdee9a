#include "config/config.h"

#include <algorithm>

#include "config/enum_names.h"

namespace snisplice::config {

const Table* Config::find_table(std::string_view name) const {
  auto it = std::ranges::find(tables, name, &Table::name);
  return it == tables.end() ? nullptr : &*it;
}

const Backend* Config::find_backend(std::string_view name) const {
  auto it = std::ranges::find(backends, name, &Backend::name);
  return it == backends.end() ? nullptr : &*it;
}

namespace {
template <class Enum, size_t N>
std::string_view name_in(const EnumName<Enum> (&names)[N], Enum value) {
  for (const auto& entry : names)
    if (entry.value == value) return entry.name;
  return "?";  // unreachable while every list names every value (checked by unit_config)
}
}  // namespace

std::string_view to_string(Protocol value) { return name_in(kProtocolNames, value); }
std::string_view to_string(Balance value) { return name_in(kBalanceNames, value); }
std::string_view to_string(ProxyProtocol value) { return name_in(kProxyProtocolNames, value); }
std::string_view to_string(SpliceMode value) { return name_in(kSpliceModeNames, value); }
std::string_view to_string(XdpMode value) { return name_in(kXdpModeNames, value); }
std::string_view to_string(XdpPolicy value) { return name_in(kXdpPolicyNames, value); }
std::string_view to_string(RateLimitMode value) { return name_in(kRateLimitModeNames, value); }
std::string_view to_string(SyncookieMode value) { return name_in(kSyncookieModeNames, value); }
std::string_view to_string(LogLevel value) { return name_in(kLogLevelNames, value); }

std::string_view to_string(RouteAction value) {
  switch (value) {
    case RouteAction::backend: return "backend";
    case RouteAction::resolve: return "resolve";
    case RouteAction::reject: return "reject";
    case RouteAction::original_dst: return "original_dst";
  }
  return "?";
}

}  // namespace snisplice::config
