#include <doctest/doctest.h>

#include <prometheus/registry.h>

#include <atomic>
#include <thread>
#include <vector>

#include "events/bus.h"

using namespace snisplice;
using namespace snisplice::events;
using namespace std::chrono_literals;

namespace {

struct Counters {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& dropped =
      prometheus::BuildCounter().Name("dropped").Register(registry);
  prometheus::Counter& ring_full = dropped.Add({{"reason", "ring_full"}});
  prometheus::Counter& slow_subscriber = dropped.Add({{"reason", "slow_subscriber"}});
  prometheus::Gauge& subscribers = prometheus::BuildGauge().Name("subscribers").Register(registry).Add({});
  BusCounters bus() { return {ring_full, slow_subscriber, subscribers}; }
};

Filter filter(std::string_view query) { return *Filter::parse(query); }
Payload reload(int n) { return Reload{std::to_string(n)}; }

// Reads until `count` lines arrived or the subscription stops being open.
std::vector<std::string> read(Subscription& subscription, size_t count, std::chrono::milliseconds patience = 5s) {
  std::vector<std::string> lines;
  auto give_up = std::chrono::steady_clock::now() + patience;
  while (lines.size() < count && std::chrono::steady_clock::now() < give_up) {
    auto batch = subscription.wait(100ms);
    for (auto& line : batch.lines) lines.push_back(*line);
    if (batch.state != Subscription::State::open) break;
  }
  return lines;
}

}  // namespace

TEST_CASE("nobody listening: publishing is a no-op, nothing counted") {
  Counters counters;
  EventBus bus(counters.bus(), 4);
  CHECK_FALSE(bus.listening());
  for (int i = 0; i < 100; ++i) bus.publish(reload(i));
  CHECK(counters.ring_full.Value() == 0);
  bool built = false;
  bus.emit([&] {
    built = true;
    return Reload{"ok"};
  });
  CHECK_FALSE(built);
}

TEST_CASE("the queue's memory is taken by the first subscription, not before, and kept") {
  Counters counters;
  EventBus bus(counters.bus());
  CHECK(bus.ring_capacity() == 0);
  auto subscription = bus.subscribe(filter(""));
  REQUIRE(subscription);
  CHECK(bus.ring_capacity() == EventBus::kRingCapacity);
  bus.unsubscribe(subscription);
  CHECK(bus.ring_capacity() == EventBus::kRingCapacity);
  auto again = bus.subscribe(filter(""));
  REQUIRE(again);
  bus.publish(reload(7));
  auto lines = read(*again, 1);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("\"7\"") != std::string::npos);
}

TEST_CASE("subscribers get the events their filter matches, in order, encoded") {
  Counters counters;
  EventBus bus(counters.bus());
  auto all = bus.subscribe(filter(""));
  auto closed = bus.subscribe(filter("type=closed"));
  REQUIRE(all);
  REQUIRE(closed);
  CHECK(bus.listening());
  CHECK(counters.subscribers.Value() == 2);
  for (int i = 0; i < 5; ++i) bus.publish(reload(i));
  bus.publish(Closed{"tls", *SocketAddress::parse("192.0.2.1:1"), "", "", "", "", 0, 0, {}, "proxied"});
  auto lines = read(*all, 6);
  REQUIRE(lines.size() == 6);
  for (int i = 0; i < 5; ++i) CHECK(lines[i].find("\"result\":\"" + std::to_string(i) + "\"") != std::string::npos);
  auto only = read(*closed, 1);
  REQUIRE(only.size() == 1);
  CHECK(only[0].starts_with(R"({"type":"closed")"));
  bus.unsubscribe(all);
  bus.unsubscribe(closed);
  CHECK(counters.subscribers.Value() == 0);
  CHECK_FALSE(bus.listening());
}

TEST_CASE("the subscriber limit, changed at run time") {
  Counters counters;
  EventBus bus(counters.bus());
  bus.set_max_subscribers(1);
  auto first = bus.subscribe(filter(""));
  CHECK(first);
  CHECK_FALSE(bus.subscribe(filter("")));
  bus.set_max_subscribers(2);
  CHECK(bus.subscribe(filter("")));
  bus.unsubscribe(first);
}

TEST_CASE("a subscriber that stops reading is cut off and its losses counted - the others go on") {
  Counters counters;
  EventBus bus(counters.bus(), 1024, 64);
  auto stalled = bus.subscribe(filter(""));
  auto reader = bus.subscribe(filter(""));
  std::atomic<bool> stop{false};
  std::atomic<size_t> read_count{0};
  std::thread reading([&] {
    while (!stop.load()) read_count += reader->wait(10ms).lines.size();
  });
  // Published slowly enough (about 10 per pass of the hub) that neither the ring nor the
  // reader's queue fills: only the stalled subscriber loses.
  for (int i = 0; i < 200; ++i) {
    bus.publish(reload(i));
    std::this_thread::sleep_for(1ms);
  }
  auto batch = stalled->wait(5s);
  CHECK(batch.state == Subscription::State::cut_off);
  CHECK(batch.lines.empty());
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (read_count.load() < 200 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  stop.store(true);
  reading.join();
  CHECK(read_count.load() == 200);
  CHECK(counters.slow_subscriber.Value() >= 65);  // the full queue and the event that did not fit
  CHECK(counters.ring_full.Value() == 0);
  bus.unsubscribe(stalled);
  bus.unsubscribe(reader);
}

TEST_CASE("publishers on many threads never wait: a full ring drops and counts") {
  Counters counters;
  EventBus bus(counters.bus(), 64, 1 << 20);
  auto subscription = bus.subscribe(filter(""));
  constexpr int kThreads = 4;
  constexpr int kEach = 20'000;
  std::vector<std::thread> publishers;
  auto started = std::chrono::steady_clock::now();
  for (int t = 0; t < kThreads; ++t)
    publishers.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) bus.publish(reload(i));
    });
  for (auto& t : publishers) t.join();
  auto took = std::chrono::steady_clock::now() - started;
  CHECK(took < 5s);  // nobody waited on the 10 ms hub
  size_t received = 0;
  while (true) {
    auto batch = subscription->wait(200ms);
    if (batch.lines.empty()) break;
    received += batch.lines.size();
  }
  CHECK(received + static_cast<size_t>(counters.ring_full.Value()) == kThreads * kEach);
  CHECK(counters.ring_full.Value() > 0);
  bus.unsubscribe(subscription);
}

TEST_CASE("a summarising subscription gets one summary per interval") {
  Counters counters;
  EventBus bus(counters.bus());
  auto subscription = bus.subscribe(filter("aggregate=100&type=reload"));
  for (int i = 0; i < 10; ++i) bus.publish(reload(1));
  bus.publish(DnsLookup{"a", "resolved", false});
  std::this_thread::sleep_for(50ms);  // the hub's pass
  auto summary = subscription->summary_at(std::chrono::steady_clock::now() + 100ms, {});
  REQUIRE(summary);
  CHECK(summary->find(R"("events":10,)") != std::string::npos);
  bus.close_all();
  CHECK_FALSE(subscription->summary_at(std::chrono::steady_clock::now() + 1s, {}));
  bus.unsubscribe(subscription);
}

TEST_CASE("close_all ends every subscription and refuses new ones") {
  Counters counters;
  EventBus bus(counters.bus());
  auto subscription = bus.subscribe(filter(""));
  bus.close_all();
  CHECK(subscription->wait(1s).state == Subscription::State::closed);
  CHECK_FALSE(bus.subscribe(filter("")));
  bus.unsubscribe(subscription);
}
