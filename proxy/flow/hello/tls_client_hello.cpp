#include "flow/hello/tls_client_hello.h"

#include <algorithm>
#include <string>

#include "flow/hello/byte_reader.h"
#include "flow/hello/host_name.h"

namespace snisplice::hello {

namespace {

constexpr uint8_t kContentHandshake = 22;     // RFC 8446 section 5.1, ContentType.handshake
constexpr uint8_t kRecordVersionMajor = 3;    // record versions 0x0301..0x0304
constexpr uint8_t kRecordVersionMinorMin = 1;
constexpr uint8_t kRecordVersionMinorMax = 4;
constexpr size_t kRecordHeaderBytes = 5;
constexpr size_t kMaxFragmentBytes = 16384;   // 2^14, RFC 8446 section 5.1
constexpr uint8_t kHandshakeClientHello = 1;  // RFC 8446 section 4, HandshakeType
constexpr size_t kHandshakeHeaderBytes = 4;   // msg_type u8 + length u24
constexpr size_t kRandomBytes = 32;
constexpr size_t kMaxSessionIdBytes = 32;
constexpr uint16_t kExtServerName = 0;        // RFC 6066 section 3
constexpr uint8_t kNameTypeHostName = 0;
constexpr uint16_t kExtAlpn = 16;             // RFC 7301 section 3.1
constexpr uint16_t kExtEncryptedClientHello = 0xfe0d;  // draft-ietf-tls-esni

size_t handshake_length(std::span<const uint8_t> header) {
  return static_cast<size_t>(header[1]) << 16 | static_cast<size_t>(header[2]) << 8 | header[3];
}

std::string to_string(std::span<const uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// ServerNameList: exactly one host_name entry; entries of other name types are skipped.
std::optional<Reject> parse_server_name(ByteReader data, Hello& hello) {
  auto list = data.sub16();
  if (!list || !data.empty()) return Reject::length_mismatch;
  if (list->empty()) return Reject::bad_extension;
  bool have_host = false;
  while (!list->empty()) {
    auto name_type = list->u8();
    auto name = list->sub16();
    if (!name_type || !name) return Reject::length_mismatch;
    if (*name_type != kNameTypeHostName) continue;
    if (have_host) return Reject::multiple_host_names;
    have_host = true;
    auto host = normalize_host_name(to_string(name->rest()));
    if (!host) return Reject::invalid_host_name;
    hello.host = std::move(*host);
  }
  if (!have_host) return Reject::bad_extension;
  return std::nullopt;
}

// ProtocolNameList <2..2^16-1> of ProtocolName <1..2^8-1>.
std::optional<Reject> parse_alpn(ByteReader data, Hello& hello) {
  auto list = data.sub16();
  if (!list || !data.empty()) return Reject::length_mismatch;
  if (list->empty()) return Reject::bad_extension;
  while (!list->empty()) {
    auto name = list->sub8();
    if (!name) return Reject::length_mismatch;
    if (name->empty()) return Reject::bad_extension;
    hello.alpn.push_back(to_string(name->rest()));
  }
  return std::nullopt;
}

}  // namespace

Outcome parse_client_hello(std::span<const uint8_t> message) {
  ByteReader r(message);
  auto type = r.u8();
  auto length = r.u24();
  if (!type || !length) return Outcome::rejected(Reject::length_mismatch);
  if (*type != kHandshakeClientHello) return Outcome::rejected(Reject::bad_handshake);
  if (*length != r.remaining()) return Outcome::rejected(Reject::length_mismatch);

  // RFC 8446 section 4.1.2 (and RFC 5246 section 7.4.1.2 for the optional extensions).
  auto legacy_version = r.u16();
  auto random = r.take(kRandomBytes);
  auto session_id = r.sub8();
  auto cipher_suites = r.sub16();
  auto compression = r.sub8();
  if (!legacy_version || !random || !session_id || !cipher_suites || !compression)
    return Outcome::rejected(Reject::length_mismatch);
  if (*legacy_version >> 8 != kRecordVersionMajor || (*legacy_version & 0xff) < 1 ||
      session_id->remaining() > kMaxSessionIdBytes || cipher_suites->empty() ||
      cipher_suites->remaining() % 2 != 0 || compression->empty())
    return Outcome::rejected(Reject::bad_handshake);

  Hello hello;
  if (r.empty()) return Outcome::done(std::move(hello));  // pre-extension (TLS 1.0) client
  auto extensions = r.sub16();
  if (!extensions || !r.empty()) return Outcome::rejected(Reject::length_mismatch);

  std::vector<bool> seen(65536);
  while (!extensions->empty()) {
    auto ext_type = extensions->u16();
    auto data = extensions->sub16();
    if (!ext_type || !data) return Outcome::rejected(Reject::length_mismatch);
    if (seen[*ext_type]) return Outcome::rejected(Reject::duplicate_extension);
    seen[*ext_type] = true;
    std::optional<Reject> error;
    switch (*ext_type) {
      case kExtServerName: error = parse_server_name(*data, hello); break;
      case kExtAlpn: error = parse_alpn(*data, hello); break;
      case kExtEncryptedClientHello: hello.ech_offered = true; break;
      default: break;
    }
    if (error) return Outcome::rejected(*error);
  }
  return Outcome::done(std::move(hello));
}

TlsClientHelloParser::TlsClientHelloParser(size_t max_bytes)
    : max_bytes_(std::min(max_bytes, kMaxHelloBytesLimit)) {}

Outcome TlsClientHelloParser::finish(std::span<const uint8_t> message, size_t consumed) {
  Outcome outcome = parse_client_hello(message);
  if (outcome.state == Outcome::State::done) outcome.hello.consumed = consumed;
  joined_ = {};
  verdict_ = outcome;
  return outcome;
}

Outcome TlsClientHelloParser::feed(std::span<const uint8_t> buffered) {
  if (verdict_) return *verdict_;
  auto reject = [this](Reject reason) {
    joined_ = {};
    verdict_ = Outcome::rejected(reason);
    return *verdict_;
  };
  // Judge garbage by its first bytes, before a whole record header has arrived.
  if (next_record_ == 0) {
    if (buffered.size() >= 1 && buffered[0] != kContentHandshake) return reject(Reject::not_tls);
    if (buffered.size() >= 2 && buffered[1] != kRecordVersionMajor) return reject(Reject::not_tls);
  }
  for (;;) {
    if (buffered.size() < next_record_ + kRecordHeaderBytes) return Outcome::need_more();
    auto header = buffered.subspan(next_record_, kRecordHeaderBytes);
    if (header[0] != kContentHandshake || header[1] != kRecordVersionMajor)
      return reject(next_record_ == 0 ? Reject::not_tls : Reject::bad_record);
    if (header[2] < kRecordVersionMinorMin || header[2] > kRecordVersionMinorMax)
      return reject(Reject::bad_record);
    size_t length = static_cast<size_t>(header[3]) << 8 | header[4];
    if (length == 0 || length > kMaxFragmentBytes) return reject(Reject::bad_record);
    size_t record_end = next_record_ + kRecordHeaderBytes + length;
    if (record_end > max_bytes_) return reject(Reject::too_large);
    if (buffered.size() < record_end) return Outcome::need_more();

    auto fragment = buffered.subspan(next_record_ + kRecordHeaderBytes, length);
    next_record_ = record_end;
    std::span<const uint8_t> handshake = fragment;
    if (!joined_.empty() || fragment.size() < kHandshakeHeaderBytes ||
        kHandshakeHeaderBytes + handshake_length(fragment) > fragment.size()) {
      // The message spans records: only now copy its bytes together.
      joined_.insert(joined_.end(), fragment.begin(), fragment.end());
      handshake = joined_;
    }
    if (handshake.size() < kHandshakeHeaderBytes) continue;
    if (handshake[0] != kHandshakeClientHello) return reject(Reject::bad_handshake);
    size_t message_size = kHandshakeHeaderBytes + handshake_length(handshake);
    if (handshake.size() > message_size) return reject(Reject::bad_handshake);  // data after it
    if (handshake.size() == message_size) return finish(handshake, record_end);
    // The fewest bytes the rest could take: full records, each with its own header.
    size_t missing = message_size - handshake.size();
    size_t records = (missing + kMaxFragmentBytes - 1) / kMaxFragmentBytes;
    if (record_end + missing + records * kRecordHeaderBytes > max_bytes_)
      return reject(Reject::too_large);
  }
}

}  // namespace snisplice::hello
