#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "events/status_server.h"

using namespace snisplice::events;

TEST_CASE("bearer_matches: the scheme in any case, the token exactly") {
  CHECK(bearer_matches("Bearer s3cret", "s3cret"));
  CHECK(bearer_matches("bearer s3cret", "s3cret"));
  CHECK(bearer_matches("BEARER s3cret", "s3cret"));
  CHECK_FALSE(bearer_matches("Bearer S3cret", "s3cret"));
  CHECK_FALSE(bearer_matches("Bearer s3cre", "s3cret"));
  CHECK_FALSE(bearer_matches("Bearer s3crett", "s3cret"));
  CHECK_FALSE(bearer_matches("Basic s3cret", "s3cret"));
  CHECK_FALSE(bearer_matches("s3cret", "s3cret"));
  CHECK_FALSE(bearer_matches("Bearer ", ""));  // an empty token never matches
  CHECK_FALSE(bearer_matches("", "s3cret"));
}

TEST_CASE("read_token_file: the first line, trailing blanks removed") {
  std::string path = "/tmp/snisplice_unit_token_" + std::to_string(::getpid());
  {
    std::ofstream(path) << "s3cret \t\r\nsecond line\n";
  }
  CHECK(read_token_file(path) == "s3cret");
  {
    std::ofstream(path) << "\nlater\n";
  }
  CHECK_FALSE(read_token_file(path).has_value());
  std::remove(path.c_str());
  auto missing = read_token_file(path);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message().find("cannot read") != std::string::npos);
}
