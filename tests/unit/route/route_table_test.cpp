#include "flow/route/route_table.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using snisplice::route::Entry;
using snisplice::route::RouteTable;

namespace {

const std::vector<std::string> kNoAlpn;

RouteTable build(std::vector<Entry> entries) {
  auto table = RouteTable::build(std::move(entries));
  REQUIRE_MESSAGE(table.has_value(), (table ? "" : table.error()));
  return std::move(*table);
}

std::optional<uint32_t> match(const RouteTable& table, std::string_view host,
                              const std::vector<std::string>& alpn = kNoAlpn) {
  return table.match(host, alpn);
}

std::string build_error(std::vector<Entry> entries) {
  auto table = RouteTable::build(std::move(entries));
  REQUIRE_FALSE(table.has_value());
  return table.error();
}

}  // namespace

TEST_CASE("exact pattern matches only that name") {
  auto table = build({{"api.example.com", {}, 1}});
  CHECK(match(table, "api.example.com") == 1u);
  CHECK(match(table, "x.api.example.com") == std::nullopt);
  CHECK(match(table, "example.com") == std::nullopt);
  CHECK(match(table, "api.example.com.evil.tld") == std::nullopt);
}

TEST_CASE("star-dot pattern matches names strictly below, not the apex") {
  auto table = build({{"*.example.com", {}, 1}});
  CHECK(match(table, "www.example.com") == 1u);
  CHECK(match(table, "a.b.example.com") == 1u);
  CHECK(match(table, "example.com") == std::nullopt);
  CHECK(match(table, "badexample.com") == std::nullopt);
}

TEST_CASE("dot pattern matches the apex and names below") {
  auto table = build({{".example.org", {}, 1}});
  CHECK(match(table, "example.org") == 1u);
  CHECK(match(table, "www.example.org") == 1u);
  CHECK(match(table, "a.b.example.org") == 1u);
  CHECK(match(table, "notexample.org") == std::nullopt);
}

TEST_CASE("regex must match the whole name") {
  auto table = build({{"~shop[0-9]+\\.example\\.net", {}, 1}});
  CHECK(match(table, "shop12.example.net") == 1u);
  CHECK(match(table, "shop.example.net") == std::nullopt);
  CHECK(match(table, "xshop1.example.net") == std::nullopt);
  CHECK(match(table, "shop1.example.net.evil.tld") == std::nullopt);
}

TEST_CASE("regex matching is case-insensitive") {
  auto table = build({{"~Shop[0-9]+\\.EXAMPLE\\.net", {}, 1}});
  CHECK(match(table, "shop1.example.net") == 1u);
  CHECK(match(table, "SHOP1.Example.NET") == 1u);
}

TEST_CASE("default pattern matches everything, including no name") {
  auto table = build({{"*", {}, 9}});
  CHECK(match(table, "anything.example") == 9u);
  CHECK(match(table, "") == 9u);
}

TEST_CASE("a connection without a name matches only the default") {
  auto without_default = build({{"~.*", {}, 2}, {".example", {}, 1}});
  CHECK(match(without_default, "") == std::nullopt);
  CHECK(match(without_default, ".") == std::nullopt);
  auto table = build({{"~.*", {}, 2}, {"*", {}, 3}});
  CHECK(match(table, "") == 3u);
  CHECK(match(table, "x") == 2u);
}

TEST_CASE("matching is case-insensitive for exact and suffix patterns") {
  auto table = build({{"API.Example.COM", {}, 1}, {"*.Web.Example.com", {}, 2}, {".ORG.example", {}, 3}});
  CHECK(match(table, "api.example.com") == 1u);
  CHECK(match(table, "aPi.ExAmPlE.cOm") == 1u);
  CHECK(match(table, "WWW.WEB.EXAMPLE.COM") == 2u);
  CHECK(match(table, "Org.Example") == 3u);
}

