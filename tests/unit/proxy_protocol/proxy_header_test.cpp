#include "flow/proxy_protocol/proxy_header.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace snisplice;
using namespace snisplice::proxy_protocol;

namespace {

std::vector<uint8_t> bytes(std::string_view text) { return {text.begin(), text.end()}; }

SocketAddress addr(const char* text) {
  auto parsed = SocketAddress::parse(text);
  REQUIRE(parsed);
  return *parsed;
}

Outcome parse_bytes(const std::vector<uint8_t>& in) { return parse(std::span<const uint8_t>(in)); }

Done expect_done(const Outcome& outcome) {
  REQUIRE(std::holds_alternative<Done>(outcome));
  return std::get<Done>(outcome);
}

RejectReason expect_rejected(const Outcome& outcome) {
  REQUIRE(std::holds_alternative<Rejected>(outcome));
  return std::get<Rejected>(outcome).reason;
}

const std::vector<uint8_t> kSig = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// A v2 header: signature, ver_cmd, fam, then `body` (length computed unless given).
std::vector<uint8_t> v2(uint8_t ver_cmd, uint8_t fam, const std::vector<uint8_t>& body,
                        std::optional<uint16_t> length = std::nullopt) {
  std::vector<uint8_t> out = kSig;
  out.push_back(ver_cmd);
  out.push_back(fam);
  uint16_t len = length.value_or(static_cast<uint16_t>(body.size()));
  out.push_back(static_cast<uint8_t>(len >> 8));
  out.push_back(static_cast<uint8_t>(len & 0xff));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

const std::vector<uint8_t> kInetBody = {192, 0, 2, 1, 198, 51, 100, 2, 0x30, 0x39, 0x01, 0xbb};

}  // namespace

TEST_CASE("v1 encode: TCP4 and TCP6 lines") {
  auto four = encode(Version::v1, addr("192.0.2.1:12345"), addr("198.51.100.2:443"));
  CHECK(std::string(four.begin(), four.end()) == "PROXY TCP4 192.0.2.1 198.51.100.2 12345 443\r\n");
  auto six = encode(Version::v1, addr("[2001:db8::1]:1"), addr("[2001:db8::2]:65535"));
  CHECK(std::string(six.begin(), six.end()) == "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n");
}

TEST_CASE("v1 encode: mapped IPv4 clients are sent as plain IPv4") {
  auto line = encode(Version::v1, addr("[::ffff:192.0.2.1]:1000"), addr("[::ffff:127.0.0.1]:443"));
  CHECK(std::string(line.begin(), line.end()) == "PROXY TCP4 192.0.2.1 127.0.0.1 1000 443\r\n");
}

TEST_CASE("v1 encode: families that still differ give UNKNOWN") {
  auto line = encode(Version::v1, addr("[::ffff:192.0.2.1]:1000"), addr("[2001:db8::2]:443"));
  CHECK(std::string(line.begin(), line.end()) == "PROXY UNKNOWN\r\n");
}

TEST_CASE("v2 encode: IPv4 layout") {
  auto header = encode(Version::v2, addr("192.0.2.1:12345"), addr("198.51.100.2:443"));
  CHECK(header == v2(0x21, 0x11, kInetBody));
}

TEST_CASE("v2 encode: IPv6 layout and mapped addresses as IPv4") {
  auto header = encode(Version::v2, addr("[2001:db8::1]:1"), addr("[2001:db8::2]:2"));
  REQUIRE(header.size() == 16 + 36);
  CHECK(header[12] == 0x21);
  CHECK(header[13] == 0x21);
  CHECK(header[15] == 36);
  CHECK(header[16] == 0x20);
  CHECK(header[31] == 0x01);
  CHECK(header[47] == 0x02);
  auto mapped = encode(Version::v2, addr("[::ffff:192.0.2.1]:12345"), addr("198.51.100.2:443"));
  CHECK(mapped == v2(0x21, 0x11, kInetBody));
}

TEST_CASE("v2 encode: families that still differ give AF_UNSPEC with no address block") {
  auto header = encode(Version::v2, addr("192.0.2.1:1"), addr("[2001:db8::2]:2"));
  CHECK(header == v2(0x21, 0x00, {}));
  auto done = expect_done(parse_bytes(header));
  CHECK_FALSE(done.source);
  CHECK_FALSE(done.is_local);
}

TEST_CASE("round trip: every version and family") {
  struct Case {
    const char* src;
    const char* dst;
  };
  for (auto version : {Version::v1, Version::v2}) {
    for (auto c : {Case{"192.0.2.1:12345", "198.51.100.2:443"}, Case{"[2001:db8::1]:0", "[::1]:65535"},
                   Case{"[::ffff:10.0.0.1]:5", "10.0.0.2:6"}, Case{"0.0.0.0:0", "255.255.255.255:65535"}}) {
      CAPTURE(c.src);
      auto header = encode(version, addr(c.src), addr(c.dst));
      auto trailing = header;
      trailing.push_back(0x16);  // the client's first bytes follow
      auto done = expect_done(parse_bytes(trailing));
      CHECK(done.version == version);
      CHECK(done.consumed == header.size());
      REQUIRE(done.source);
      CHECK(*done.source == SocketAddress{addr(c.src).ip.unmapped(), addr(c.src).port});
      CHECK(*done.destination == SocketAddress{addr(c.dst).ip.unmapped(), addr(c.dst).port});
    }
  }
}

TEST_CASE("every split position: prefixes need more, the whole is done") {
  std::vector<std::vector<uint8_t>> headers = {
      encode(Version::v1, addr("192.0.2.1:12345"), addr("198.51.100.2:443")),
      encode(Version::v1, addr("[2001:db8::1]:1"), addr("[2001:db8::2]:2")),
      bytes("PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\n"),
      encode(Version::v2, addr("192.0.2.1:12345"), addr("198.51.100.2:443")),
      encode(Version::v2, addr("[2001:db8::1]:1"), addr("[2001:db8::2]:2")),
      v2(0x20, 0x00, {}),
      v2(0x21, 0x11, {192, 0, 2, 1, 198, 51, 100, 2, 0, 1, 0, 2, 0x04, 0x00, 0x02, 'h', '2'}),
  };
  for (const auto& header : headers) {
    for (size_t cut = 0; cut < header.size(); ++cut) {
      CAPTURE(cut);
      std::vector<uint8_t> prefix(header.begin(), header.begin() + static_cast<std::ptrdiff_t>(cut));
      CHECK(std::holds_alternative<NeedMore>(parse_bytes(prefix)));
    }
    CHECK(expect_done(parse_bytes(header)).consumed == header.size());
  }
}

TEST_CASE("v1: UNKNOWN is accepted with no addresses, its remainder ignored") {
  auto done = expect_done(parse_bytes(bytes("PROXY UNKNOWN\r\nGET /")));
  CHECK(done.consumed == 15);
  CHECK_FALSE(done.source);
  CHECK_FALSE(done.destination);
  CHECK(expect_done(parse_bytes(bytes("PROXY UNKNOWN 1.2.3.4 x y z\r\n"))).consumed == 29);
}

TEST_CASE("v1: the 107-byte limit") {
  // Longest legal TCP6 line: exactly 107 bytes.
  std::string longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  REQUIRE(longest.size() == 104);
  std::string padded = "PROXY UNKNOWN " + std::string(107 - 16, 'x') + "\r\n";
  REQUIRE(padded.size() == 107);
  CHECK(expect_done(parse_bytes(bytes(padded))).consumed == 107);
  std::string too_long = "PROXY UNKNOWN " + std::string(107 - 15, 'x') + "\r\n";
  CHECK(expect_rejected(parse_bytes(bytes(too_long))) == RejectReason::v1_too_long);
  CHECK(expect_rejected(parse_bytes(bytes("PROXY UNKNOWN " + std::string(200, 'x')))) == RejectReason::v1_too_long);
  CHECK(expect_done(parse_bytes(bytes(longest))).source->port == 65535);
}

TEST_CASE("v1: malformed lines are rejected with their reason") {
  struct Case {
    const char* line;
    RejectReason reason;
  };
  const Case cases[] = {
      {"PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n", RejectReason::bad_signature},
      {"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", RejectReason::bad_signature},
      {"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", RejectReason::v1_syntax},
      {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", RejectReason::v1_syntax},
      {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", RejectReason::v1_syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", RejectReason::v1_syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", RejectReason::v1_syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", RejectReason::v1_syntax},
      {"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", RejectReason::v1_syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", RejectReason::v1_syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", RejectReason::v1_syntax},
      {"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", RejectReason::v1_syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x80\r\n", RejectReason::v1_syntax},
      {"PROXY\r\n", RejectReason::bad_signature},
      {"PROXY \r\n", RejectReason::v1_syntax},
      {"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", RejectReason::v1_bad_address},
      {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", RejectReason::v1_bad_address},
      {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", RejectReason::v1_bad_address},
      {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", RejectReason::v1_bad_address},
      {"PROXY TCP6 ::1 example.com 1 2\r\n", RejectReason::v1_bad_address},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", RejectReason::v1_bad_port},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", RejectReason::v1_bad_port},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", RejectReason::v1_bad_port},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n", RejectReason::v1_bad_port},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 999999\r\n", RejectReason::v1_bad_port},
  };
  for (const auto& c : cases) {
    CAPTURE(c.line);
    CHECK(expect_rejected(parse_bytes(bytes(c.line))) == c.reason);
  }
}

TEST_CASE("v1: port zero and the plain zero port are accepted") {
  auto done = expect_done(parse_bytes(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 0 0\r\n")));
  CHECK(done.source->port == 0);
}

TEST_CASE("v1: a TCP6 line with mapped addresses decodes to IPv4") {
  auto done = expect_done(parse_bytes(bytes("PROXY TCP6 ::ffff:192.0.2.1 ::ffff:192.0.2.2 1 2\r\n")));
  CHECK(done.source->ip.is_v4());
  CHECK(done.source->ip.to_string() == "192.0.2.1");
}

TEST_CASE("v2: LOCAL is accepted without addresses, whatever its family") {
  auto done = expect_done(parse_bytes(v2(0x20, 0x00, {})));
  CHECK(done.is_local);
  CHECK_FALSE(done.source);
  CHECK(done.consumed == 16);
  auto with_block = expect_done(parse_bytes(v2(0x20, 0xff, {1, 2, 3})));
  CHECK(with_block.is_local);
  CHECK(with_block.consumed == 19);
}

TEST_CASE("v2: UNSPEC, UNIX and UDP are accepted as unknown") {
  CHECK_FALSE(expect_done(parse_bytes(v2(0x21, 0x00, {}))).source);
  CHECK_FALSE(expect_done(parse_bytes(v2(0x21, 0x12, kInetBody))).source);
  CHECK_FALSE(expect_done(parse_bytes(v2(0x21, 0x31, std::vector<uint8_t>(216, 'a')))).source);
  CHECK_FALSE(expect_done(parse_bytes(v2(0x21, 0x22, std::vector<uint8_t>(36, 0)))).source);
}

TEST_CASE("v2: TLVs after the address block are skipped") {
  auto body = kInetBody;
  for (uint8_t b : std::initializer_list<uint8_t>{0x01, 0x00, 0x02, 'h', '2', 0x04, 0x00, 0x00}) body.push_back(b);
  auto done = expect_done(parse_bytes(v2(0x21, 0x11, body)));
  CHECK(done.consumed == 16 + body.size());
  CHECK(done.source->to_string() == "192.0.2.1:12345");
  CHECK(done.destination->to_string() == "198.51.100.2:443");
}

TEST_CASE("v2: malformed headers are rejected with their reason") {
  auto bad_sig = v2(0x21, 0x11, kInetBody);
  bad_sig[11] = 0x0B;
  CHECK(expect_rejected(parse_bytes(bad_sig)) == RejectReason::bad_signature);
  CHECK(expect_rejected(parse_bytes(v2(0x11, 0x11, kInetBody))) == RejectReason::v2_bad_version);
  CHECK(expect_rejected(parse_bytes(v2(0x31, 0x11, kInetBody))) == RejectReason::v2_bad_version);
  CHECK(expect_rejected(parse_bytes(v2(0x22, 0x11, kInetBody))) == RejectReason::v2_bad_command);
  CHECK(expect_rejected(parse_bytes(v2(0x21, 0x41, kInetBody))) == RejectReason::v2_bad_family);
  CHECK(expect_rejected(parse_bytes(v2(0x21, 0x13, kInetBody))) == RejectReason::v2_bad_family);
  CHECK(expect_rejected(parse_bytes(v2(0x21, 0x11, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}))) ==
        RejectReason::v2_short_address);
  CHECK(expect_rejected(parse_bytes(v2(0x21, 0x21, kInetBody))) == RejectReason::v2_short_address);
  CHECK(expect_rejected(parse_bytes(v2(0x21, 0x31, std::vector<uint8_t>(215, 0)))) == RejectReason::v2_short_address);
  auto tlv_header_cut = kInetBody;
  tlv_header_cut.insert(tlv_header_cut.end(), {0x04, 0x00});
  CHECK(expect_rejected(parse_bytes(v2(0x21, 0x11, tlv_header_cut))) == RejectReason::v2_bad_tlv);
  auto tlv_value_cut = kInetBody;
  tlv_value_cut.insert(tlv_value_cut.end(), {0x04, 0x00, 0x03, 'a', 'b'});
  CHECK(expect_rejected(parse_bytes(v2(0x21, 0x11, tlv_value_cut))) == RejectReason::v2_bad_tlv);
}

TEST_CASE("v2: length limits") {
  // Rejected as soon as the length field arrives, before the body.
  auto header = v2(0x21, 0x11, {}, 4096 - 16 + 1);
  CHECK(expect_rejected(parse_bytes(header)) == RejectReason::v2_too_long);
  std::vector<uint8_t> max_body = kInetBody;
  max_body.insert(max_body.end(), {0xEE, 0x0F, 0xE1});  // NOOP TLV padding to the limit: 4096-16-12-3 bytes
  max_body.resize(4096 - 16, 0);
  CHECK(expect_done(parse_bytes(v2(0x21, 0x11, max_body))).consumed == 4096);
  auto small = v2(0x21, 0x11, kInetBody);
  CHECK(expect_rejected(parse(std::span<const uint8_t>(small), 27)) == RejectReason::v2_too_long);
  CHECK(expect_done(parse(std::span<const uint8_t>(small), 28)).consumed == 28);
}

TEST_CASE("early rejection on a prefix matches the verdict on the whole") {
  std::vector<std::vector<uint8_t>> bad = {
      bytes("GET / HTTP/1.1\r\n"), bytes("\x16\x03\x01\x02\x00"), v2(0x31, 0x11, kInetBody),
      v2(0x22, 0x11, kInetBody), v2(0x21, 0x41, kInetBody), bytes("PROXY TCP4 1.2.3.4\n"),
      v2(0x21, 0x11, {}, 60000)};
  for (const auto& whole : bad) {
    auto verdict = expect_rejected(parse_bytes(whole));
    for (size_t cut = 1; cut <= whole.size(); ++cut) {
      CAPTURE(cut);
      auto outcome = parse(std::span<const uint8_t>(whole.data(), cut));
      if (auto* rejected = std::get_if<Rejected>(&outcome)) CHECK(rejected->reason == verdict);
    }
  }
}

TEST_CASE("empty input needs more") { CHECK(std::holds_alternative<NeedMore>(parse({}))); }

TEST_CASE("every reason has a distinct label") {
  std::vector<std::string_view> labels;
  for (int r = 0; r <= static_cast<int>(RejectReason::v2_bad_tlv); ++r) {
    auto label = to_string(static_cast<RejectReason>(r));
    CHECK(std::find(labels.begin(), labels.end(), label) == labels.end());
    labels.push_back(label);
  }
}

TEST_CASE("proxy_header_presence: a signature, a proper prefix of one (dribbled), or neither") {
  auto check = [](std::vector<uint8_t> in) { return proxy_header_presence(std::span<const uint8_t>(in)); };
  CHECK(check(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")) == HeaderPresence::present);
  CHECK(check(bytes("PROXY ")) == HeaderPresence::present);
  CHECK(check(bytes("PROXY")) == HeaderPresence::undecided);
  CHECK(check(bytes("P")) == HeaderPresence::undecided);
  CHECK(check(kSig) == HeaderPresence::present);
  CHECK(check({kSig.begin(), kSig.end() - 1}) == HeaderPresence::undecided);
  CHECK(check({kSig.begin(), kSig.begin() + 1}) == HeaderPresence::undecided);
  CHECK(check({}) == HeaderPresence::undecided);
  CHECK(check(bytes("PROXX")) == HeaderPresence::absent);
  CHECK(check(bytes("PROPFIND / HTTP/1.1\r\n")) == HeaderPresence::absent);
  CHECK(check(bytes("PUT / HTTP/1.1\r\n")) == HeaderPresence::absent);
  CHECK(check(bytes("GET / HTTP/1.1\r\n")) == HeaderPresence::absent);
  CHECK(check(bytes("\r\nGET / HTTP/1.1\r\n")) == HeaderPresence::absent);
  CHECK(check({0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x00}) == HeaderPresence::absent);
}
