#pragma once
// Undoing a splice() whose later step failed after a socket was already in the sockhash. From
// its insertion on, the verdict takes what that socket receives into its psock (held or passed
// bytes), and deleting the entry drops the psock with whatever it still queues: those bytes are
// read back first, and handed to the caller (proxy/bpf/splice_engine.h, step 1).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace snisplice::bpf {

// One map entry splice() made.
struct MapEntry {
  int map_fd = -1;
  uint64_t key = 0;
};

// A socket splice() may have put into the sockhash: its fd, its cookie (its key in the stats
// map, and its peer's key in the sockhash), and what userspace had read from it before.
struct SplicedSocket {
  int fd = -1;
  uint64_t cookie = 0;
  uint64_t read_before = 0;
};

struct RolledBack {
  // What each socket's verdict took while it was in the sockhash, in order: owed to its peer
  // ahead of anything read from it afterwards.
  std::vector<uint8_t> from_client;
  std::vector<uint8_t> from_backend;
  // Empty when every byte the verdicts took was read back; otherwise why not, and the bytes
  // above are empty: the stream cannot be kept exact.
  std::string lost;
};

// Deletes `made`, newest first. A sockhash entry (in `peers_map_fd`, under one socket's cookie,
// holding the other socket) is deleted only after its socket was read until every byte its
// verdict took was read; then the counts must show that the verdict took no more and that TCP
// consumed nothing else.
RolledBack roll_back(std::span<const MapEntry> made, int peers_map_fd, int stats_map_fd, const SplicedSocket& client,
                     const SplicedSocket& backend);

}  // namespace snisplice::bpf
