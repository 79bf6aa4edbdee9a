// Route lookup cost at a small and a large table: it must not grow with the number of exact and
// suffix routes. Prints nanoseconds per lookup; "--brief" runs few iterations (the ctest entry).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "flow/route/route_table.h"

namespace {

using snisplice::route::Entry;
using snisplice::route::RouteTable;

// Half exact names, half "*." suffixes, plus one regex and a default, like a real edge table.
std::vector<Entry> make_entries(size_t routes) {
  std::vector<Entry> entries;
  entries.reserve(routes + 2);
  for (size_t i = 0; i < routes; ++i) {
    std::string name = "svc" + std::to_string(i) + ".tenant" + std::to_string(i % 97) + ".example.com";
    entries.push_back({i % 2 == 0 ? name : "*." + name, {}, static_cast<uint32_t>(i)});
  }
  entries.push_back({"~shop[0-9]+\\.example\\.net", {}, 1000000});
  entries.push_back({"*", {}, 1000001});
  return entries;
}

std::vector<std::string> make_hosts(size_t routes) {
  std::vector<std::string> hosts;
  for (size_t i = 0; i < 64; ++i) {
    size_t n = (i * 7919) % routes;
    std::string name = "svc" + std::to_string(n) + ".tenant" + std::to_string(n % 97) + ".example.com";
    hosts.push_back(n % 2 == 0 ? name : "www." + name);  // exact hits and suffix hits
  }
  hosts.push_back("nothing.example.org");  // falls through to the default
  return hosts;
}

int run(size_t routes, size_t iterations) {
  auto table = RouteTable::build(make_entries(routes));
  if (!table) {
    std::fprintf(stderr, "build failed: %s\n", table.error().c_str());
    return 1;
  }
  auto hosts = make_hosts(routes);
  std::vector<std::string> alpn{"h2", "http/1.1"};
  uint64_t checksum = 0;
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < iterations; ++i) checksum += table->match(hosts[i % hosts.size()], alpn).value_or(0);
  auto elapsed = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start);
  std::printf("routes=%zu lookups=%zu ns_per_lookup=%.1f (checksum %llu)\n", routes, iterations,
              elapsed.count() / static_cast<double>(iterations), static_cast<unsigned long long>(checksum));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool brief = argc > 1 && std::strcmp(argv[1], "--brief") == 0;
  size_t iterations = brief ? 10000 : 2000000;
  if (run(10, iterations) != 0) return 1;
  return run(100000, iterations);
}
