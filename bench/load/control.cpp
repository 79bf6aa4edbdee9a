#include "control.h"

#include <algorithm>

namespace snisplice::load {

std::array<uint8_t, kControlSize> encode(const Control& control) {
  std::array<uint8_t, kControlSize> out{};
  std::copy(kControlMagic.begin(), kControlMagic.end(), out.begin());
  out[4] = 1;  // version
  out[5] = static_cast<uint8_t>(control.action);
  for (int i = 0; i < 4; ++i) {
    out[8 + i] = static_cast<uint8_t>(control.duration_ms >> (24 - 8 * i));
    out[12 + i] = static_cast<uint8_t>(control.rate_mbit >> (24 - 8 * i));
  }
  return out;
}

std::optional<Control> decode(const std::array<uint8_t, kControlSize>& bytes) {
  if (!std::equal(kControlMagic.begin(), kControlMagic.end(), bytes.begin()) || bytes[4] != 1) {
    return std::nullopt;
  }
  Control control;
  switch (bytes[5]) {
    case static_cast<uint8_t>(BackendAction::sink): control.action = BackendAction::sink; break;
    case static_cast<uint8_t>(BackendAction::source): control.action = BackendAction::source; break;
    case static_cast<uint8_t>(BackendAction::echo): control.action = BackendAction::echo; break;
    default: return std::nullopt;
  }
  for (int i = 0; i < 4; ++i) {
    control.duration_ms = (control.duration_ms << 8) | bytes[8 + i];
    control.rate_mbit = (control.rate_mbit << 8) | bytes[12 + i];
  }
  return control;
}

std::array<uint8_t, kSinkReportSize> encode(const SinkReport& report) {
  std::array<uint8_t, kSinkReportSize> out{};
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<uint8_t>(report.bytes >> (56 - 8 * i));
    out[8 + i] = static_cast<uint8_t>(report.nanoseconds >> (56 - 8 * i));
  }
  return out;
}

SinkReport decode_report(const std::array<uint8_t, kSinkReportSize>& bytes) {
  SinkReport report;
  for (int i = 0; i < 8; ++i) {
    report.bytes = (report.bytes << 8) | bytes[i];
    report.nanoseconds = (report.nanoseconds << 8) | bytes[8 + i];
  }
  return report;
}

}  // namespace snisplice::load
