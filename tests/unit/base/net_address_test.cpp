#include <doctest/doctest.h>

#include "base/net_address.h"

using snisplice::Cidr;
using snisplice::IpAddress;
using snisplice::SocketAddress;

TEST_CASE("socket addresses parse in host:port and [v6]:port form") {
  auto v4 = SocketAddress::parse("127.0.0.1:8443");
  REQUIRE(v4);
  CHECK(v4->ip.is_v4());
  CHECK(v4->port == 8443);
  CHECK(v4->to_string() == "127.0.0.1:8443");
  auto v6 = SocketAddress::parse("[::1]:443");
  REQUIRE(v6);
  CHECK_FALSE(v6->ip.is_v4());
  CHECK(v6->to_string() == "[::1]:443");
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "::1:443", "[::1]443",
                          "[127.0.0.1]:80", "host:80", "1.2.3.4:8x", "[::1]:-1"})
    CHECK_MESSAGE(!SocketAddress::parse(bad), bad);
}

TEST_CASE("CIDRs clear host bits and match by prefix") {
  auto net = Cidr::parse("10.1.2.3/16");
  REQUIRE(net);
  CHECK(net->to_string() == "10.1.0.0/16");
  CHECK(net->contains(*IpAddress::parse("10.1.255.255")));
  CHECK_FALSE(net->contains(*IpAddress::parse("10.2.0.0")));
  CHECK_FALSE(net->contains(*IpAddress::parse("::ffff:10.1.0.1")));
  auto odd = Cidr::parse("192.168.0.0/23");
  REQUIRE(odd);
  CHECK(odd->contains(*IpAddress::parse("192.168.1.9")));
  CHECK_FALSE(odd->contains(*IpAddress::parse("192.168.2.0")));
  auto host = Cidr::parse("::1");
  REQUIRE(host);
  CHECK(host->prefix_len == 128);
  CHECK(Cidr::parse("0.0.0.0/0")->contains(*IpAddress::parse("8.8.8.8")));
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "x/8"})
    CHECK_MESSAGE(!Cidr::parse(bad), bad);
}

TEST_CASE("IPv4-mapped IPv6 addresses unmap to plain IPv4") {
  auto mapped = IpAddress::parse("::ffff:127.0.0.1");
  REQUIRE(mapped);
  CHECK(mapped->unmapped() == *IpAddress::parse("127.0.0.1"));
  CHECK(IpAddress::parse("::1")->unmapped() == *IpAddress::parse("::1"));
}
