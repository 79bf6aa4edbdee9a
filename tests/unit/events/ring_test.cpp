#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "events/ring.h"

using snisplice::events::MpscRing;

TEST_CASE("MpscRing: FIFO, bounded, reusable") {
  MpscRing<int> ring(3);
  CHECK(ring.capacity() == 4);
  for (int i = 0; i < 4; ++i) CHECK(ring.try_push(int{i}));
  int extra = 99;
  CHECK_FALSE(ring.try_push(std::move(extra)));
  for (int i = 0; i < 4; ++i) CHECK(ring.try_pop() == i);
  CHECK_FALSE(ring.try_pop().has_value());
  for (int round = 0; round < 10; ++round) {  // wraps around many times
    CHECK(ring.try_push(int{round}));
    CHECK(ring.try_pop() == round);
  }
}

TEST_CASE("MpscRing: producers on several threads - each one's values arrive in its order, none twice") {
  constexpr int kProducers = 4;
  constexpr int kEach = 50'000;
  MpscRing<std::pair<int, int>> ring(1024);
  std::atomic<int> rejected{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; i < kEach; ++i)
        if (!ring.try_push({p, i})) rejected.fetch_add(1);
    });
  std::vector<int> last(kProducers, -1);
  int received = 0;
  bool in_order = true;
  auto consume = [&] {
    while (auto value = ring.try_pop()) {
      auto [p, i] = *value;
      if (i <= last[p]) in_order = false;
      last[p] = i;
      ++received;
    }
  };
  std::atomic<bool> done{false};
  std::thread finisher([&] {
    for (auto& t : producers) t.join();
    done.store(true);
  });
  while (!done.load()) consume();
  consume();
  finisher.join();
  CHECK(in_order);
  CHECK(received + rejected.load() == kProducers * kEach);
  CHECK(received > 0);
}
