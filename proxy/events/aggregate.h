#pragma once
// Summaries instead of every event, for a page at 10,000 events per second: counts per
// (type, listener, route, result), the most requested names, XDP drops per source prefix
// (/24, /64), the data path chosen and splice pauses, and the last events themselves. Pure:
// fed events, asked for a summary with the time passed in; bounded in memory whatever it is fed.
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <tuple>

#include "events/event.h"

namespace snisplice::events {

class Aggregator {
 public:
  static constexpr size_t kMaxKeys = 512;    // distinct count rows; more go to "overflow"
  static constexpr size_t kMaxNames = 1024;  // distinct names tracked per interval
  static constexpr size_t kTopNames = 20;
  static constexpr size_t kRecent = 100;

  // `json` is the event's to_json, already made by the caller for the other subscribers.
  void add(const Event& event, const std::string& json);

  // {"type":"aggregate","time":...,"interval_ms":...,"events":N,"overflow":N,"counts":[...],
  //  "names":[...],"xdp_drops":[...],"splice":{...},"paused":N,"resumed":N,"recent":[...]}
  // for everything added since the last summary, which it then forgets.
  std::string summary(std::chrono::system_clock::time_point now, std::chrono::milliseconds interval);

 private:
  using Key = std::tuple<Type, std::string, std::string, std::string>;  // type, listener, route, result
  std::map<Key, uint64_t> counts_;
  std::map<std::string, uint64_t> names_;
  std::map<std::string, uint64_t> xdp_drops_;
  std::map<std::string, uint64_t> modes_;
  uint64_t events_ = 0;
  uint64_t overflow_ = 0;
  uint64_t paused_ = 0;
  uint64_t resumed_ = 0;
  std::deque<std::string> recent_;
};

// The /24 (IPv4) or /64 (IPv6) holding an address, as a CIDR string.
std::string source_prefix(const IpAddress& address);

}  // namespace snisplice::events
