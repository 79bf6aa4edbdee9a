#pragma once
// Internal to the loader: the value readers every section shares. A reader reports its own
// problems and returns nullopt on them; read_key and list_of apply one to a key or to each
// item of a list. The generic YAML reads (strings, integers, addresses) are in yaml_reader.h.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace snisplice::config::detail {

template <class T>
using ValueReader = std::optional<T> (*)(Problems&, const YAML::Node&, std::string_view);

// Sets `target` from `key` when the key is present and its value good; the default stays
// otherwise.
template <class Target, class T>
void read_key(Problems& p, const MapReader& map, std::string_view key, Target& target,
              ValueReader<T> read) {
  if (auto node = map.find(key))
    if (auto value = read(p, *node, map.child_path(key)))
      target = static_cast<Target>(std::move(*value));
}

template <class T>
std::optional<std::vector<T>> list_of(Problems& p, const YAML::Node& node, std::string_view path,
                                      ValueReader<T> read_item) {
  return read_list_of<T>(p, node, path,
                         [&](const YAML::Node& item, const std::string& item_path) {
                           return read_item(p, item, item_path);
                         });
}

template <uint64_t Min, uint64_t Max>
std::optional<uint64_t> read_integer(Problems& p, const YAML::Node& node, std::string_view path) {
  return read_uint(p, node, path, Min, Max);
}

template <const auto& Names>
std::optional<std::remove_cvref_t<decltype(Names[0].value)>> read_enumerated(
    Problems& p, const YAML::Node& node, std::string_view path) {
  return read_enum(p, node, path, Names);
}

std::optional<Duration> read_positive_duration(Problems& p, const YAML::Node& node,
                                               std::string_view path);
// Where snisplice binds: port 0 leaves the choice to the kernel (handy in tests).
std::optional<SocketAddress> read_bind_address(Problems& p, const YAML::Node& node,
                                               std::string_view path);
// Where snisplice connects: each needs a port.
std::optional<std::vector<SocketAddress>> read_destinations(Problems& p, const YAML::Node& node,
                                                            std::string_view path);
std::optional<std::vector<Cidr>> read_cidrs(Problems& p, const YAML::Node& node,
                                             std::string_view path);
// Listener, table and backend names: used in logs, metric labels and references.
std::optional<std::string> read_name(Problems& p, const YAML::Node& node, std::string_view path);

// At most a few names, quoted, for messages: "a", "b", "c" and 5 more.
std::string quoted_list(const std::vector<std::string>& names);

}  // namespace snisplice::config::detail
