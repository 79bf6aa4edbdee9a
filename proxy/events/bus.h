#pragma once
// Workers publish events into one bounded lock-free ring and never wait: with nobody
// subscribed, publishing is one atomic load; with the ring full, the event is dropped and
// counted (ring_full). One hub thread drains the ring, encodes each event once, and hands it
// to every subscription whose filter matches. Each subscription has its own bounded queue;
// one that fills (its reader is too slow, or gone) is cut off and what it missed counted
// (slow_subscriber). Subscriptions asking for summaries aggregate instead of queueing.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "events/aggregate.h"
#include "events/event.h"
#include "events/filter.h"
#include "events/ring.h"

namespace snisplice::events {

using Line = std::shared_ptr<const std::string>;  // one event's JSON, shared by its subscribers

class Subscription {
 public:
  enum class State { open, cut_off, closed };
  Subscription(Filter filter, size_t capacity) : filter_(std::move(filter)), capacity_(capacity) {
    if (filter_.aggregate_ms) aggregator_.emplace();
  }
  const Filter& filter() const { return filter_; }

  struct Batch {
    std::vector<Line> lines;  // whole events, in the order they were published
    State state = State::open;
  };
  // Waits up to `timeout` for events (or a change of state) and takes what is queued.
  Batch wait(std::chrono::milliseconds timeout);
  // For a summarising subscription: waits until `until` (or a change of state) and returns the
  // summary of what arrived since the last one; nullopt once it is no longer open.
  std::optional<std::string> summary_at(std::chrono::steady_clock::time_point until,
                                        std::chrono::system_clock::time_point now);

  // The hub's side. How many events this subscription lost by being cut off (0 if none).
  uint64_t deliver(const Event& event, const Line& line);
  void close();

 private:
  const Filter filter_;
  const size_t capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Line> queue_;
  std::optional<Aggregator> aggregator_;
  State state_ = State::open;
};

struct BusCounters {
  prometheus::Counter& ring_full;
  prometheus::Counter& slow_subscriber;
  prometheus::Gauge& subscribers;
};

class EventBus {
 public:
  static constexpr size_t kRingCapacity = 65536;   // ~6 s at 10,000 events per second
  // Events waiting for one subscriber's socket, beyond what its kernel buffer holds (up to
  // tcp_wmem's 4 MiB, some 15,000 events): a reader further behind is too slow for the full
  // stream, and summaries (aggregate=) are what it can follow.
  static constexpr size_t kSubscriberQueue = 4096;

  explicit EventBus(BusCounters counters, size_t ring_capacity = kRingCapacity,
                    size_t subscriber_queue = kSubscriberQueue);
  ~EventBus();
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  // Any thread, never blocks.
  bool listening() const { return subscribers_.load(std::memory_order_acquire) > 0; }
  void publish(Payload what);
  // Builds the event only when someone listens: `make` returns a Payload (or one of its types).
  template <class Make>
  void emit(Make&& make) {
    if (listening()) publish(make());
  }

  // Cells of the queue between producers and the hub: 0 until the first subscription.
  size_t ring_capacity() const;
  // nullptr when max_subscribers are already subscribed.
  std::shared_ptr<Subscription> subscribe(Filter filter);
  void unsubscribe(const std::shared_ptr<Subscription>& subscription);
  void set_max_subscribers(uint32_t limit);
  // Closes every subscription (their readers see State::closed) and refuses new ones.
  void close_all();

 private:
  void run();
  // Hands out what the ring holds to `to`; false when the ring was empty.
  bool drain(const std::vector<std::shared_ptr<Subscription>>& to);

  BusCounters counters_;
  const size_t subscriber_queue_;
  const size_t ring_capacity_;
  // Made by the first subscription and kept: its cells (about 270 bytes each, 17 MiB at the
  // default capacity) are written when made, memory a proxy nobody watches should not carry.
  // Set before the subscriber count is raised, so a producer that sees a listener sees it.
  std::unique_ptr<MpscRing<Event>> ring_owner_;  // under mutex_
  std::atomic<MpscRing<Event>*> ring_{nullptr};
  std::atomic<uint32_t> subscribers_{0};

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::shared_ptr<Subscription>> subscriptions_;
  uint32_t max_subscribers_ = 16;
  bool closed_ = false;
  bool stopping_ = false;
  std::thread hub_;  // last: starts once everything above exists
};

}  // namespace snisplice::events
