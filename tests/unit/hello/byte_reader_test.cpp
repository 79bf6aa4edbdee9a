#include "flow/hello/byte_reader.h"

#include <doctest/doctest.h>

#include <vector>

namespace snisplice::hello {
namespace {

TEST_CASE("byte reader: big-endian reads consume their bytes") {
  std::vector<uint8_t> bytes = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
  ByteReader r(bytes);
  CHECK(r.u8() == 0x01);
  CHECK(r.u16() == 0x0203);
  CHECK(r.u24() == 0x040506u);
  CHECK(r.remaining() == 1);
  CHECK(r.u8() == 0x07);
  CHECK(r.empty());
}

TEST_CASE("byte reader: reads past the end fail without consuming") {
  std::vector<uint8_t> bytes = {0xaa, 0xbb};
  ByteReader r(bytes);
  CHECK_FALSE(r.u24());
  CHECK_FALSE(r.take(3));
  CHECK(r.remaining() == 2);
  CHECK(r.u16() == 0xaabb);
  CHECK_FALSE(r.u8());
  CHECK_FALSE(r.u16());
  CHECK(r.take(0).has_value());
}

TEST_CASE("byte reader: length-prefixed sub-readers are bounded by their prefix") {
  std::vector<uint8_t> bytes = {0x00, 0x02, 0x10, 0x20, 0x30, 0x01, 0x40};
  ByteReader r(bytes);
  auto inner = r.sub16();
  REQUIRE(inner);
  CHECK(inner->remaining() == 2);
  CHECK(inner->u16() == 0x1020);
  CHECK_FALSE(inner->u8());  // 0x30 belongs to the outer reader
  CHECK(r.u8() == 0x30);
  auto last = r.sub8();
  REQUIRE(last);
  CHECK(last->u8() == 0x40);
  std::vector<uint8_t> lying = {0x05, 0x01};
  ByteReader l(lying);
  CHECK_FALSE(l.sub8());
}

}  // namespace
}  // namespace snisplice::hello