TEST_CASE("one trailing dot is ignored in hosts and patterns") {
  auto table = build({{"api.example.com.", {}, 1}, {"*.example.net", {}, 2}, {".example.org.", {}, 3}});
  CHECK(match(table, "api.example.com") == 1u);
  CHECK(match(table, "api.example.com.") == 1u);
  CHECK(match(table, "www.example.net.") == 2u);
  CHECK(match(table, "example.org.") == 3u);
  CHECK(match(table, "api.example.com..") == std::nullopt);
}

TEST_CASE("IDN patterns in U-label form match the A-label host") {
  auto table = build({{"bücher.example", {}, 1}, {"*.münchen.example", {}, 2}, {".köln.example", {}, 3}});
  CHECK(match(table, "xn--bcher-kva.example") == 1u);
  CHECK(match(table, "XN--BCHER-KVA.example") == 1u);
  CHECK(match(table, "www.xn--mnchen-3ya.example") == 2u);
  CHECK(match(table, "xn--kln-sna.example") == 3u);
}

TEST_CASE("precedence: exact beats suffix") {
  auto table = build({{"*.example.com", {}, 1}, {".example.com", {}, 2}, {"api.example.com", {}, 3}});
  CHECK(match(table, "api.example.com") == 3u);
}

TEST_CASE("precedence: the longest suffix wins regardless of table order") {
  auto table = build({{".com", {}, 1}, {"*.example.com", {}, 2}, {".a.example.com", {}, 3}});
  CHECK(match(table, "x.a.example.com") == 3u);
  CHECK(match(table, "a.example.com") == 3u);
  CHECK(match(table, "b.example.com") == 2u);
  CHECK(match(table, "example.com") == 1u);
}

TEST_CASE("precedence: at equal suffix, star-dot takes names below and dot keeps the apex") {
  auto table = build({{".example.com", {}, 1}, {"*.example.com", {}, 2}});
  CHECK(match(table, "example.com") == 1u);
  CHECK(match(table, "www.example.com") == 2u);
}

TEST_CASE("precedence: suffix beats regex") {
  auto table = build({{"~.*\\.example\\.com", {}, 1}, {"*.example.com", {}, 2}});
  CHECK(match(table, "www.example.com") == 2u);
}

TEST_CASE("precedence: regexes in table order") {
  auto table = build({{"~www\\..*", {}, 1}, {"~.*\\.example\\.com", {}, 2}});
  CHECK(match(table, "www.example.com") == 1u);
  CHECK(match(table, "api.example.com") == 2u);
}

TEST_CASE("precedence: default comes last") {
  auto table = build({{"*", {}, 9}, {"~api\\..*", {}, 1}});
  CHECK(match(table, "api.example.com") == 1u);
  CHECK(match(table, "other.example.com") == 9u);
}

TEST_CASE("alpn: a matching condition wins over the unconditioned entry of the same pattern") {
  auto table = build({{"api.example.com", {}, 1}, {"api.example.com", {"acme-tls/1"}, 2}});
  CHECK(match(table, "api.example.com", {"h2", "acme-tls/1"}) == 2u);
  CHECK(match(table, "api.example.com", {"h2"}) == 1u);
  CHECK(match(table, "api.example.com") == 1u);
}

TEST_CASE("alpn: ids compare byte for byte") {
  auto table = build({{"api.example.com", {"h2"}, 2}, {"api.example.com", {}, 1}});
  CHECK(match(table, "api.example.com", {"H2"}) == 1u);
}

TEST_CASE("alpn: an unmatched condition falls through to lower-precedence patterns") {
  auto table = build({{"api.example.com", {"acme-tls/1"}, 1}, {"*.example.com", {}, 2}, {"*", {"h2"}, 3}, {"*", {}, 4}});
  CHECK(match(table, "api.example.com", {"acme-tls/1"}) == 1u);
  CHECK(match(table, "api.example.com", {"http/1.1"}) == 2u);
  CHECK(match(table, "other.net", {"h2"}) == 3u);
  CHECK(match(table, "other.net", {"http/1.1"}) == 4u);
}

