#include "bpf/xdp_event_reader.h"

#include "bpf/xdp_allowlist.h"

#include <bpf/libbpf.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace snisplice::bpf {
namespace {

// How long the thread waits for records before looking at stopping_: the bound on shutdown.
constexpr int kPollMs = 100;

}  // namespace

std::optional<events::XdpVerdict> decode_xdp_event(const xdp_event& record,
                                                   std::string interface) {
  if (record.family != 4 && record.family != 6) return std::nullopt;
  if (record.verdict >= ALLOWLIST_VERDICT_COUNT || record.reason >= ALLOWLIST_REASON_COUNT)
    return std::nullopt;
  events::XdpVerdict out;
  out.interface = std::move(interface);
  out.source.family = record.family == 4 ? IpAddress::Family::v4 : IpAddress::Family::v6;
  std::memcpy(out.source.bytes.data(), record.source, out.source.size());
  out.port = record.port;
  out.verdict = verdict_label(static_cast<allowlist_verdict>(record.verdict));
  out.reason = reason_label(static_cast<allowlist_reason>(record.reason));
  return out;
}

void XdpEventReader::RingDeleter::operator()(::ring_buffer* ring) const { ring_buffer__free(ring); }

tl::expected<std::unique_ptr<XdpEventReader>, Error> XdpEventReader::start(
    int ring_fd, events::EventBus& bus) {
  std::unique_ptr<XdpEventReader> reader(new XdpEventReader(bus));
  reader->ring_.reset(ring_buffer__new(ring_fd, &XdpEventReader::on_record, reader.get(), nullptr));
  if (!reader->ring_)
    return tl::unexpected(Error::from_errno("reading the XDP event ring", errno));
  reader->thread_ = std::thread([raw = reader.get()] { raw->run(); });
  return reader;
}

XdpEventReader::~XdpEventReader() {
  stopping_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

void XdpEventReader::run() {
  while (!stopping_.load(std::memory_order_relaxed)) {
    // Errors other than EINTR mean the ring is gone; nothing to read any more.
    const int polled = ring_buffer__poll(ring_.get(), kPollMs);
    if (polled < 0 && polled != -EINTR) return;
  }
}

int XdpEventReader::on_record(void* context, void* data, size_t size) {
  auto* self = static_cast<XdpEventReader*>(context);
  if (!self->bus_.listening()) return 0;  // consumed; nobody to show it to
  if (size < sizeof(xdp_event)) return 0;
  xdp_event record;
  std::memcpy(&record, data, sizeof record);
  if (auto event = decode_xdp_event(record, self->interface_name(record.ifindex)))
    self->bus_.publish(std::move(*event));
  return 0;
}

const std::string& XdpEventReader::interface_name(unsigned ifindex) {
  auto found = names_.find(ifindex);
  if (found != names_.end()) return found->second;
  char name[IF_NAMESIZE] = {};
  std::string text = ::if_indextoname(ifindex, name) ? std::string(name) : "if" + std::to_string(ifindex);
  return names_.emplace(ifindex, std::move(text)).first->second;
}

}  // namespace snisplice::bpf
