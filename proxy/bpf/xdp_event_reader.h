#pragma once
// Live XDP events: reads the records the XDP program samples into its xdp_events ring buffer
// (struct xdp_event, xdp_abi.h) on a thread of its own and publishes each as an `xdp` event
// on the EventBus. The program decides what is sampled and how many (a per-CPU budget); this
// side only converts. Started when XDP is attached, destroyed before the XdpAllowlist whose
// ring it reads (stopping and joining the thread within one poll interval).
#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <tl/expected.hpp>

#include "base/error.h"
#include "events/bus.h"
#include "events/event.h"
#include "xdp_abi.h"

struct ring_buffer;  // libbpf

namespace snisplice::bpf {

// The record as an event seen on `interface`; nullopt when it carries an unknown family,
// verdict or reason (a program newer than this reader). Pure.
std::optional<events::XdpVerdict> decode_xdp_event(const xdp_event& record,
                                                   std::string interface);

class XdpEventReader {
 public:
  // Reads the ring buffer map `ring_fd` (which must outlive the reader) into `bus`.
  static tl::expected<std::unique_ptr<XdpEventReader>, Error> start(int ring_fd,
                                                                          events::EventBus& bus);
  ~XdpEventReader();  // stops and joins the thread
  XdpEventReader(const XdpEventReader&) = delete;
  XdpEventReader& operator=(const XdpEventReader&) = delete;

 private:
  explicit XdpEventReader(events::EventBus& bus) : bus_(bus) {}
  static int on_record(void* context, void* data, size_t size);
  void run();
  // The interface's name, looked up once per ifindex ("if<N>" when it is gone).
  const std::string& interface_name(unsigned ifindex);

  struct RingDeleter {
    void operator()(::ring_buffer* ring) const;
  };
  events::EventBus& bus_;
  std::unique_ptr<::ring_buffer, RingDeleter> ring_;
  std::map<unsigned, std::string> names_;  // the reader thread's only
  std::atomic<bool> stopping_{false};
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace snisplice::bpf
