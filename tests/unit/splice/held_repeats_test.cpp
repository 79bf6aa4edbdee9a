#include "bpf/held_repeats.h"

#include <doctest/doctest.h>

#include <string>

using namespace snisplice::bpf;

namespace {

// Slots as the verdict leaves them after recording `records` (numbered from 1) in order.
RepeatSlots slots_after(std::initializer_list<RepeatRecord> records) {
  RepeatSlots slots{};
  for (const RepeatRecord& record : records) slots[(record.number - 1) % kRepeatSlots] = record;
  return slots;
}

// Reads `stream` in chunks of `chunk` bytes through `repeats`, as relay_held does.
std::string read_through(HeldRepeats& repeats, std::string_view stream, size_t chunk) {
  std::string out;
  std::string scratch;
  for (size_t at = 0; at < stream.size(); at += chunk) {
    out += repeats.cut(at, stream.substr(at, chunk), scratch);
  }
  return out;
}

}  // namespace

TEST_CASE("no repeat: bytes pass untouched, without a copy") {
  HeldRepeats repeats;
  std::string scratch;
  const std::string_view bytes = "abcdef";
  CHECK(repeats.learn(0, RepeatSlots{}));
  const std::string_view kept = repeats.cut(0, bytes, scratch);
  CHECK(kept == "abcdef");
  CHECK(kept.data() == bytes.data());
  CHECK_FALSE(repeats.pending());
}

TEST_CASE("a repeated stretch is dropped wherever the reads split it") {
  // Held stream: "0123" then "45" repeated (its first copy was "45" at 4..5), then "6789".
  const std::string_view stream = "0123454567 89";
  const std::string expected = "012345" "67 89";
  for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    CAPTURE(chunk);
    HeldRepeats repeats;
    REQUIRE(repeats.learn(1, slots_after({{.at = 6, .len = 2, .number = 1}})));
    CHECK(read_through(repeats, stream, chunk) == expected);
    CHECK_FALSE(repeats.pending());
  }
}

TEST_CASE("several repeats learnt in one reading are dropped in order") {
  // Repeats at 2 (1 byte), 5 (2 bytes) and 9 (3 bytes).
  const std::string_view stream = "ab" "X" "cd" "YY" "ef" "ZZZ" "g";
  HeldRepeats repeats;
  REQUIRE(repeats.learn(3, slots_after({{.at = 2, .len = 1, .number = 1},
                                        {.at = 5, .len = 2, .number = 2},
                                        {.at = 9, .len = 3, .number = 3}})));
  CHECK(read_through(repeats, stream, 4) == "abcdefg");
}

TEST_CASE("repeats learnt one reading at a time keep their places") {
  const std::string_view stream = "ab" "X" "cd" "YY" "ef";
  HeldRepeats repeats;
  std::string scratch;
  REQUIRE(repeats.learn(1, slots_after({{.at = 2, .len = 1, .number = 1}})));
  std::string out(repeats.cut(0, stream.substr(0, 4), scratch));
  CHECK(repeats.learn(1, slots_after({{.at = 2, .len = 1, .number = 1}})));  // no news
  REQUIRE(repeats.learn(2, slots_after({{.at = 2, .len = 1, .number = 1}, {.at = 5, .len = 2, .number = 2}})));
  out += repeats.cut(4, stream.substr(4), scratch);
  CHECK(out == "abcdef");
}

TEST_CASE("all slots turned over between two readings: the repeats are known") {
  HeldRepeats repeats;
  RepeatSlots slots{};
  for (uint32_t number = 1; number <= kRepeatSlots; ++number) {
    slots[number - 1] = {.at = number * 10, .len = 1, .number = number};
  }
  CHECK(repeats.learn(kRepeatSlots, slots));
  CHECK(repeats.pending());
}

TEST_CASE("a repeat overwritten before it was read cannot be placed") {
  HeldRepeats repeats;
  RepeatSlots slots{};
  // Repeats 2 to 5 are in the slots; repeat 1's slot now holds repeat 5.
  for (uint32_t number = 2; number <= kRepeatSlots + 1; ++number) {
    slots[(number - 1) % kRepeatSlots] = {.at = number * 10, .len = 1, .number = number};
  }
  CHECK_FALSE(repeats.learn(kRepeatSlots + 1, slots));
}

TEST_CASE("a slot rewritten during the copy shows the wrong number and is refused") {
  HeldRepeats repeats;
  // The count says 1, but the slot already carries repeat 5's number.
  CHECK_FALSE(repeats.learn(1, slots_after({{.at = 40, .len = 1, .number = 5}})));
}

TEST_CASE("repeats out of stream order are refused") {
  HeldRepeats repeats;
  CHECK_FALSE(repeats.learn(2, slots_after({{.at = 10, .len = 4, .number = 1}, {.at = 12, .len = 1, .number = 2}})));
}
