#include <doctest/doctest.h>

#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "flow/close/access_log.h"

using snisplice::close::AccessRecord;
using snisplice::close::format_access_record;

TEST_CASE("an access record is one JSON line with every field") {
  AccessRecord r;
  r.start = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));
  r.listener = "tls";
  r.client = "192.0.2.1:5555";
  r.host = "api.example.com";
  r.route = "*.example.com";
  r.backend = "127.0.0.1:9001";
  r.splice_mode = "sockmap";
  r.bytes_client_to_backend = 517;
  r.bytes_backend_to_client = 6503;
  r.duration = std::chrono::microseconds(1500);
  r.result = "proxied";
  CHECK(format_access_record(r) ==
        "{\"time\":\"2023-11-14T22:13:20.123Z\",\"listener\":\"tls\",\"client\":\"192.0.2.1:5555\","
        "\"host\":\"api.example.com\",\"route\":\"*.example.com\",\"backend\":\"127.0.0.1:9001\","
        "\"splice\":\"sockmap\",\"bytes_client_to_backend\":517,\"bytes_backend_to_client\":6503,"
        "\"duration_ms\":1.500,\"result\":\"proxied\"}\n");
}

TEST_CASE("client-supplied text is escaped, control characters included") {
  AccessRecord r;
  r.host = "a\"b\\c\nd\x01\x7f";
  std::string line = format_access_record(r);
  CHECK(line.find(R"("host":"a\"b\\c\nd\u0001\u007f")") != std::string::npos);
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
}

TEST_CASE("open(): a file is created for append; a path that cannot be opened is an Error with errno") {
  using snisplice::close::AccessLog;
  using Kind = snisplice::config::AccessLog::Kind;
  char dir[] = "/tmp/snisplice-access-log-test-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/access.log";

  auto opened = AccessLog::open({Kind::file, path});
  REQUIRE(opened.has_value());
  CHECK(opened->enabled());
  opened->write(AccessRecord{});
  CHECK(std::filesystem::file_size(path) > 0);
  CHECK_FALSE(AccessLog::open({Kind::off, ""})->enabled());

  auto missing = AccessLog::open({Kind::file, std::string(dir) + "/no-such-dir/access.log"});
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().errno_value == ENOENT);
  CHECK(missing.error().message() ==
        "access_log: cannot open " + std::string(dir) + "/no-such-dir/access.log: " + std::strerror(ENOENT));
  std::filesystem::remove_all(dir);
}
