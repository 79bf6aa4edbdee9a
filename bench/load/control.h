#pragma once
// The 16-byte header the load client sends right after its ClientHello, telling the load
// backend what to do with the connection. Pure codec: bytes in, values out.
#include <array>
#include <cstdint>
#include <optional>

namespace snisplice::load {

enum class BackendAction : uint8_t {
  sink = 1,    // read until EOF, then send the byte count (8 bytes, big-endian) and close
  source = 2,  // send for duration_ms, then shut down the write side
  echo = 3,    // write back every byte read until EOF
};

struct Control {
  BackendAction action = BackendAction::echo;
  uint32_t duration_ms = 0;  // source only
};

inline constexpr size_t kControlSize = 16;
inline constexpr std::array<uint8_t, 4> kControlMagic{'S', 'N', 'L', 'D'};

std::array<uint8_t, kControlSize> encode(const Control& control);
std::optional<Control> decode(const std::array<uint8_t, kControlSize>& bytes);

}  // namespace snisplice::load
