#pragma once
// Internal to the loader: typed reads of yaml-cpp nodes that report every problem as
// "file:line: key.path: message" instead of throwing.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/net_address.h"
#include "config/config.h"
#include "config/enum_names.h"

namespace snisplice::config::detail {

// 1-based line of a node, 0 when yaml-cpp knows none.
int line_of(const YAML::Node& node);

// Thrown by Problems::count_value when a file holds more values than any real configuration;
// YAML aliases can make a few kilobytes of text repeat a subtree millions of times.
struct TooManyValues {
  int line;
};

class Problems {
 public:
  static constexpr size_t kMaxValues = 1'000'000;
  static constexpr size_t kMaxShown = 1000;

  explicit Problems(std::string_view file_name) : file_name_(file_name) {}
  // `column` only orders problems on one line.
  void add(int line, std::string_view path, std::string_view message, int column = 0);
  void add(const YAML::Node& node, std::string_view path, std::string_view message) {
    add(line_of(node), path, message, node.IsDefined() ? node.Mark().column : 0);
  }
  // Called for every list item and mapping entry read; throws TooManyValues past kMaxValues.
  void count_value(const YAML::Node& node) {
    if (++values_read_ > kMaxValues) throw TooManyValues{line_of(node)};
  }
  bool empty() const { return problems_.empty() && not_shown_ == 0; }
  // One line per problem, ordered by position (stable, so problems about one node keep their
  // order);
  // past kMaxShown problems, one last line says how many more there were.
  std::vector<std::string> lines() const;

 private:
  struct Problem {
    std::pair<int, int> position;  // line, column
    std::string text;
  };
  std::string file_name_;
  std::vector<Problem> problems_;
  size_t not_shown_ = 0;
  size_t values_read_ = 0;
};

// A mapping's entries, checked once against the keys the schema knows: unknown keys (with a
// suggestion when one is close) and repeated keys are reported on construction.
class MapReader {
 public:
  // `duplicate_what` names the entries in the repeated-key message ("backend" -> duplicate
  // backend name "x"); empty: "duplicate key".
  MapReader(Problems& problems, const YAML::Node& map, std::string path,
            std::span<const std::string_view> known_keys, std::string_view duplicate_what = {});
  // An empty known_keys list accepts any key (maps keyed by user names: tables, backends).
  MapReader(Problems& problems, const YAML::Node& map, std::string path,
            std::string_view duplicate_what)
      : MapReader(problems, map, std::move(path), {}, duplicate_what) {}

  bool is_map() const { return is_map_; }
  std::string child_path(std::string_view key) const;
  // The value of `key`, nullopt when absent or empty (an empty value is reported as such).
  std::optional<YAML::Node> find(std::string_view key) const;
  // As find(), reporting "missing required key" when absent.
  std::optional<YAML::Node> require(std::string_view key) const;
  // Entries in file order, first occurrence of each key only.
  const std::vector<std::pair<std::string, YAML::Node>>& entries() const { return entries_; }
  // Line of the key (not the value), for messages about an entry as a whole.
  int key_line(std::string_view key) const;

 private:
  Problems& problems_;
  YAML::Node map_;
  std::string path_;
  bool is_map_ = false;
  std::vector<std::pair<std::string, YAML::Node>> entries_;
  std::vector<int> key_lines_;                        // parallel to entries_
  std::map<std::string, size_t, std::less<>> index_;  // key -> position in entries_
  std::vector<std::string> valueless_;                // keys given no value, already reported
};

std::string describe(const YAML::Node& node);  // "a list", "a mapping", "null", "\"text\""
// "text", with control bytes escaped; past 200 bytes cut short with "...".
std::string quote(std::string_view text);

std::optional<std::string> read_string(Problems& p, const YAML::Node& node, std::string_view path);
std::optional<bool> read_bool(Problems& p, const YAML::Node& node, std::string_view path);
std::optional<uint64_t> read_uint(Problems& p, const YAML::Node& node, std::string_view path,
                                  uint64_t min, uint64_t max);
std::optional<Duration> read_duration(Problems& p, const YAML::Node& node, std::string_view path);
// `allow_port_zero`: bind addresses may leave the port to the kernel; destinations may not.
std::optional<SocketAddress> read_address(Problems& p, const YAML::Node& node,
                                          std::string_view path, bool allow_port_zero);
std::optional<Cidr> read_cidr(Problems& p, const YAML::Node& node, std::string_view path);

// Checks that `node` is a list and calls read(item, "path[i]") for each item. False when it
// is not a list.
template <class Read>
bool read_list(Problems& p, const YAML::Node& node, std::string_view path, Read&& read) {
  if (!node.IsSequence()) {
    p.add(node, path, "expected a list, got " + describe(node));
    return false;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    p.count_value(node);
    read(node[i], std::string(path) + "[" + std::to_string(i) + "]");
  }
  return true;
}

// A list whose items all read with `read_item`; nullopt when the node or any item is bad.
template <class T, class ReadItem>
std::optional<std::vector<T>> read_list_of(Problems& p, const YAML::Node& node,
                                           std::string_view path, ReadItem&& read_item) {
  std::vector<T> out;
  bool all_good = true;
  bool is_list =
      read_list(p, node, path, [&](const YAML::Node& item, const std::string& item_path) {
        if (auto value = read_item(item, item_path))
          out.push_back(std::move(*value));
        else
          all_good = false;
      });
  if (!is_list || !all_good) return std::nullopt;
  return out;
}

std::string allowed_list(std::span<const std::string_view> names);

template <class Enum, size_t N>
std::optional<Enum> read_enum(Problems& p, const YAML::Node& node, std::string_view path,
                              const EnumName<Enum> (&names)[N]) {
  auto text = read_string(p, node, path);
  if (!text) return std::nullopt;
  for (const auto& entry : names)
    if (entry.name == *text) return entry.value;
  std::vector<std::string_view> allowed;
  for (const auto& entry : names) allowed.push_back(entry.name);
  p.add(node, path, "unknown value " + quote(*text) + " (allowed: " + allowed_list(allowed) + ")");
  return std::nullopt;
}

}  // namespace snisplice::config::detail
