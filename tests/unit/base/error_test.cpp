#include <doctest/doctest.h>

#include <cerrno>

#include "base/error.h"

using snisplice::Error;

TEST_CASE("an error without errno says only its context") {
  CHECK(Error{"the resolver needs a WatchFn"}.message() == "the resolver needs a WatchFn");
}

TEST_CASE("a system call's error ends with the errno's text") {
  const Error error = Error::from_errno("bind 127.0.0.1:443", EADDRINUSE);
  CHECK(error.errno_value == EADDRINUSE);
  CHECK(error.message() == std::string("bind 127.0.0.1:443: ") + std::strerror(EADDRINUSE));
}

TEST_CASE("within names the caller's task first and keeps the errno") {
  const Error error = Error::from_errno("bind 127.0.0.1:443", EADDRINUSE).within("listener web");
  CHECK(error.context == "listener web: bind 127.0.0.1:443");
  CHECK(error.errno_value == EADDRINUSE);
  CHECK(error.message() == std::string("listener web: bind 127.0.0.1:443: ") + std::strerror(EADDRINUSE));
}
