#pragma once
// A bounded big-endian reader over a byte span. Every read checks the bytes left first and
// reports a short container as std::nullopt instead of reading past the end, so parsers turn
// a lying length field into a reject rather than an out-of-bounds read.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace snisplice::hello {

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  size_t remaining() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  std::span<const uint8_t> rest() const { return bytes_; }

  std::optional<uint8_t> u8() {
    auto b = take(1);
    if (!b) return std::nullopt;
    return (*b)[0];
  }
  std::optional<uint16_t> u16() {
    auto b = take(2);
    if (!b) return std::nullopt;
    return static_cast<uint16_t>((*b)[0] << 8 | (*b)[1]);
  }
  std::optional<uint32_t> u24() {
    auto b = take(3);
    if (!b) return std::nullopt;
    return static_cast<uint32_t>((*b)[0]) << 16 | static_cast<uint32_t>((*b)[1]) << 8 | (*b)[2];
  }
  // The next n bytes, consumed.
  std::optional<std::span<const uint8_t>> take(size_t n) {
    if (n > bytes_.size()) return std::nullopt;
    auto head = bytes_.first(n);
    bytes_ = bytes_.subspan(n);
    return head;
  }
  // A reader over the next n bytes, consumed from this one.
  std::optional<ByteReader> sub(size_t n) {
    auto b = take(n);
    if (!b) return std::nullopt;
    return ByteReader(*b);
  }
  // TLS vectors (RFC 8446 section 3.4): a u8 / u16 length prefix, then that many bytes.
  std::optional<ByteReader> sub8() {
    auto n = u8();
    if (!n) return std::nullopt;
    return sub(*n);
  }
  std::optional<ByteReader> sub16() {
    auto n = u16();
    if (!n) return std::nullopt;
    return sub(*n);
  }

 private:
  std::span<const uint8_t> bytes_;
};

}  // namespace snisplice::hello
