#include "events/bus.h"

#include <algorithm>

namespace snisplice::events {
namespace {

// How long the hub sleeps when the ring is empty: producers never signal it (a wake-up per
// event would cost them a syscall), so events reach subscribers within this much.
constexpr auto kHubIdle = std::chrono::milliseconds(10);
// Events handed out per pass before the hub looks at the subscription list again.
constexpr size_t kDrainBatch = 4096;

}  // namespace

Subscription::Batch Subscription::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [this] { return !queue_.empty() || state_ != State::open; });
  Batch batch;
  batch.state = state_;
  batch.lines.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  return batch;
}

std::optional<std::string> Subscription::summary_at(std::chrono::steady_clock::time_point until,
                                                    std::chrono::system_clock::time_point now) {
  std::unique_lock lock(mutex_);
  changed_.wait_until(lock, until, [this] { return state_ != State::open; });
  if (state_ != State::open || !aggregator_) return std::nullopt;
  return aggregator_->summary(now, std::chrono::milliseconds(*filter_.aggregate_ms));
}

uint64_t Subscription::deliver(const Event& event, const Line& line) {
  std::lock_guard lock(mutex_);
  if (state_ != State::open) return 0;
  if (aggregator_) {
    aggregator_->add(event, *line);
    return 0;
  }
  if (queue_.size() < capacity_) {
    queue_.push_back(line);
    if (queue_.size() == 1) changed_.notify_one();
    return 0;
  }
  // Its reader fell a whole queue behind: it would only ever see a gap-riddled stream.
  uint64_t lost = queue_.size() + 1;
  queue_.clear();
  state_ = State::cut_off;
  changed_.notify_all();
  return lost;
}

void Subscription::close() {
  std::lock_guard lock(mutex_);
  if (state_ == State::open) state_ = State::closed;
  changed_.notify_all();
}

EventBus::EventBus(BusCounters counters, size_t ring_capacity, size_t subscriber_queue)
    : counters_(counters),
      subscriber_queue_(subscriber_queue),
      ring_capacity_(ring_capacity),
      hub_([this] { run(); }) {}

EventBus::~EventBus() {
  close_all();
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  hub_.join();
}

void EventBus::publish(Payload what) {
  if (!listening()) return;
  MpscRing<Event>* ring = ring_.load(std::memory_order_acquire);
  if (!ring->try_push(Event{std::chrono::system_clock::now(), std::move(what)})) counters_.ring_full.Increment();
}

size_t EventBus::ring_capacity() const {
  const MpscRing<Event>* ring = ring_.load(std::memory_order_acquire);
  return ring != nullptr ? ring->capacity() : 0;
}

std::shared_ptr<Subscription> EventBus::subscribe(Filter filter) {
  std::lock_guard lock(mutex_);
  if (closed_ || subscriptions_.size() >= max_subscribers_) return nullptr;
  if (!ring_owner_) {
    ring_owner_ = std::make_unique<MpscRing<Event>>(ring_capacity_);
    ring_.store(ring_owner_.get(), std::memory_order_release);
  }
  auto subscription = std::make_shared<Subscription>(std::move(filter), subscriber_queue_);
  subscriptions_.push_back(subscription);
  subscribers_.store(static_cast<uint32_t>(subscriptions_.size()), std::memory_order_release);
  counters_.subscribers.Set(static_cast<double>(subscriptions_.size()));
  wake_.notify_all();
  return subscription;
}

void EventBus::unsubscribe(const std::shared_ptr<Subscription>& subscription) {
  subscription->close();
  std::lock_guard lock(mutex_);
  std::erase(subscriptions_, subscription);
  subscribers_.store(static_cast<uint32_t>(subscriptions_.size()), std::memory_order_relaxed);
  counters_.subscribers.Set(static_cast<double>(subscriptions_.size()));
}

void EventBus::set_max_subscribers(uint32_t limit) {
  std::lock_guard lock(mutex_);
  max_subscribers_ = limit;
}

void EventBus::close_all() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  for (auto& subscription : subscriptions_) subscription->close();
}

void EventBus::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (subscriptions_.empty()) {
      // Nobody listens and nobody publishes: whatever is left is stale for the next subscriber.
      MpscRing<Event>* ring = ring_owner_.get();
      lock.unlock();
      if (ring != nullptr) {
        while (ring->try_pop()) {
        }
      }
      lock.lock();
      wake_.wait(lock, [this] { return stopping_ || !subscriptions_.empty(); });
      continue;
    }
    auto to = subscriptions_;
    lock.unlock();
    bool busy = drain(to);
    lock.lock();
    if (!busy) wake_.wait_for(lock, kHubIdle, [this] { return stopping_; });
  }
}

bool EventBus::drain(const std::vector<std::shared_ptr<Subscription>>& to) {
  // Subscriptions exist, so the first of them made the ring.
  MpscRing<Event>* ring = ring_.load(std::memory_order_acquire);
  size_t handed = 0;
  uint64_t lost = 0;
  for (; handed < kDrainBatch; ++handed) {
    auto event = ring->try_pop();
    if (!event) break;
    Line line;
    for (const auto& subscription : to) {
      if (!subscription->filter().matches(event->what)) continue;
      if (!line) line = std::make_shared<const std::string>(to_json(*event));
      lost += subscription->deliver(*event, line);
    }
  }
  if (lost) counters_.slow_subscriber.Increment(static_cast<double>(lost));
  return handed > 0;
}

}  // namespace snisplice::events
