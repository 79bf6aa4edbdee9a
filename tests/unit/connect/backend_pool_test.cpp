#include "address_literal.h"
#include "flow/connect/backend_pool.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using snisplice::IpAddress;
using snisplice::SocketAddress;
using snisplice::config::Balance;
using snisplice::connect::BackendPool;
using snisplice::connect::PassiveHealth;
using snisplice::connect::TimePoint;

namespace {

const TimePoint kNow = TimePoint{} + 1000s;

std::vector<SocketAddress> servers(size_t count) {
  std::vector<SocketAddress> out;
  for (size_t i = 0; i < count; ++i) out.push_back(*SocketAddress::parse("127.0.0.1:" + std::to_string(9001 + i)));
  return out;
}

using snisplice::test::ip;

const IpAddress kClient = *IpAddress::parse("192.0.2.10");  // before any test: no REQUIRE here

size_t first(BackendPool& pool, const IpAddress& client = kClient, TimePoint now = kNow) {
  auto order = pool.candidates(client, now);
  REQUIRE_FALSE(order.empty());
  return order.front();
}

IpAddress v4_client(uint32_t n) {
  IpAddress out;
  out.bytes[0] = static_cast<uint8_t>(n >> 24);
  out.bytes[1] = static_cast<uint8_t>(n >> 16);
  out.bytes[2] = static_cast<uint8_t>(n >> 8);
  out.bytes[3] = static_cast<uint8_t>(n);
  return out;
}

}  // namespace

TEST_CASE("candidates: every server exactly once, none for an empty pool") {
  for (auto balance : {Balance::round_robin, Balance::least_conn, Balance::source_hash}) {
    BackendPool pool(servers(4), balance);
    auto order = pool.candidates(kClient, kNow);
    CHECK(std::set<size_t>(order.begin(), order.end()) == std::set<size_t>{0, 1, 2, 3});
    CHECK(order.size() == 4);
    BackendPool empty({}, balance);
    CHECK(empty.candidates(kClient, kNow).empty());
  }
}

TEST_CASE("round_robin: rotates, and failover continues the rotation") {
  BackendPool pool(servers(3), Balance::round_robin);
  CHECK(pool.candidates(kClient, kNow) == std::vector<size_t>{0, 1, 2});
  CHECK(pool.candidates(kClient, kNow) == std::vector<size_t>{1, 2, 0});
  CHECK(pool.candidates(kClient, kNow) == std::vector<size_t>{2, 0, 1});
  CHECK(pool.candidates(kClient, kNow) == std::vector<size_t>{0, 1, 2});
}

TEST_CASE("round_robin: servers that are down are skipped and the rest share evenly") {
  BackendPool pool(servers(3), Balance::round_robin);
  pool.set_health(1, false);
  std::map<size_t, int> count;
  for (int i = 0; i < 10; ++i) {
    auto order = pool.candidates(kClient, kNow);
    CHECK(order.size() == 2);
    CHECK(std::find(order.begin(), order.end(), 1u) == order.end());
    ++count[order.front()];
  }
  CHECK(count[0] == 5);
  CHECK(count[2] == 5);
}

TEST_CASE("all servers down: all are tried anyway, still rotating") {
  BackendPool pool(servers(3), Balance::round_robin);
  for (size_t i = 0; i < 3; ++i) pool.set_health(i, false);
  CHECK(pool.candidates(kClient, kNow) == std::vector<size_t>{0, 1, 2});
  CHECK(pool.candidates(kClient, kNow) == std::vector<size_t>{1, 2, 0});
  BackendPool hashed(servers(3), Balance::source_hash);
  auto before = hashed.candidates(kClient, kNow);
  for (size_t i = 0; i < 3; ++i) hashed.report_failure(i, kNow);
  CHECK(hashed.candidates(kClient, kNow) == before);
}

TEST_CASE("least_conn: fewest active connections first, failover by count") {
  BackendPool pool(servers(3), Balance::least_conn);
  pool.on_connect_start(0);
  pool.on_connect_start(0);
  pool.on_connect_start(1);
  CHECK(pool.candidates(kClient, kNow) == std::vector<size_t>{2, 1, 0});
  pool.on_connect_start(2);
  pool.on_connect_start(2);
  pool.on_connect_start(2);
  CHECK(first(pool) == 1);
  pool.on_connection_end(0);
  pool.on_connection_end(0);
  CHECK(first(pool) == 0);
  CHECK(pool.active(0) == 0);
  CHECK(pool.active(2) == 3);
}

TEST_CASE("least_conn: ties rotate") {
  BackendPool pool(servers(3), Balance::least_conn);
  CHECK(first(pool) == 0);
  CHECK(first(pool) == 1);
  CHECK(first(pool) == 2);
  CHECK(first(pool) == 0);
}

TEST_CASE("least_conn: skips servers that are down, however idle") {
  BackendPool pool(servers(2), Balance::least_conn);
  pool.on_connect_start(0);
  pool.report_failure(1, kNow);
  CHECK(pool.candidates(kClient, kNow) == std::vector<size_t>{0});
}

TEST_CASE("least_conn: ending more connections than started never underflows") {
  BackendPool pool(servers(2), Balance::least_conn);
  pool.on_connection_end(0);
  CHECK(pool.active(0) == 0);
  pool.on_connect_start(7);  // out of range: ignored
  pool.on_connection_end(7);
  CHECK(pool.active(1) == 0);
}

