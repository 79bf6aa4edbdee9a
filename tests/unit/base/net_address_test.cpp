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

TEST_CASE("an embedded NUL is no part of a literal") {
  using namespace std::string_view_literals;
  for (auto text : {"127.0.0.1\0"sv, "127.0.0.1\0junk"sv, "::1\0"sv, "\0"sv, "10.0.0.1\0.2"sv})
    CHECK_MESSAGE(!IpAddress::parse(text), "length " << text.size());
  CHECK_FALSE(SocketAddress::parse("127.0.0.1\0:80"sv));
  CHECK_FALSE(SocketAddress::parse("[::1\0]:80"sv));
  CHECK_FALSE(Cidr::parse("10.0.0.0\0/8"sv));
}

TEST_CASE("only the strict literal forms parse: other spellings of loopback are no address") {
  // What inet_aton(3) and URL parsers in browsers read as 127.0.0.1; here they are not
  // addresses at all (the host name rules refuse them too).
  for (const char* text : {"127.1", "127.0.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1",
                           "127.000.000.001", "127.0.0.1.", "127.0.0.1 ", " 127.0.0.1", "127.0.0.256",
                           "1.2.3.4.5", "[::1]", "::1%lo", "fe80::1%eth0", "::ffff:127.0.0.1/128"})
    CHECK_MESSAGE(!IpAddress::parse(text), text);
  // The strict forms of this host's addresses all parse, each to what it encodes.
  CHECK(IpAddress::parse("127.0.0.1")->to_string() == "127.0.0.1");
  CHECK(IpAddress::parse("0.0.0.0")->to_string() == "0.0.0.0");
  CHECK(IpAddress::parse("0:0:0:0:0:0:0:1")->to_string() == "::1");
  CHECK(IpAddress::parse("::FFFF:7F00:1")->unmapped() == *IpAddress::parse("127.0.0.1"));
  CHECK(IpAddress::parse("::ffff:127.0.0.1")->unmapped().is_v4());
  CHECK_FALSE(IpAddress::parse("::127.0.0.1")->is_v4());   // IPv4-compatible: stays IPv6
  CHECK(IpAddress::parse("64:ff9b::127.0.0.1")->to_string() == "64:ff9b::7f00:1");
}

TEST_CASE("ends_in_a_number: the URL Standard's test for names that spell an IPv4 number") {
  for (const char* numeric : {"127.1", "2130706433", "0x7f000001", "0X7F000001", "a.0x", "a.0xff.", "1.2.3.4.5",
                              "localhost.127", "127.0.0.1", "127.0.0.1.", "0"})
    CHECK_MESSAGE(snisplice::ends_in_a_number(numeric), numeric);
  for (const char* name : {"example.com", "127.0.0.1.nip.io", "0x7f000001.example", "a.0xg", "1e100", "a.1b",
                           "", ".", "a.", "x1"})
    CHECK_MESSAGE(!snisplice::ends_in_a_number(name), name);
}