TEST_CASE("alpn: conditioned entries of one pattern are tried in table order") {
  auto table = build({{"x.example", {"h2"}, 1}, {"x.example", {"http/1.1"}, 2}});
  CHECK(match(table, "x.example", {"http/1.1", "h2"}) == 1u);
  CHECK(match(table, "x.example", {"http/1.1"}) == 2u);
  CHECK(match(table, "x.example", {"spdy/3"}) == std::nullopt);
}

TEST_CASE("build rejects duplicates after normalisation") {
  CHECK(build_error({{"a.example", {}, 1}, {"A.Example.", {}, 2}}).find("duplicate") != std::string::npos);
  CHECK(build_error({{"*", {}, 1}, {"*", {}, 2}}).find("duplicate") != std::string::npos);
  CHECK(build_error({{"~a.*", {}, 1}, {"~a.*", {}, 2}}).find("duplicate") != std::string::npos);
  CHECK(build_error({{"a.example", {"h2"}, 1}, {"a.example", {"x", "h2"}, 2}}).find("duplicate") != std::string::npos);
  CHECK(build_error({{"a.example", {"h2", "h2"}, 1}}).find("duplicate") != std::string::npos);
  CHECK(build_error({{"bücher.example", {}, 1}, {"xn--bcher-kva.example", {}, 2}}).find("entry 1") != std::string::npos);
  // Different kinds on one name are distinct patterns.
  CHECK(RouteTable::build({{"a.example", {}, 1}, {".a.example", {}, 2}, {"*.a.example", {}, 3}}).has_value());
}

TEST_CASE("build errors name the entry and the pattern") {
  CHECK(build_error({{"*.example.com", {}, 1}, {"*.example.com", {}, 2}}) ==
        "entry 1: duplicate pattern \"*.example.com\"");
}

TEST_CASE("IDN patterns in upper case and already in A-label form are equivalent") {
  auto table = build({{"BÜCHER.example", {}, 1}, {"*.XN--MNCHEN-3YA.example", {}, 2}});
  CHECK(match(table, "xn--bcher-kva.example") == 1u);
  CHECK(match(table, "a.xn--mnchen-3ya.example") == 2u);
  CHECK(build_error({{"bad\xff\xfe.example", {}, 1}}).find("bad pattern") != std::string::npos);
}

TEST_CASE("build rejects bad regexes") {
  auto error = build_error({{"~shop[0-9", {}, 1}});
  CHECK(error.find("bad regex") != std::string::npos);
  CHECK(error.find("entry 0") != std::string::npos);
  CHECK(build_error({{"~", {}, 1}}).find("empty regex") != std::string::npos);
}

TEST_CASE("build rejects malformed patterns") {
  for (const char* bad : {"", ".", "*.", "a..b", "*.*.example", "a*.example", "exa mple.com", "a/b", "..a",
                          "**", "*.a..b"}) {
    CAPTURE(bad);
    CHECK(build_error({{bad, {}, 1}}).find("bad pattern") != std::string::npos);
  }
  CHECK(build_error({{std::string(64, 'a') + ".example", {}, 1}}).find("63") != std::string::npos);
  CHECK(build_error({{"a.example", {""}, 1}}).find("empty ALPN") != std::string::npos);
  CHECK(RouteTable::build({{std::string(63, 'a') + ".under_score-ok.example", {}, 1}}).has_value());
}

TEST_CASE("lookup of over-long host names still answers") {
  auto table = build({{"*.example.com", {}, 1}, {"*", {}, 2}});
  std::string host = std::string(300, 'a') + ".example.com";
  CHECK(match(table, host) == 1u);
  CHECK(match(table, std::string(400, 'b')) == 2u);
}
