#pragma once
// A real TLS ClientHello produced by OpenSSL for a given server name, without any network:
// the handshake is started on memory BIOs and the first flight is taken from the output BIO.
#include <cstdint>
#include <string>
#include <vector>

#include <tl/expected.hpp>

namespace snisplice::load {

tl::expected<std::vector<uint8_t>, std::string> make_client_hello(const std::string& server_name);

}  // namespace snisplice::load