TEST_CASE("source_hash: the same client always gets the same order") {
  BackendPool pool(servers(5), Balance::source_hash);
  auto order = pool.candidates(kClient, kNow);
  for (int i = 0; i < 5; ++i) CHECK(pool.candidates(kClient, kNow) == order);
  // The same choice in another worker's pool: the hash is fixed, not per process.
  BackendPool other(servers(5), Balance::source_hash);
  CHECK(other.candidates(kClient, kNow) == order);
}

TEST_CASE("source_hash: follows the server address, not its position in the list") {
  auto list = servers(5);
  BackendPool pool(list, Balance::source_hash);
  std::reverse(list.begin(), list.end());
  BackendPool reversed(list, Balance::source_hash);
  for (uint32_t n = 0; n < 50; ++n) {
    auto client = v4_client(0xC6336400 + n * 977);
    CHECK(pool.server(first(pool, client)) == reversed.server(first(reversed, client)));
  }
}

TEST_CASE("source_hash: IPv6 clients are keyed by their /64, mapped IPv4 as IPv4") {
  BackendPool pool(servers(8), Balance::source_hash);
  auto a = pool.candidates(ip("2001:db8:1:2::1"), kNow);
  CHECK(pool.candidates(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), kNow) == a);
  bool differs = false;
  for (int i = 0; i < 20 && !differs; ++i)
    differs = pool.candidates(ip("2001:db8:1:" + std::to_string(100 + i) + "::1"), kNow) != a;
  CHECK(differs);
  CHECK(pool.candidates(ip("::ffff:192.0.2.10"), kNow) == pool.candidates(kClient, kNow));
}

TEST_CASE("source_hash: clients spread over all servers") {
  BackendPool pool(servers(4), Balance::source_hash);
  std::map<size_t, int> count;
  for (uint32_t n = 0; n < 4000; ++n) ++count[first(pool, v4_client(0x0A000000 + n * 7919))];
  for (size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(count[i] > 800);
    CHECK(count[i] < 1200);
  }
}

TEST_CASE("source_hash: when a server goes down only its clients move, to their next choice") {
  BackendPool pool(servers(4), Balance::source_hash);
  std::vector<std::vector<size_t>> before;
  for (uint32_t n = 0; n < 500; ++n) before.push_back(pool.candidates(v4_client(0x0A000000 + n * 104729), kNow));
  pool.set_health(2, false);
  for (uint32_t n = 0; n < 500; ++n) {
    auto after = pool.candidates(v4_client(0x0A000000 + n * 104729), kNow);
    CAPTURE(n);
    CHECK(after.front() == (before[n].front() == 2 ? before[n][1] : before[n].front()));
  }
  pool.set_health(2, true);
  for (uint32_t n = 0; n < 500; ++n) CHECK(pool.candidates(v4_client(0x0A000000 + n * 104729), kNow) == before[n]);
}

TEST_CASE("health: a failed probe removes a server until a probe succeeds") {
  BackendPool pool(servers(2), Balance::round_robin);
  pool.set_health(0, false);
  CHECK_FALSE(pool.is_up(0, kNow));
  CHECK_FALSE(pool.is_up(0, kNow + 1h));
  CHECK(pool.candidates(kClient, kNow) == std::vector<size_t>{1});
  pool.set_health(0, true);
  CHECK(pool.is_up(0, kNow));
}

TEST_CASE("passive: one failure (the default) takes a server out for 10 s") {
  BackendPool pool(servers(2), Balance::round_robin);
  pool.report_failure(0, kNow);
  CHECK_FALSE(pool.is_up(0, kNow));
  CHECK_FALSE(pool.is_up(0, kNow + 9999ms));
  CHECK(pool.is_up(0, kNow + 10s));
  CHECK(pool.candidates(kClient, kNow + 5s) == std::vector<size_t>{1});
  CHECK(pool.candidates(kClient, kNow + 10s).size() == 2);
}

TEST_CASE("passive: max_fails counts consecutive failures; a success resets the count") {
  BackendPool pool(servers(2), Balance::round_robin, PassiveHealth{3, 30s});
  pool.report_failure(0, kNow);
  pool.report_failure(0, kNow);
  pool.report_success(0);
  pool.report_failure(0, kNow);
  pool.report_failure(0, kNow);
  CHECK(pool.is_up(0, kNow));
  pool.report_failure(0, kNow + 1s);
  CHECK_FALSE(pool.is_up(0, kNow + 1s));
  CHECK_FALSE(pool.is_up(0, kNow + 30s));
  CHECK(pool.is_up(0, kNow + 31s));
  // After the window the count starts afresh.
  pool.report_failure(0, kNow + 31s);
  CHECK(pool.is_up(0, kNow + 31s));
}

TEST_CASE("passive: a success ends the fail window at once") {
  BackendPool pool(servers(2), Balance::round_robin);
  pool.report_failure(1, kNow);
  pool.report_success(1);
  CHECK(pool.is_up(1, kNow));
}

TEST_CASE("passive: a successful probe clears passive failures") {
  BackendPool pool(servers(2), Balance::round_robin);
  pool.report_failure(1, kNow);
  pool.set_health(1, true);
  CHECK(pool.is_up(1, kNow));
}

TEST_CASE("passive: max_fails 0 disables passive marking") {
  BackendPool pool(servers(2), Balance::round_robin, PassiveHealth{0, 10s});
  for (int i = 0; i < 10; ++i) pool.report_failure(0, kNow);
  CHECK(pool.is_up(0, kNow));
}

TEST_CASE("out-of-range indices are ignored") {
  BackendPool pool(servers(1), Balance::round_robin);
  pool.set_health(5, false);
  pool.report_failure(5, kNow);
  pool.report_success(5);
  CHECK(pool.candidates(kClient, kNow) == std::vector<size_t>{0});
}
