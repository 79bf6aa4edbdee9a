#include "io/ring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace snisplice::io {

tl::expected<Ring, Error> Ring::create(unsigned entries) {
  Ring ring;
  io_uring_params params{};
  // One thread submits and reaps: let the kernel run task work only when we wait. The ring
  // starts disabled so that the worker thread, not the one that built it, becomes its
  // single issuer when it calls enable().
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
                 IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
  params.cq_entries = entries * 8;
  int rc = io_uring_queue_init_params(entries, &ring.ring_, &params);
  if (rc < 0) {
    // Older kernels lack DEFER_TASKRUN; the ring works without it.
    params = {};
    params.flags = IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 8;
    rc = io_uring_queue_init_params(entries, &ring.ring_, &params);
  }
  if (rc < 0) return tl::unexpected(Error::from_errno("io_uring_queue_init", -rc));
  ring.live_ = true;
  return ring;
}

void Ring::enable() {
  // liburing 2.3 declares io_uring_enable_rings but does not export it.
  ::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
}

Ring::Ring(Ring&& other) noexcept : ring_(other.ring_), live_(std::exchange(other.live_, false)) {}

Ring::~Ring() {
  if (live_) io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::sqe(OpTag tag) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (!sqe) {
    submit();
    sqe = io_uring_get_sqe(&ring_);
  }
  io_uring_sqe_set_data64(sqe, tag.encode());
  return sqe;
}

void Ring::read(int fd, std::span<uint8_t> into, OpTag tag) {
  io_uring_prep_read(sqe(tag), fd, into.data(), static_cast<unsigned>(into.size()), 0);
}

void Ring::recv(int fd, std::span<uint8_t> into, OpTag tag) {
  io_uring_prep_recv(sqe(tag), fd, into.data(), into.size(), 0);
}

void Ring::peek(int fd, std::span<uint8_t> into, OpTag tag) {
  io_uring_prep_recv(sqe(tag), fd, into.data(), into.size(), MSG_PEEK);
}

void Ring::recv_multishot(int fd, uint16_t buffer_group, OpTag tag, uint32_t max_bytes) {
  io_uring_sqe* s = sqe(tag);
  io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = buffer_group;
  // The kernel's total byte cap for a multishot receive (6.17+) is read from sqe->optlen,
  // which liburing 2.3's header names file_index (the same field).
  s->file_index = max_bytes;
}

void Ring::send(int fd, std::span<const uint8_t> bytes, OpTag tag) {
  io_uring_prep_send(sqe(tag), fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
}

void Ring::accept_multishot(int fd, OpTag tag) {
  io_uring_prep_multishot_accept(sqe(tag), fd, nullptr, nullptr, SOCK_CLOEXEC);
}

void Ring::connect(int fd, const sockaddr_storage& address, socklen_t length, const __kernel_timespec& timeout,
                   OpTag tag, OpTag timeout_tag) {
  // Room for both SQEs first: fetching the second could otherwise submit the connect before
  // its timeout is linked.
  if (io_uring_sq_space_left(&ring_) < 2) submit();
  io_uring_sqe* s = sqe(tag);
  io_uring_prep_connect(s, fd, reinterpret_cast<const sockaddr*>(&address), length);
  s->flags |= IOSQE_IO_LINK;
  // liburing 2.3 takes a non-const pointer; the kernel only reads the timespec.
  io_uring_prep_link_timeout(sqe(timeout_tag), const_cast<__kernel_timespec*>(&timeout), 0);
}

void Ring::close(UniqueFd fd, OpTag tag) {
  if (fd) io_uring_prep_close(sqe(tag), fd.release());
}

void Ring::submit() { io_uring_submit(&ring_); }

void Ring::poll(int fd, unsigned events, OpTag tag) { io_uring_prep_poll_add(sqe(tag), fd, events); }

void Ring::poll_multishot(int fd, unsigned events, OpTag tag) { io_uring_prep_poll_multishot(sqe(tag), fd, events); }

void Ring::remove_poll(OpTag target, OpTag tag) { io_uring_prep_poll_remove(sqe(tag), target.encode()); }

void Ring::cancel(OpTag target, OpTag tag) { io_uring_prep_cancel64(sqe(tag), target.encode(), 0); }

void Ring::cancel_fd(int fd, OpTag tag) { io_uring_prep_cancel_fd(sqe(tag), fd, IORING_ASYNC_CANCEL_ALL); }

void Ring::submit_and_wait(std::chrono::nanoseconds timeout) {
  if (timeout.count() < 0) timeout = {};
  __kernel_timespec ts{};
  ts.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
  ts.tv_nsec = (timeout - std::chrono::seconds(ts.tv_sec)).count();
  io_uring_cqe* cqe = nullptr;
  // liburing 2.3 may return > 0 with no cqe: the caller peeks the queue anyway.
  io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
}

tl::expected<BufferRing, Error> BufferRing::create(Ring& ring, uint16_t group_id, uint16_t count,
                                                   uint32_t size) {
  BufferRing out;
  out.ring_ = ring.get();
  out.group_id_ = group_id;
  out.count_ = count;
  out.size_ = size;
  out.mapped_size_ = sizeof(io_uring_buf) * count;
  void* mapped = ::mmap(nullptr, out.mapped_size_, PROT_READ | PROT_WRITE,
                        MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mapped == MAP_FAILED) return tl::unexpected(Error::from_errno("mmap", errno));
  out.shared_ = static_cast<io_uring_buf_ring*>(mapped);
  io_uring_buf_ring_init(out.shared_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(out.shared_);
  reg.ring_entries = count;
  reg.bgid = group_id;
  int rc = io_uring_register_buf_ring(out.ring_, &reg, 0);
  if (rc < 0) {
    ::munmap(out.shared_, out.mapped_size_);
    out.shared_ = nullptr;
    return tl::unexpected(Error::from_errno("io_uring_register_buf_ring", -rc));
  }
  out.storage_.resize(size_t{count} * size);
  int mask = io_uring_buf_ring_mask(count);
  for (uint16_t id = 0; id < count; ++id)
    io_uring_buf_ring_add(out.shared_, out.storage_.data() + size_t{id} * size, size, id, mask, id);
  io_uring_buf_ring_advance(out.shared_, count);
  return out;
}

BufferRing::BufferRing(BufferRing&& other) noexcept
    : ring_(other.ring_),
      shared_(std::exchange(other.shared_, nullptr)),
      mapped_size_(other.mapped_size_),
      storage_(std::move(other.storage_)),
      group_id_(other.group_id_),
      count_(other.count_),
      size_(other.size_),
      in_use_(other.in_use_) {}

BufferRing::~BufferRing() {
  if (!shared_) return;
  io_uring_unregister_buf_ring(ring_, group_id_);
  ::munmap(shared_, mapped_size_);
}

void BufferRing::recycle(uint16_t id) {
  io_uring_buf_ring_add(shared_, storage_.data() + size_t{id} * size_, size_, id,
                        io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(shared_, 1);
  --in_use_;
}

}  // namespace snisplice::io
