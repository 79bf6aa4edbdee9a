#include "config/load_values.h"

namespace snisplice::config::detail {

std::optional<Duration> read_positive_duration(Problems& p, const YAML::Node& node,
                                               std::string_view path) {
  auto value = read_duration(p, node, path);
  if (value && value->count() == 0) {
    p.add(node, path, "must be longer than 0");
    return std::nullopt;
  }
  return value;
}

std::optional<SocketAddress> read_bind_address(Problems& p, const YAML::Node& node,
                                               std::string_view path) {
  return read_address(p, node, path, true);
}

namespace {

std::optional<SocketAddress> read_destination(Problems& p, const YAML::Node& node,
                                              std::string_view path) {
  return read_address(p, node, path, false);
}

}  // namespace

std::optional<std::vector<SocketAddress>> read_destinations(Problems& p, const YAML::Node& node,
                                                            std::string_view path) {
  return list_of(p, node, path, &read_destination);
}

std::optional<std::vector<Cidr>> read_cidrs(Problems& p, const YAML::Node& node,
                                             std::string_view path) {
  return list_of(p, node, path, &read_cidr);
}

std::optional<std::string> read_name(Problems& p, const YAML::Node& node, std::string_view path) {
  auto text = read_string(p, node, path);
  if (text && text->empty()) {
    p.add(node, path, "must not be empty");
    return std::nullopt;
  }
  return text;
}

std::string quoted_list(const std::vector<std::string>& names) {
  constexpr size_t kShown = 4;
  std::string out;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) out += (i ? ", " : "") + quote(names[i]);
  if (names.size() > kShown) out += " and " + std::to_string(names.size() - kShown) + " more";
  return out;
}

}  // namespace snisplice::config::detail
