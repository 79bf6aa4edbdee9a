#pragma once
// The route table: which target a host name (plus the client's ALPN offer) goes to.
// Built once per config snapshot, then only read, so it can be shared across workers.
//
// Patterns (matching is case-insensitive and ignores one trailing dot, in patterns and hosts):
//   api.example.com   exact name
//   *.example.com     every name strictly below example.com (not example.com itself)
//   .example.org      example.org and every name below it
//   ~regex            RE2, must match the whole (lower-case, A-label) name
//   *                 everything else, including connections that carry no name
// IDN patterns may be written as U-labels (UTF-8); they are matched as their A-labels, which is
// the form a client sends in SNI and Host.
//
// Precedence: exact > longest suffix > regexes in table order > "*".
// At equal suffix length "*.x" comes before ".x": for names below x both match and the one that
// says only "below x" is the more specific; the apex x itself is matched by ".x" alone. So an
// operator writing both gets "x -> .x route, names below x -> *.x route".
// Among entries with the same pattern, the first whose alpn condition lists one of the client's
// ALPN ids wins over the entry without a condition. When only conditioned entries exist and none
// matches, the pattern is skipped and lookup continues with the lower-precedence patterns.
//
// Lookup cost does not depend on how many exact and suffix entries there are: one hash lookup for
// the exact name and two per label of the host, then the regexes, then "*".
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <tl/expected.hpp>

namespace re2 {
class RE2;
}

namespace snisplice::route {

struct Entry {
  std::string pattern;
  std::vector<std::string> alpn;  // empty: no condition
  uint32_t target = 0;            // opaque to the table: an index into the caller's routes
};

class RouteTable {
 public:
  // Errors read "entry <index>: <problem> \"<pattern>\"", e.g. `entry 2: duplicate pattern
  // "*.example.com"`: a bad regex, a malformed pattern, an empty ALPN id, or a pattern + ALPN id
  // that appears twice (patterns compared after normalisation, so "A.com." duplicates "a.com").
  static tl::expected<RouteTable, std::string> build(std::vector<Entry> entries);

  // host: the name as received (SNI or Host, already validated ASCII), "" when there is none.
  // client_alpn: the ALPN protocol ids the client offered (compared byte for byte).
  std::optional<uint32_t> match(std::string_view host, std::span<const std::string> client_alpn) const;

  RouteTable(RouteTable&&) noexcept;
  RouteTable& operator=(RouteTable&&) noexcept;
  ~RouteTable();

 private:
  // The entries that share one pattern.
  struct Candidates {
    struct Conditioned {
      std::vector<std::string> alpn;
      uint32_t target;
    };
    std::vector<Conditioned> conditioned;  // table order
    std::optional<uint32_t> unconditioned;

    std::optional<uint32_t> pick(std::span<const std::string> client_alpn) const;
  };
  struct Suffix {
    Candidates below;           // "*.x"
    Candidates apex_and_below;  // ".x"
  };
  struct Regex {
    std::unique_ptr<re2::RE2> re;
    Candidates candidates;
  };
  // Heterogeneous lookup so that probing with a string_view never allocates.
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view name) const noexcept { return std::hash<std::string_view>{}(name); }
  };
  template <typename T>
  using NameMap = std::unordered_map<std::string, T, NameHash, std::equal_to<>>;

  RouteTable() = default;

  NameMap<Candidates> exact_;
  NameMap<Suffix> suffixes_;
  std::vector<Regex> regexes_;  // table order of each regex's first entry
  Candidates fallback_;         // "*"
};

}  // namespace snisplice::route
