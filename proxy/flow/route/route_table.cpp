#include "flow/route/route_table.h"

#include <idn2.h>
#include <re2/re2.h>

#include <algorithm>
#include <array>

namespace snisplice::route {
namespace {

// RFC 1035 section 2.3.4: 63 octets per label, 255 on the wire = 253 as dotted text.
constexpr size_t kMaxLabel = 63;
constexpr size_t kMaxName = 253;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view strip_trailing_dot(std::string_view name) {
  if (name.ends_with('.')) name.remove_suffix(1);
  return name;
}

// A U-label name becomes its A-label form (IDNA2008 with UTS#46 mapping, as browsers send it).
tl::expected<std::string, std::string> to_a_label(std::string_view name) {
  if (std::none_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; }))
    return std::string(name);
  std::string input(name);
  uint8_t* output = nullptr;
  int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(input.c_str()), &output,
                          IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  if (rc != IDN2_OK) return tl::unexpected(std::string("not a valid international name: ") + idn2_strerror(rc));
  std::string result(reinterpret_cast<const char*>(output));
  idn2_free(output);
  return result;
}

// The name part of an exact or suffix pattern, lower-cased and checked: letters, digits,
// '-' and '_' (seen in real SNI), labels of 1..63, at most 253 in all.
tl::expected<std::string, std::string> normalise_name(std::string_view name) {
  auto converted = to_a_label(name);
  if (!converted) return converted;
  std::string out = std::move(*converted);
  if (out.empty() || out.size() > kMaxName) return tl::unexpected(std::string("name length must be 1..253"));
  size_t label = 0;
  for (char& c : out) {
    c = lower(c);
    if (c == '.') {
      if (label == 0) return tl::unexpected(std::string("empty label"));
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return tl::unexpected(std::string("invalid character '") + c + "' in name");
    if (++label > kMaxLabel) return tl::unexpected(std::string("label longer than 63"));
  }
  if (label == 0) return tl::unexpected(std::string("empty label"));
  return out;
}

bool offers(std::span<const std::string> client_alpn, const std::vector<std::string>& wanted) {
  for (const auto& id : wanted)
    if (std::find(client_alpn.begin(), client_alpn.end(), id) != client_alpn.end()) return true;
  return false;
}

// Host names are at most 253 bytes; a fixed buffer keeps lookups free of allocation, and longer
// (invalid) input still gets a correct answer through the heap.
class LoweredHost {
 public:
  explicit LoweredHost(std::string_view host) {
    host = strip_trailing_dot(host);
    char* out = inline_.data();
    if (host.size() > inline_.size()) {
      heap_.resize(host.size());
      out = heap_.data();
    }
    for (size_t i = 0; i < host.size(); ++i) out[i] = lower(host[i]);
    view_ = std::string_view(out, host.size());
  }
  LoweredHost(const LoweredHost&) = delete;
  LoweredHost& operator=(const LoweredHost&) = delete;
  std::string_view view() const { return view_; }

 private:
  std::array<char, 256> inline_;
  std::string heap_;
  std::string_view view_;
};

}  // namespace

std::optional<uint32_t> RouteTable::Candidates::pick(std::span<const std::string> client_alpn) const {
  for (const auto& entry : conditioned)
    if (offers(client_alpn, entry.alpn)) return entry.target;
  return unconditioned;
}

RouteTable::RouteTable(RouteTable&&) noexcept = default;
RouteTable& RouteTable::operator=(RouteTable&&) noexcept = default;
RouteTable::~RouteTable() = default;

tl::expected<RouteTable, std::string> RouteTable::build(std::vector<Entry> entries) {
  RouteTable table;
  for (size_t index = 0; index < entries.size(); ++index) {
    Entry& entry = entries[index];
    // "entry 2: duplicate pattern \"*.example.com\"": the caller maps the index to file:line.
    auto fail = [&](const std::string& why) {
      return tl::unexpected("entry " + std::to_string(index) + ": " + why + " \"" + entry.pattern + "\"");
    };

    std::string_view pattern = entry.pattern;
    Candidates* slot = nullptr;
    if (pattern == "*") {
      slot = &table.fallback_;
    } else if (pattern.starts_with('~')) {
      std::string source(pattern.substr(1));
      if (source.empty()) return fail("empty regex");
      auto existing = std::find_if(table.regexes_.begin(), table.regexes_.end(),
                                   [&](const Regex& r) { return r.re->pattern() == source; });
      if (existing != table.regexes_.end()) {
        slot = &existing->candidates;
      } else {
        RE2::Options options;
        options.set_case_sensitive(false);
        options.set_log_errors(false);
        auto re = std::make_unique<re2::RE2>(source, options);
        if (!re->ok()) return fail("bad regex (" + re->error() + ")");
        table.regexes_.push_back(Regex{std::move(re), {}});
        slot = &table.regexes_.back().candidates;
      }
    } else {
      pattern = strip_trailing_dot(pattern);
      bool below = pattern.starts_with("*.");
      bool apex = !below && pattern.starts_with('.');
      auto name = normalise_name(pattern.substr(below ? 2 : apex ? 1 : 0));
      if (!name) return fail("bad pattern (" + name.error() + ")");
      if (below) slot = &table.suffixes_[*name].below;
      else if (apex) slot = &table.suffixes_[*name].apex_and_below;
      else slot = &table.exact_[*name];
    }

    if (entry.alpn.empty()) {
      if (slot->unconditioned) return fail("duplicate pattern");
      slot->unconditioned = entry.target;
      continue;
    }
    for (size_t i = 0; i < entry.alpn.size(); ++i) {
      const std::string& id = entry.alpn[i];
      if (id.empty()) return fail("empty ALPN id");
      bool repeated = std::find(entry.alpn.begin(), entry.alpn.begin() + i, id) != entry.alpn.begin() + i;
      bool taken = std::any_of(slot->conditioned.begin(), slot->conditioned.end(), [&](const auto& other) {
        return std::find(other.alpn.begin(), other.alpn.end(), id) != other.alpn.end();
      });
      if (repeated || taken) return fail("duplicate ALPN \"" + id + "\" for pattern");
    }
    slot->conditioned.push_back({std::move(entry.alpn), entry.target});
  }
  return table;
}

std::optional<uint32_t> RouteTable::match(std::string_view host, std::span<const std::string> client_alpn) const {
  LoweredHost lowered(host);
  std::string_view name = lowered.view();
  if (name.empty()) return fallback_.pick(client_alpn);

  if (auto it = exact_.find(name); it != exact_.end())
    if (auto target = it->second.pick(client_alpn)) return target;

  // Longest suffix first: the whole name (only ".x" covers its apex), then each parent.
  if (auto it = suffixes_.find(name); it != suffixes_.end())
    if (auto target = it->second.apex_and_below.pick(client_alpn)) return target;
  for (size_t dot = name.find('.'); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
    auto it = suffixes_.find(name.substr(dot + 1));
    if (it == suffixes_.end()) continue;
    if (auto target = it->second.below.pick(client_alpn)) return target;
    if (auto target = it->second.apex_and_below.pick(client_alpn)) return target;
  }

  for (const auto& regex : regexes_)
    if (RE2::FullMatch(name, *regex.re))
      if (auto target = regex.candidates.pick(client_alpn)) return target;

  return fallback_.pick(client_alpn);
}

}  // namespace snisplice::route
