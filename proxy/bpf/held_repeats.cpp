#include "bpf/held_repeats.h"

#include <algorithm>

namespace snisplice::bpf {

bool HeldRepeats::learn(uint32_t repeats, const RepeatSlots& slots) {
  if (repeats <= learnt_) return true;  // nothing new (or an older reading)
  if (repeats - learnt_ > kRepeatSlots) return false;
  for (uint32_t number = learnt_ + 1; number <= repeats; ++number) {
    const RepeatRecord& record = slots[(number - 1) % kRepeatSlots];
    if (record.number != number) return false;
    // Each repeat is recorded at the end of the held stream as it stood: in order, apart.
    if (!pending_.empty() && record.at < pending_.back().at + pending_.back().len) return false;
    pending_.push_back({record.at, record.len});
  }
  learnt_ = repeats;
  return true;
}

std::string_view HeldRepeats::cut(uint64_t start, std::string_view bytes, std::string& scratch) {
  const uint64_t end = start + bytes.size();
  if (pending_.empty() || pending_.front().at >= end) return bytes;
  scratch.clear();
  uint64_t from = start;  // next byte of `bytes` not yet kept or dropped
  while (!pending_.empty() && pending_.front().at < end) {
    Stretch& stretch = pending_.front();
    const uint64_t stretch_end = stretch.at + stretch.len;
    const uint64_t cut_from = std::max(stretch.at, from);
    const uint64_t cut_to = std::max(cut_from, std::min(stretch_end, end));
    scratch.append(bytes.substr(from - start, cut_from - from));
    from = cut_to;
    stretch.at = cut_to;
    stretch.len = stretch_end - std::min(stretch_end, cut_to);
    if (stretch.len == 0) {
      pending_.pop_front();
    } else {
      break;  // the stretch goes on past `bytes`
    }
  }
  scratch.append(bytes.substr(from - start));
  return scratch;
}

}  // namespace snisplice::bpf
