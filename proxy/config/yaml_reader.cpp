#include "config/yaml_reader.h"

#include <algorithm>
#include <charconv>

#include "config/duration.h"

namespace snisplice::config::detail {

int line_of(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  int line = node.Mark().line;
  return line < 0 ? 0 : line + 1;
}

void Problems::add(int line, std::string_view path, std::string_view message, int column) {
  if (problems_.size() >= kMaxShown) {
    ++not_shown_;
    return;
  }
  std::string text = file_name_ + ":" + std::to_string(line) + ": ";
  if (!path.empty()) text += std::string(path) + ": ";
  text += message;
  problems_.push_back({{line, column}, std::move(text)});
}

std::vector<std::string> Problems::lines() const {
  std::vector<Problem> sorted = problems_;
  std::ranges::stable_sort(sorted, {}, &Problem::position);
  std::vector<std::string> out;
  out.reserve(sorted.size());
  for (auto& problem : sorted) out.push_back(std::move(problem.text));
  if (not_shown_ != 0)
    out.push_back(file_name_ + ": " + std::to_string(not_shown_) + " more problems not shown");
  return out;
}

namespace {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The known key within a third of the key's length in edits (at least one), if any.
std::optional<std::string_view> closest_key(std::string_view key,
                                            std::span<const std::string_view> known) {
  if (key.size() > 64) return std::nullopt;  // no typo is that long; keeps the cost bounded
  std::optional<std::string_view> best;
  size_t best_distance = std::max<size_t>(1, key.size() / 3) + 1;
  for (auto candidate : known) {
    size_t distance = edit_distance(key, candidate);
    if (distance < best_distance) best = candidate, best_distance = distance;
  }
  return best;
}

}  // namespace

MapReader::MapReader(Problems& problems, const YAML::Node& map, std::string path,
                     std::span<const std::string_view> known_keys, std::string_view duplicate_what)
    : problems_(problems), map_(map), path_(std::move(path)) {
  if (!map.IsMap()) {
    problems_.add(map, path_, "expected a mapping, got " + describe(map));
    return;
  }
  is_map_ = true;
  for (const auto& entry : map) {
    problems_.count_value(map);
    const YAML::Node key_node = entry.first;
    if (!key_node.IsScalar()) {
      problems_.add(key_node, path_, "keys must be plain names, got " + describe(key_node));
      continue;
    }
    const std::string& key = key_node.Scalar();
    std::string entry_path = child_path(key);
    if (!known_keys.empty() && std::ranges::find(known_keys, key) == known_keys.end()) {
      std::string message = "unknown key " + quote(key);
      if (auto suggestion = closest_key(key, known_keys))
        message += " (did you mean '" + std::string(*suggestion) + "'?)";
      problems_.add(key_node, entry_path, message);
      continue;
    }
    if (auto previous = index_.find(key); previous != index_.end()) {
      int first_line = key_lines_[previous->second];
      std::string what =
          duplicate_what.empty() ? std::string("key") : std::string(duplicate_what) + " name";
      problems_.add(key_node, entry_path,
                    "duplicate " + what + " " + quote(key) + " (first at line " +
                        std::to_string(first_line) + ")");
      continue;
    }
    // An empty value is reported here, on the key's line: yaml-cpp marks a null value where
    // the next token starts, often a later line.
    if (entry.second.IsNull()) {
      problems_.add(key_node, entry_path, "missing value");
      valueless_.push_back(key);
      continue;
    }
    index_.emplace(key, entries_.size());
    entries_.emplace_back(key, entry.second);
    key_lines_.push_back(line_of(key_node));
  }
}

std::string MapReader::child_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

std::optional<YAML::Node> MapReader::find(std::string_view key) const {
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  return entries_[it->second].second;
}

std::optional<YAML::Node> MapReader::require(std::string_view key) const {
  auto value = find(key);
  if (!value && is_map_ && std::ranges::find(valueless_, key) == valueless_.end())
    problems_.add(map_, child_path(key), "missing required key");
  return value;
}

int MapReader::key_line(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? line_of(map_) : key_lines_[it->second];
}

std::string quote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  static constexpr size_t kMaxQuoted = 200;
  std::string out = "\"";
  for (char c : text.substr(0, kMaxQuoted)) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out + (text.size() > kMaxQuoted ? "...\"" : "\"");
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Scalar: return quote(node.Scalar());
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return "nothing";
  }
  return "nothing";
}

std::string allowed_list(std::span<const std::string_view> names) {
  std::string out;
  for (auto name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::optional<std::string> read_string(Problems& p, const YAML::Node& node, std::string_view path) {
  if (!node.IsScalar()) {
    p.add(node, path, "expected a string, got " + describe(node));
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<bool> read_bool(Problems& p, const YAML::Node& node, std::string_view path) {
  if (node.IsScalar()) {
    const std::string& text = node.Scalar();
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
  }
  p.add(node, path, "expected true or false, got " + describe(node));
  return std::nullopt;
}

std::optional<uint64_t> read_uint(Problems& p, const YAML::Node& node, std::string_view path,
                                  uint64_t min, uint64_t max) {
  uint64_t value = 0;
  if (node.IsScalar()) {
    const std::string& text = node.Scalar();
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!text.empty() && ec == std::errc{} && end == text.data() + text.size()) {
      if (value >= min && value <= max) return value;
      p.add(node, path,
            "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                text);
      return std::nullopt;
    }
  }
  p.add(node, path, "expected an integer, got " + describe(node));
  return std::nullopt;
}

std::optional<Duration> read_duration(Problems& p, const YAML::Node& node, std::string_view path) {
  if (node.IsScalar())
    if (auto value = parse_duration(node.Scalar())) return value;
  p.add(node, path,
        "bad duration " + describe(node) +
            " (expected a number and a unit: ms, s, m or h, "
            "e.g. \"250ms\", \"5s\")");
  return std::nullopt;
}

std::optional<SocketAddress> read_address(Problems& p, const YAML::Node& node,
                                          std::string_view path, bool allow_port_zero) {
  if (node.IsScalar()) {
    if (auto address = SocketAddress::parse(node.Scalar())) {
      if (address->port != 0 || allow_port_zero) return address;
      p.add(node, path, "bad port 0 in " + quote(node.Scalar()));
      return std::nullopt;
    }
  }
  p.add(node, path, "bad address " + describe(node) + " (expected \"ip:port\" or \"[ipv6]:port\")");
  return std::nullopt;
}

std::optional<Cidr> read_cidr(Problems& p, const YAML::Node& node, std::string_view path) {
  if (node.IsScalar())
    if (auto cidr = Cidr::parse(node.Scalar())) return cidr;
  p.add(node, path,
        "bad CIDR " + describe(node) + " (expected e.g. \"10.0.0.0/8\" or \"2001:db8::/32\")");
  return std::nullopt;
}

}  // namespace snisplice::config::detail
