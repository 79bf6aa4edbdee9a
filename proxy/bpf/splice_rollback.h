#pragma once
// Undoing a splice() whose later step failed after a socket was already in the sockhash. From
// its insertion on, the verdict takes what that socket receives into its psock (held or passed
// bytes), and deleting the entry drops the psock with whatever it still queues: those bytes are
// read back first, and handed to the caller (proxy/bpf/splice_engine.h, step 1).
#include <cstdint>
#include <string>
#include <vector>

namespace snisplice::bpf {

struct ReadBack {
  std::vector<uint8_t> bytes;  // what the socket received since its insertion, in order
  // False: the verdict took bytes that could not all be read back before the entry went (a
  // segment arriving between the last read and the deletion, a repeated skb, bytes redirected
  // to a peer's backlog): the stream cannot be kept exact.
  bool complete = true;
  std::string why;  // when not complete
};

// Reads `fd` (in the sockhash under `peers_key`; its counters under `stats_key`) until every
// byte its verdict took is read, deletes the peers entry, and checks that no verdict took more
// and that TCP consumed nothing else (`read_before`: what userspace read before splice()).
ReadBack take_back(int fd, int peers_map_fd, uint64_t peers_key, int stats_map_fd, uint64_t stats_key,
                   uint64_t read_before);

}  // namespace snisplice::bpf
