#include "config/load_sections.h"
#include "config/load_values.h"

namespace snisplice::config::detail {
namespace {

using namespace std::string_view_literals;

constexpr std::string_view kXdpKeys[] = {"interfaces"sv, "mode"sv,       "policy"sv, "ports"sv,
                                         "allow"sv,      "rate_limit"sv, "syncookie"sv};
constexpr std::string_view kRateLimitKeys[] = {"mode"sv,      "syn_per_second"sv, "burst"sv,
                                               "prefix_v4"sv, "prefix_v6"sv,      "exempt"sv};
constexpr std::string_view kSyncookieKeys[] = {"mode"sv, "syn_threshold"sv};

constexpr size_t kMaxInterfaceName = 15;  // IFNAMSIZ - 1

std::optional<uint16_t> read_port(Problems& p, const YAML::Node& node, std::string_view path) {
  if (auto port = read_uint(p, node, path, 1, 65535)) return static_cast<uint16_t>(*port);
  return std::nullopt;
}

std::optional<std::vector<uint16_t>> read_ports(Problems& p, const YAML::Node& node,
                                                std::string_view path) {
  return list_of(p, node, path, &read_port);
}

std::optional<std::string> read_interface(Problems& p, const YAML::Node& node,
                                          std::string_view path) {
  auto text = read_string(p, node, path);
  if (text &&
      (text->empty() || text->size() > kMaxInterfaceName ||
       text->find_first_of("/ \t\n") != std::string::npos || *text == "." || *text == "..")) {
    p.add(node, path, "bad interface name " + quote(*text));
    return std::nullopt;
  }
  return text;
}

std::optional<std::vector<std::string>> read_interfaces(Problems& p, const YAML::Node& node,
                                                        std::string_view path) {
  return list_of(p, node, path, &read_interface);
}

void read_rate_limit(Problems& p, const YAML::Node& node, const std::string& path,
                     XdpRateLimit& rate) {
  MapReader section(p, node, path, kRateLimitKeys);
  read_key(p, section, "mode", rate.mode, &read_enumerated<kRateLimitModeNames>);
  read_key(p, section, "syn_per_second", rate.syn_per_second, &read_integer<1, UINT32_MAX>);
  read_key(p, section, "burst", rate.burst, &read_integer<1, UINT32_MAX>);
  read_key(p, section, "prefix_v4", rate.prefix_v4, &read_integer<1, 32>);
  read_key(p, section, "prefix_v6", rate.prefix_v6, &read_integer<1, 128>);
  read_key(p, section, "exempt", rate.exempt, &read_cidrs);
}

void read_syncookie(Problems& p, const YAML::Node& node, const std::string& path,
                    XdpSyncookie& syncookie) {
  MapReader section(p, node, path, kSyncookieKeys);
  read_key(p, section, "mode", syncookie.mode, &read_enumerated<kSyncookieModeNames>);
  read_key(p, section, "syn_threshold", syncookie.syn_threshold, &read_integer<1, UINT32_MAX>);
}

}  // namespace

void read_xdp(Problems& p, const YAML::Node& node, Xdp& xdp) {
  MapReader map(p, node, "xdp", kXdpKeys);
  read_key(p, map, "interfaces", xdp.interfaces, &read_interfaces);
  read_key(p, map, "mode", xdp.mode, &read_enumerated<kXdpModeNames>);
  read_key(p, map, "policy", xdp.policy, &read_enumerated<kXdpPolicyNames>);
  read_key(p, map, "ports", xdp.ports, &read_ports);
  read_key(p, map, "allow", xdp.allow, &read_cidrs);
  if (auto limit = map.find("rate_limit"))
    read_rate_limit(p, *limit, map.child_path("rate_limit"), xdp.rate_limit);
  if (auto cookie = map.find("syncookie"))
    read_syncookie(p, *cookie, map.child_path("syncookie"), xdp.syncookie);
}

}  // namespace snisplice::config::detail
