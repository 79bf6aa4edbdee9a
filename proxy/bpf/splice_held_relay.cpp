// SplicedPair's held relay: moving the bytes a pause held on the source socket to the
// destination, in order behind every redirected byte (docs/splice.md, "Pause without a stall").
#include "bpf/splice_engine.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <optional>
#include <string>
#include <string_view>

namespace snisplice::bpf {

const SplicedPair::HeldRelay* SplicedPair::held_relay(Direction direction) const {
  return held_relays_ ? &(*held_relays_)[static_cast<size_t>(direction)] : nullptr;
}

uint64_t SplicedPair::relayed(Direction direction) const {
  const HeldRelay* held = held_relay(direction);
  return held != nullptr ? held->relayed : 0;
}

uint64_t SplicedPair::taken(Direction direction) const {
  const HeldRelay* held = held_relay(direction);
  return held != nullptr ? held->taken : 0;
}

tl::expected<uint64_t, Error> SplicedPair::relay_held(Direction direction, uint64_t max_bytes) {
  if (!in_maps_) return tl::unexpected(Error{"relay_held: the pair is no longer spliced"});
  const Side& from = source(direction);
  const Side& to = destination(direction);
  if (!held_relays_) held_relays_ = std::make_unique<std::array<HeldRelay, 2>>();
  HeldRelay& held_relay = (*held_relays_)[static_cast<size_t>(direction)];
  std::string& in_hand = held_relay.in_hand;
  // What one recv() takes; only an unsent rest is kept. Smaller than a core's L1 data cache, so
  // the send() copies out what the recv() just copied in (sizes measured: docs/splice.md, "The
  // held relay's chunk").
  std::array<char, 32 * 1024> chunk;
  uint64_t moved = 0;
  // Held bytes still to read, as of the last counter read: re-read only once they are used up.
  uint64_t held = 0;
  // Whether every redirected byte in front of the held ones is in the destination's queue.
  // Once true it stays true for this call: while a held byte is unrelayed (and nothing is
  // published before the call ends) the verdict holds every segment, so nothing new is
  // redirected in front. One reading per call instead of one per chunk.
  bool in_order = false;
  const uint64_t taken_before = held_relay.taken;
  std::string kept;  // a read with a repeated stretch cut out
  while (moved < max_bytes) {
    std::string_view pending = in_hand;
    if (pending.empty()) {
      // Read only held bytes: anything behind them (passed for good) is the caller's relay's.
      if (held <= held_relay.taken) {
        const DirectionStats now = stats()[direction];
        held = now.held_bytes;
        if (!held_relay.repeats.learn(now.repeats, now.repeat_slots)) {
          held_relay.repeats_lost = true;
          return tl::unexpected(Error{"relay_held: held bytes were repeated faster than they were read"});
        }
      }
      if (held <= held_relay.taken) break;
      const size_t want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), held - held_relay.taken));
      const ssize_t n = ::recv(from.fd, chunk.data(), want, MSG_DONTWAIT);
      if (n <= 0) {
        // Held bytes may still be on their way into the socket (behind the kernel's own
        // queue toward it): the next call finds them.
        if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) break;
        return tl::unexpected(Error::from_errno("relay_held: recv", errno));
      }
      const uint64_t start = held_relay.taken;
      const uint64_t end = start + static_cast<uint64_t>(n);
      held_relay.taken = end;
      // The repeated head of an skb handed over twice (splice_abi.h) was read before, as the
      // first copy: drop it. It is never ahead of what the counters said when it was learnt.
      pending = held_relay.repeats.cut(start, std::string_view(chunk.data(), static_cast<size_t>(n)), kept);
      if (pending.empty()) continue;
    }
    // Bytes redirected before the held ones must be in the destination's queue first. The
    // counters are read after the held bytes were: every skb in front of them had its
    // verdict, and its count, by then. Only the destination's socket is asked.
    std::optional<Error> read_failed;  // returned once what was read is kept in hand
    if (!in_order) {
      auto now = read_destination(direction);
      if (now) {
        in_order = progress(direction, *now).undelivered == 0;
      } else {
        read_failed = now.error();
      }
    }
    ssize_t sent = -1;
    int send_error = EAGAIN;
    if (in_order) {
      sent = ::send(to.fd, pending.data(), pending.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (sent < 0) send_error = errno;
    }
    const size_t taken = sent > 0 ? static_cast<size_t>(sent) : 0;
    held_relay.relayed += taken;
    moved += taken;
    if (in_hand.empty()) {
      in_hand.assign(pending.substr(taken));
    } else {
      in_hand.erase(0, taken);
    }
    if (read_failed) return tl::unexpected(*read_failed);
    if (sent < 0 && send_error != EAGAIN && send_error != EWOULDBLOCK) {
      return tl::unexpected(Error::from_errno("relay_held: send", send_error));
    }
    if (!in_hand.empty()) break;  // redirected bytes still in front, or the send queue is full
    std::string().swap(in_hand);   // give back the memory of a rest kept earlier
  }
  // Published only with nothing in hand: relayed_bytes == held_bytes then means every held
  // byte is in the destination's send queue, and the verdict may redirect again.
  if (held_relay.taken != taken_before && in_hand.empty()) {
    if (auto published = publish_control(direction); !published) return tl::unexpected(published.error());
  }
  return moved;
}

bool SplicedPair::broken(Direction direction, const PairStats& counters) const {
  const HeldRelay* held = held_relay(direction);
  return counters[direction].unplaced_repeats > 0 || (held != nullptr && held->repeats_lost);
}

}  // namespace snisplice::bpf
