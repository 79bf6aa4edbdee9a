#pragma once
// A bounded multi-producer, single-consumer queue: each cell carries a sequence number that
// says whose turn it is (the producer that claimed its position, or the consumer once the
// value is in). A producer claims a position with one compare-and-swap and never waits: when
// the queue is full, try_push fails and the caller counts the drop.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

namespace snisplice::events {

template <class T>
class MpscRing {
 public:
  // capacity is rounded up to a power of two.
  explicit MpscRing(size_t capacity) : mask_(round_up(capacity) - 1), cells_(new Cell[mask_ + 1]) {
    for (size_t i = 0; i <= mask_; ++i) cells_[i].sequence.store(i, std::memory_order_relaxed);
  }
  MpscRing(const MpscRing&) = delete;
  MpscRing& operator=(const MpscRing&) = delete;

  size_t capacity() const { return mask_ + 1; }

  // Any thread. False (and `value` untouched) when the ring is full.
  bool try_push(T&& value) {
    size_t position = tail_.load(std::memory_order_relaxed);
    while (true) {
      Cell& cell = cells_[position & mask_];
      size_t sequence = cell.sequence.load(std::memory_order_acquire);
      auto lag = static_cast<std::ptrdiff_t>(sequence) - static_cast<std::ptrdiff_t>(position);
      if (lag == 0) {
        if (tail_.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
          cell.value.emplace(std::move(value));
          cell.sequence.store(position + 1, std::memory_order_release);
          return true;
        }
      } else if (lag < 0) {
        return false;  // the consumer has not freed this cell yet: full
      } else {
        position = tail_.load(std::memory_order_relaxed);  // another producer took it
      }
    }
  }

  // The consumer thread only. nullopt when empty (or the next value is still being written).
  std::optional<T> try_pop() {
    Cell& cell = cells_[head_ & mask_];
    if (cell.sequence.load(std::memory_order_acquire) != head_ + 1) return std::nullopt;
    std::optional<T> out(std::move(cell.value));
    cell.value.reset();
    cell.sequence.store(head_ + mask_ + 1, std::memory_order_release);
    ++head_;
    return out;
  }

 private:
  static size_t round_up(size_t n) {
    size_t size = 2;
    while (size < n) size <<= 1;
    return size;
  }
  struct Cell {
    std::atomic<size_t> sequence;
    std::optional<T> value;
  };
  // Producers share tail_; the consumer alone moves head_: a cache line each (64 bytes on
  // x86-64 and arm64; the standard's constant warns under g++ when used in a header).
  static constexpr size_t kCacheLine = 64;
  const size_t mask_;
  std::unique_ptr<Cell[]> cells_;
  alignas(kCacheLine) std::atomic<size_t> tail_{0};
  alignas(kCacheLine) size_t head_ = 0;
};

}  // namespace snisplice::events
