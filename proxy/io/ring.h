#pragma once
// The only liburing user: one ring per worker thread with the typed operations the worker's
// stages submit, a provided-buffer ring for the userspace relay, and the encoding of what each
// completion belongs to.
#include <liburing.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "base/error.h"
#include "base/unique_fd.h"

namespace snisplice::io {

// What a completion is for: the operation kind, and the slot and generation of the
// session that submitted it (a stale completion for a reused slot is recognised by its
// generation).
struct OpTag {
  uint8_t kind = 0;
  uint32_t slot = 0;  // 24 bits used
  uint32_t generation = 0;

  uint64_t encode() const {
    return (uint64_t{generation} << 32) | (uint64_t{slot & 0xffffff} << 8) | kind;
  }
  static OpTag decode(uint64_t data) {
    return {static_cast<uint8_t>(data & 0xff), static_cast<uint32_t>((data >> 8) & 0xffffff),
            static_cast<uint32_t>(data >> 32)};
  }
};

// One completion, as the worker's stages read it.
struct Completion {
  OpTag tag;
  int result = 0;  // >= 0: the operation's result; < 0: -errno
  uint32_t flags = 0;

  // A multishot operation stays armed after this completion.
  bool more() const { return flags & IORING_CQE_F_MORE; }
  // The provided buffer a receive filled, if it took one.
  std::optional<uint16_t> buffer() const {
    if (!(flags & IORING_CQE_F_BUFFER)) return std::nullopt;
    return static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
  }
};

class Ring {
 public:
  static tl::expected<Ring, Error> create(unsigned entries);
  Ring(Ring&& other) noexcept;
  Ring& operator=(Ring&&) = delete;
  Ring(const Ring&) = delete;
  ~Ring();

  io_uring* get() { return &ring_; }
  // Called once by the thread that will submit: it becomes the ring's only issuer.
  void enable();
  // Submits and waits for at least one completion or until `timeout` passes.
  void submit_and_wait(std::chrono::nanoseconds timeout);
  // Hands every completion that arrived to `handle`, then marks them seen.
  template <typename Handle>
  void drain_completions(Handle&& handle) {
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      handle(Completion{OpTag::decode(cqe->user_data), cqe->res, cqe->flags});
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
  }

  // Operations; each completion carries `tag`. Buffers passed in must stay valid until then.
  void read(int fd, std::span<uint8_t> into, OpTag tag);
  void recv(int fd, std::span<uint8_t> into, OpTag tag);
  // recv with MSG_PEEK: copies what is queued (waiting for a first byte) and consumes nothing.
  void peek(int fd, std::span<uint8_t> into, OpTag tag);
  // Receives into buffers the kernel picks from `buffer_group`, until cancelled or EOF; with
  // `max_bytes`, it ends (no more flag) once it received that many. Kernels before 6.17 refuse
  // the cap with -EINVAL.
  void recv_multishot(int fd, uint16_t buffer_group, OpTag tag, uint32_t max_bytes = 0);
  void send(int fd, std::span<const uint8_t> bytes, OpTag tag);  // never raises SIGPIPE
  void accept_multishot(int fd, OpTag tag);
  // A connect bounded by `timeout` (a linked timeout tagged `timeout_tag`); the connect then
  // completes with -ECANCELED. It goes out with the next submission, when the kernel copies
  // `address`: that must stay valid until then, `timeout` until the timeout's completion.
  void connect(int fd, const sockaddr_storage& address, socklen_t length, const __kernel_timespec& timeout,
               OpTag tag, OpTag timeout_tag);
  // Closes `fd` with the next submission instead of a system call of its own.
  void close(UniqueFd fd, OpTag tag);
  // Submits what is queued without waiting.
  void submit();
  void poll(int fd, unsigned events, OpTag tag);
  void poll_multishot(int fd, unsigned events, OpTag tag);
  void remove_poll(OpTag target, OpTag tag);
  // Cancels the operation tagged `target` (found by hash; finding none is harmless).
  void cancel(OpTag target, OpTag tag);
  // Cancels every operation on `fd`.
  void cancel_fd(int fd, OpTag tag);

 private:
  // An SQE, submitting what is queued first when the submission queue is full.
  io_uring_sqe* sqe(OpTag tag);
  Ring() = default;
  io_uring ring_{};
  bool live_ = false;
};

// A ring of equally sized buffers the kernel picks from for multishot recv. Buffers are
// shared by every connection of the worker, so an idle connection costs no buffer memory.
class BufferRing {
 public:
  static tl::expected<BufferRing, Error> create(Ring& ring, uint16_t group_id,
                                                uint16_t count, uint32_t size);
  BufferRing(BufferRing&& other) noexcept;
  BufferRing& operator=(BufferRing&&) = delete;
  BufferRing(const BufferRing&) = delete;
  ~BufferRing();

  uint16_t group_id() const { return group_id_; }
  uint32_t buffer_size() const { return size_; }
  std::span<uint8_t> buffer(uint16_t id) { return {storage_.data() + size_t{id} * size_, size_}; }
  // Hands a buffer back to the kernel once its bytes have been sent on.
  void recycle(uint16_t id);
  unsigned in_use() const { return in_use_; }
  void took_one() { ++in_use_; }

 private:
  BufferRing() = default;
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* shared_ = nullptr;
  size_t mapped_size_ = 0;
  std::vector<uint8_t> storage_;
  uint16_t group_id_ = 0;
  uint16_t count_ = 0;
  uint32_t size_ = 0;
  unsigned in_use_ = 0;
};

}  // namespace snisplice::io
