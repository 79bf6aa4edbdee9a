#pragma once
// The 16-byte header the load client sends right after its ClientHello, telling the load
// backend what to do with the connection. Pure codec: bytes in, values out.
#include <array>
#include <cstdint>
#include <optional>

namespace snisplice::load {

enum class BackendAction : uint8_t {
  // Count bytes received for duration_ms from the first one, send the count and the measured
  // nanoseconds (8 bytes each, big-endian), then read and discard until EOF. The rate is
  // measured at the receiver, and no proxy needs to forward a half-close.
  sink = 1,
  source = 2,  // send until the client closes (bounded by a multiple of duration_ms)
  echo = 3,    // write back every byte read until EOF
};

struct Control {
  BackendAction action = BackendAction::echo;
  uint32_t duration_ms = 0;  // the measurement window
  uint32_t rate_mbit = 0;    // source only: pace the sending to this rate; 0 = as fast as possible
};

inline constexpr size_t kControlSize = 16;
inline constexpr std::array<uint8_t, 4> kControlMagic{'S', 'N', 'L', 'D'};

std::array<uint8_t, kControlSize> encode(const Control& control);
std::optional<Control> decode(const std::array<uint8_t, kControlSize>& bytes);

// The backend's answer to the preamble. The client waits for it before sending anything else,
// as a TLS client waits for the server's handshake before sending application data.
inline constexpr std::array<uint8_t, 8> kReady{'S', 'N', 'L', 'D', 'R', 'E', 'A', 'D'};

// The sink's report: bytes received in its window and the window's length.
struct SinkReport {
  uint64_t bytes = 0;
  uint64_t nanoseconds = 0;
};
inline constexpr size_t kSinkReportSize = 16;
std::array<uint8_t, kSinkReportSize> encode(const SinkReport& report);
SinkReport decode_report(const std::array<uint8_t, kSinkReportSize>& bytes);

}  // namespace snisplice::load
