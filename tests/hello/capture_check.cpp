// Checks ClientHellos captured from real clients (see capture_client_hellos.py): each must give
// the expected SNI and ALPN fed whole, split in two anywhere, byte by byte and with trailing
// bytes, and OpenSSL must read the same SNI and ALPN from it.
//
// usage: hello_capture_check MANIFEST
// MANIFEST lines: <capture file> TAB <expected host> TAB <expected ALPN, comma-separated>;
// relative capture paths are taken from the manifest's directory.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "feed_check.h"
#include "flow/hello/tls_client_hello.h"
#include "openssl_view.h"

namespace {

using snisplice::hello::Hello;
using snisplice::hello::Outcome;
using snisplice::hello::TlsClientHelloParser;
namespace testing = snisplice::hello::testing;

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, sep);) out.push_back(part);
  return out;
}

// Returns "" when the capture passes, else what failed.
std::string check_capture(const std::string& path, const std::string& host,
                          const std::vector<std::string>& alpn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read " + path;
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Hello expected_hello;
  expected_hello.host = host;
  expected_hello.alpn = alpn;
  expected_hello.consumed = bytes.size();
  Outcome expected = Outcome::done(expected_hello);
  if (auto mismatch = testing::check_feeds([] { return TlsClientHelloParser(); }, bytes, expected))
    return *mismatch;
  return testing::compare_with_openssl(bytes, host, alpn, false);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " MANIFEST\n";
    return 2;
  }
  std::ifstream manifest(argv[1]);
  if (!manifest) {
    std::cerr << "cannot read " << argv[1] << "\n";
    return 2;
  }
  int checked = 0;
  int failed = 0;
  for (std::string line; std::getline(manifest, line);) {
    if (line.empty()) continue;
    auto fields = split(line, '\t');
    fields.resize(3);
    std::filesystem::path capture = std::filesystem::path(argv[1]).parent_path() / fields[0];
    std::string problem = check_capture(capture.string(), fields[1], split(fields[2], ','));
    ++checked;
    if (problem.empty()) {
      std::cout << "ok    " << fields[0] << " host=" << fields[1] << " alpn=" << fields[2] << "\n";
    } else {
      ++failed;
      std::cout << "FAIL  " << fields[0] << ": " << problem << "\n";
    }
  }
  std::cout << checked << " captures checked, " << failed << " failed\n";
  return failed == 0 && checked > 0 ? 0 : 1;
}
