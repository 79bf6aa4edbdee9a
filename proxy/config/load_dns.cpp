#include "config/duration.h"
#include "config/load_sections.h"
#include "config/load_values.h"

namespace snisplice::config::detail {
namespace {

using namespace std::string_view_literals;

constexpr std::string_view kDnsKeys[] = {"servers"sv, "timeout"sv,      "tries"sv,     "min_ttl"sv,
                                         "max_ttl"sv, "negative_ttl"sv, "cache_size"sv};

}  // namespace

void read_dns(Problems& p, const YAML::Node& node, Dns& dns) {
  MapReader map(p, node, "dns", kDnsKeys);
  read_key(p, map, "servers", dns.servers, &read_destinations);
  read_key(p, map, "timeout", dns.timeout, &read_positive_duration);
  read_key(p, map, "tries", dns.tries, &read_integer<1, 100>);
  // Zero TTL floor, ceiling or negative TTL are meaningful: do not cache.
  read_key(p, map, "min_ttl", dns.min_ttl, &read_duration);
  read_key(p, map, "max_ttl", dns.max_ttl, &read_duration);
  read_key(p, map, "negative_ttl", dns.negative_ttl, &read_duration);
  read_key(p, map, "cache_size", dns.cache_size, &read_integer<1, UINT32_MAX>);
  if (dns.min_ttl > dns.max_ttl) {
    auto where = map.find("min_ttl");
    p.add(where ? line_of(*where) : map.key_line("max_ttl"), "dns.min_ttl",
          "min_ttl (" + format_duration(dns.min_ttl) + ") is greater than max_ttl (" +
              format_duration(dns.max_ttl) + ")");
  }
}

}  // namespace snisplice::config::detail
