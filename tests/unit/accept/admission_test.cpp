#include <doctest/doctest.h>

#include "address_literal.h"
#include "flow/accept/admission.h"

using snisplice::IpAddress;
using snisplice::accept::Admission;

using snisplice::test::ip;

TEST_CASE("per-IP limit refuses the client over it and only that client") {
  Admission admission;
  CHECK(admission.try_admit("tls", ip("192.0.2.1"), 100, 2));
  CHECK(admission.try_admit("tls", ip("192.0.2.1"), 100, 2));
  CHECK_FALSE(admission.try_admit("tls", ip("192.0.2.1"), 100, 2));
  CHECK(admission.try_admit("tls", ip("192.0.2.2"), 100, 2));
  CHECK(admission.active("tls") == 3);
}

TEST_CASE("the listener total refuses everyone once full, and releases make room") {
  Admission admission;
  CHECK(admission.try_admit("tls", ip("192.0.2.1"), 2, 10));
  CHECK(admission.try_admit("tls", ip("192.0.2.2"), 2, 10));
  CHECK_FALSE(admission.try_admit("tls", ip("192.0.2.3"), 2, 10));
  admission.release("tls", ip("192.0.2.1"));
  CHECK(admission.try_admit("tls", ip("192.0.2.3"), 2, 10));
}

TEST_CASE("listeners are counted apart") {
  Admission admission;
  CHECK(admission.try_admit("a", ip("192.0.2.1"), 1, 1));
  CHECK(admission.try_admit("b", ip("192.0.2.1"), 1, 1));
  CHECK_FALSE(admission.try_admit("a", ip("192.0.2.1"), 1, 1));
}

TEST_CASE("IPv6 clients are grouped by /64, IPv4-mapped ones count as IPv4") {
  CHECK(Admission::client_group(ip("2001:db8:1:2:3:4:5:6")) == ip("2001:db8:1:2::"));
  CHECK(Admission::client_group(ip("::ffff:192.0.2.7")) == ip("192.0.2.7"));
  Admission admission;
  CHECK(admission.try_admit("tls", ip("2001:db8:1:2::1"), 100, 1));
  CHECK_FALSE(admission.try_admit("tls", ip("2001:db8:1:2:ffff::9"), 100, 1));  // same /64
  CHECK(admission.try_admit("tls", ip("2001:db8:1:3::1"), 100, 1));             // another /64
  CHECK(admission.try_admit("tls", ip("192.0.2.7"), 100, 1));
  CHECK_FALSE(admission.try_admit("tls", ip("::ffff:192.0.2.7"), 100, 1));
}

TEST_CASE("releasing an unknown listener or client changes nothing") {
  Admission admission;
  admission.release("nope", ip("192.0.2.1"));
  CHECK(admission.try_admit("tls", ip("192.0.2.1"), 1, 1));
  admission.release("tls", ip("192.0.2.9"));
  CHECK(admission.active("tls") == 1);
}
