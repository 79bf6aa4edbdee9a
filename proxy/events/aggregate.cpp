#include "events/aggregate.h"

#include <algorithm>
#include <vector>

#include "events/json.h"

namespace snisplice::events {
namespace {

template <class Map>
void bump(Map& map, const typename Map::key_type& key, size_t cap, uint64_t& overflow) {
  auto it = map.find(key);
  if (it != map.end()) {
    ++it->second;
  } else if (map.size() < cap) {
    map.emplace(key, 1);
  } else {
    ++overflow;
  }
}

// [{"<label>":"key","count":N},...], highest count first, at most `limit` rows.
std::string ranked(const std::map<std::string, uint64_t>& counts, std::string_view label, size_t limit) {
  std::vector<std::pair<std::string_view, uint64_t>> rows(counts.begin(), counts.end());
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (rows.size() > limit) rows.resize(limit);
  std::string out = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i) out += ',';
    JsonObject(out).string(label, rows[i].first).number("count", rows[i].second).close();
  }
  return out + "]";
}

bool is_drop(std::string_view verdict) { return verdict == "drop" || verdict == "rate_limited"; }

}  // namespace

std::string source_prefix(const IpAddress& address) {
  IpAddress ip = address.unmapped();
  Cidr prefix{ip, static_cast<uint8_t>(ip.is_v4() ? 24 : 64)};
  size_t keep = ip.is_v4() ? 3 : 8;
  std::fill(prefix.network.bytes.begin() + static_cast<long>(keep), prefix.network.bytes.end(), 0);
  return prefix.to_string();
}

void Aggregator::add(const Event& event, const std::string& json) {
  ++events_;
  Type type = type_of(event.what);
  bump(counts_,
       Key{type, std::string(listener_of(event.what)), std::string(route_of(event.what)),
           std::string(result_of(event.what))},
       kMaxKeys, overflow_);
  // A requested name counts once per connection: when it is routed or turned away.
  if (type == Type::routed || type == Type::refused) {
    if (auto host = host_of(event.what); !host.empty()) bump(names_, std::string(host), kMaxNames, overflow_);
  }
  if (const auto* xdp = std::get_if<XdpVerdict>(&event.what); xdp && is_drop(xdp->verdict))
    bump(xdp_drops_, source_prefix(xdp->source), kMaxKeys, overflow_);
  if (const auto* spliced = std::get_if<Spliced>(&event.what)) bump(modes_, spliced->mode, kMaxKeys, overflow_);
  if (type == Type::paused) ++paused_;
  if (type == Type::resumed) ++resumed_;
  recent_.push_back(json);
  if (recent_.size() > kRecent) recent_.pop_front();
}

std::string Aggregator::summary(std::chrono::system_clock::time_point now, std::chrono::milliseconds interval) {
  std::string counts = "[";
  bool first = true;
  for (const auto& [key, count] : counts_) {
    if (!first) counts += ',';
    first = false;
    const auto& [type, listener, route, result] = key;
    JsonObject(counts)
        .string("type", type_label(type))
        .string("listener", listener)
        .string("route", route)
        .string("result", result)
        .number("count", count)
        .close();
  }
  counts += ']';
  std::string modes;
  JsonObject splice(modes);
  for (const auto& [mode, count] : modes_) splice.number(mode, count);
  splice.close();
  std::string recent = "[";
  for (size_t i = 0; i < recent_.size(); ++i) {
    if (i) recent += ',';
    recent += recent_[i];
  }
  recent += ']';

  std::string out;
  JsonObject(out)
      .string("type", "aggregate")
      .string("time", rfc3339_ms(now))
      .number("interval_ms", static_cast<uint64_t>(interval.count()))
      .number("events", events_)
      .number("overflow", overflow_)
      .raw("counts", counts)
      .raw("names", ranked(names_, "name", kTopNames))
      .raw("xdp_drops", ranked(xdp_drops_, "prefix", kTopNames))
      .raw("splice", modes)
      .number("paused", paused_)
      .number("resumed", resumed_)
      .raw("recent", recent)
      .close();
  *this = Aggregator{};
  return out;
}

}  // namespace snisplice::events
