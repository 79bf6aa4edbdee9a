#pragma once
// The repeated stretches of one direction's held stream: the kernel can hand a held skb to the
// verdict twice, and the verdict records where the repeated head of the second copy sits
// (ebpf/include/splice_abi.h, struct splice_repeat). relay_held learns them from the counters
// and cuts them out of what it reads. No I/O: values in, values out.
#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace snisplice::bpf {

// One recorded repeat, as the counters carry it.
struct RepeatRecord {
  uint64_t at = 0;      // held-stream offset of its first byte
  uint32_t len = 0;     // bytes repeated
  uint32_t number = 0;  // which repeat it is, from 1 (0: slot never written)
};
inline constexpr size_t kRepeatSlots = 4;  // SPLICE_REPEAT_SLOTS
using RepeatSlots = std::array<RepeatRecord, kRepeatSlots>;

class HeldRepeats {
 public:
  // Takes the repeats numbered past the last one learnt, from a reading that counted `repeats`
  // of them. False when one of them was overwritten before it was read (more than kRepeatSlots
  // arrived between two readings): its bytes cannot be placed.
  bool learn(uint32_t repeats, const RepeatSlots& slots);
  // `bytes` are held-stream bytes from offset `start`, read in order. Returns them without the
  // repeated ones learnt so far; the result points into `bytes` or, when a stretch in the
  // middle was cut, into `scratch`.
  std::string_view cut(uint64_t start, std::string_view bytes, std::string& scratch);
  // Whether a learnt repeat is not yet read past.
  bool pending() const { return !pending_.empty(); }

 private:
  struct Stretch {
    uint64_t at;
    uint64_t len;
  };
  uint32_t learnt_ = 0;           // repeats learnt so far
  std::deque<Stretch> pending_;   // learnt, not yet read past; in stream order
};

}  // namespace snisplice::bpf
