#include "flow/hello/preread.h"

namespace snisplice::hello {

namespace {

std::variant<TlsClientHelloParser, HttpHostParser> make_parser(Protocol protocol,
                                                               size_t max_bytes) {
  switch (protocol) {
    case Protocol::tls: return TlsClientHelloParser(max_bytes);
    case Protocol::http: return HttpHostParser(max_bytes);
  }
  return TlsClientHelloParser(max_bytes);  // unreachable for valid enum values
}

}  // namespace

PrereadParser::PrereadParser(Protocol protocol, size_t max_bytes)
    : parser_(make_parser(protocol, max_bytes)) {}

Outcome PrereadParser::feed(std::span<const uint8_t> buffered) {
  return std::visit([buffered](auto& parser) { return parser.feed(buffered); }, parser_);
}

}  // namespace snisplice::hello
