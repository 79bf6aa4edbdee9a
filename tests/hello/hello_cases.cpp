#include "hello_cases.h"

#include <algorithm>

namespace snisplice::hello::testing {

namespace {

Outcome done(const Bytes& bytes, std::string host, std::vector<std::string> alpn = {},
             bool ech = false) {
  Hello hello;
  hello.host = std::move(host);
  hello.alpn = std::move(alpn);
  hello.ech_offered = ech;
  hello.consumed = bytes.size();
  return Outcome::done(std::move(hello));
}

Outcome rejected(Reject reason) { return Outcome::rejected(reason); }

Bytes with_spec(void (*edit)(ClientHelloSpec&)) {
  ClientHelloSpec spec;
  spec.extensions = std::vector<Extension>{sni("example.com")};
  edit(spec);
  return records(client_hello_message(spec));
}

Bytes with_tail(const Bytes& tail) {
  ClientHelloSpec spec;
  spec.raw_tail = tail;
  return records(client_hello_message(spec));
}

Bytes ext_raw(uint16_t type, const Bytes& data) {
  return hello_with({{type, data}});
}

Bytes concat(Bytes a, const Bytes& b) {
  append(a, b);
  return a;
}

std::vector<Extension> plus(std::vector<Extension> a, const std::vector<Extension>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes pq_message() {
  ClientHelloSpec spec;
  spec.extensions = plus({sni("pq.example.com"), alpn({"h2", "http/1.1"})}, modern_extensions(true));
  return client_hello_message(spec);
}

}  // namespace

std::vector<Case> tls_cases() {
  std::vector<Case> cases;
  auto add = [&](std::string name, Bytes bytes, Outcome expected) {
    cases.push_back({std::move(name), std::move(bytes), std::move(expected)});
  };
  auto add_done = [&](std::string name, Bytes bytes, std::string host,
                      std::vector<std::string> alpn_list = {}, bool ech = false) {
    Outcome expected = done(bytes, std::move(host), std::move(alpn_list), ech);
    cases.push_back({std::move(name), std::move(bytes), std::move(expected)});
  };

  // --- valid hellos
  add_done("sni only", hello_with({sni("example.com")}), "example.com");
  add_done("sni lower-cased, trailing dot dropped", hello_with({sni("WWW.Example.COM.")}),
           "www.example.com");
  add_done("sni with underscore", hello_with({sni("_acme.example.com")}), "_acme.example.com");
  add_done("sni 63-byte label", hello_with({sni(std::string(63, 'a') + ".com")}),
           std::string(63, 'a') + ".com");
  {
    std::string a63(63, 'a');
    std::string name = a63 + "." + a63 + "." + a63 + "." + std::string(62, 'b');  // 254 bytes
    add_done("sni 255 bytes with trailing dot", hello_with({sni(name + ".")}), name);
  }
  add_done("sni ipv4 literal", hello_with({sni("192.0.2.1")}), "192.0.2.1");
  add_done("no sni", hello_with({alpn({"h2"})}), "", {"h2"});
  {
    ClientHelloSpec spec;
    spec.extensions.reset();
    add_done("no extensions block (TLS 1.0 style)", records(client_hello_message(spec)), "");
  }
  add_done("empty extensions block", hello_with({}), "");
  add_done("alpn list", hello_with({sni("example.com"), alpn({"h2", "http/1.1"})}), "example.com",
           {"h2", "http/1.1"});
  add_done("alpn 255-byte name", hello_with({alpn({std::string(255, 'p')})}), "",
           {std::string(255, 'p')});
  add_done("alpn before sni", hello_with({alpn({"acme-tls/1"}), sni("example.com")}),
           "example.com", {"acme-tls/1"});
  add_done("ech offered routes on outer sni", hello_with({sni("public.example.com"), ech_outer()}),
           "public.example.com", {}, true);
  add_done("sni skips unknown name types", hello_with({sni_entries({{7, "xx"}, {0, "example.com"}})}),
           "example.com");
  add_done("grease everywhere", hello_with(plus({sni("example.com")}, modern_extensions(false))),
           "example.com");
  {
    Bytes message = pq_message();
    add_done("post-quantum hello, one record", records(message), "pq.example.com",
             {"h2", "http/1.1"});
    add_done("post-quantum hello, 16-byte records", records(message, 16), "pq.example.com",
             {"h2", "http/1.1"});
    add_done("post-quantum hello, 1-byte records", records(message, 1), "pq.example.com",
             {"h2", "http/1.1"});
    add_done("post-quantum hello, 1400-byte records", records(message, 1400), "pq.example.com",
             {"h2", "http/1.1"});
  }
  for (uint16_t version : {0x0301, 0x0302, 0x0303, 0x0304}) {
    add_done("record version " + std::to_string(version),
             records(client_hello_message(ClientHelloSpec{}), 16384, version), "");
  }
  {
    ClientHelloSpec spec;
    spec.session_id.clear();
    spec.legacy_version = 0x0301;
    spec.extensions = std::vector<Extension>{sni("old.example.com")};
    add_done("TLS 1.0 legacy version, empty session id", records(client_hello_message(spec)),
             "old.example.com");
  }

  // --- not TLS
  add("plain http", bytes_of("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), rejected(Reject::not_tls));
  add("sslv2 compatible hello", Bytes{0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00},
      rejected(Reject::not_tls));
  add("application data record first", records(client_hello_message(ClientHelloSpec{}), 16384, 0x0303, 23),
      rejected(Reject::not_tls));
  add("handshake type, wrong major version", Bytes{0x16, 0x02, 0x01, 0x00, 0x10},
      rejected(Reject::not_tls));

  // --- record layer
  add("record version 0x0300", records(client_hello_message(ClientHelloSpec{}), 16384, 0x0300),
      rejected(Reject::bad_record));
  add("record version 0x0305", records(client_hello_message(ClientHelloSpec{}), 16384, 0x0305),
      rejected(Reject::bad_record));
  add("empty record", Bytes{0x16, 0x03, 0x01, 0x00, 0x00}, rejected(Reject::bad_record));
  add("record longer than 2^14", Bytes{0x16, 0x03, 0x01, 0x40, 0x01}, rejected(Reject::bad_record));
  {
    Bytes message = client_hello_message(ClientHelloSpec{});
    Bytes first = records(Bytes(message.begin(), message.begin() + 20));
    add("second record is application data",
        concat(first, records(Bytes(message.begin() + 20, message.end()), 16384, 0x0303, 23)),
        rejected(Reject::bad_record));
    add("second record bad version",
        concat(first, records(Bytes(message.begin() + 20, message.end()), 16384, 0x0200)),
        rejected(Reject::bad_record));
    add("first record shorter than the handshake header",
        concat(records(Bytes(message.begin(), message.begin() + 2)),
               records(Bytes(message.begin() + 2, message.end()))),
        done(concat(records(Bytes(message.begin(), message.begin() + 2)),
                    records(Bytes(message.begin() + 2, message.end()))),
             ""));
  }

  // --- handshake framing
  {
    Bytes message = client_hello_message(ClientHelloSpec{});
    message[0] = 2;  // server_hello
    add("server hello instead of client hello", records(message), rejected(Reject::bad_handshake));
    Bytes with_extra = client_hello_message(ClientHelloSpec{});
    with_extra.push_back(0x00);  // a byte after the message inside the same record
    add("bytes after the hello in its record", records(with_extra), rejected(Reject::bad_handshake));
    Bytes split_extra = client_hello_message(ClientHelloSpec{});
    split_extra.push_back(0x00);
    add("bytes after the hello in its last record", records(split_extra, 30),
        rejected(Reject::bad_handshake));
  }
  add("session id of 33 bytes", with_spec([](ClientHelloSpec& s) { s.session_id = Bytes(33, 1); }),
      rejected(Reject::bad_handshake));
  add("odd cipher suites length", with_spec([](ClientHelloSpec& s) { s.cipher_suites = {0x13, 0x01, 0x13}; }),
      rejected(Reject::bad_handshake));
  add("no cipher suites", with_spec([](ClientHelloSpec& s) { s.cipher_suites = {}; }),
      rejected(Reject::bad_handshake));
  add("no compression methods", with_spec([](ClientHelloSpec& s) { s.compression = {}; }),
      rejected(Reject::bad_handshake));
  add("legacy version 0x0200", with_spec([](ClientHelloSpec& s) { s.legacy_version = 0x0200; }),
      rejected(Reject::bad_handshake));
  add("legacy version 0x0300", with_spec([](ClientHelloSpec& s) { s.legacy_version = 0x0300; }),
      rejected(Reject::bad_handshake));

  // --- lengths that disagree with their container
  add("extensions length longer than message", with_tail(Bytes{0x00, 0x08, 0x00, 0x00, 0x00, 0x00}),
      rejected(Reject::length_mismatch));
  add("bytes after the extensions block", with_tail(Bytes{0x00, 0x04, 0xaa, 0xaa, 0x00, 0x00, 0x01}),
      rejected(Reject::length_mismatch));
  add("one stray byte instead of extensions", with_tail(Bytes{0x00}), rejected(Reject::length_mismatch));
  add("extension data longer than the block",
      with_tail(Bytes{0x00, 0x06, 0xaa, 0xaa, 0x00, 0x09, 0x00, 0x00}), rejected(Reject::length_mismatch));
  {
    ClientHelloSpec spec;
    spec.session_id = Bytes(32, 1);
    Bytes message = client_hello_message(spec);
    message[4 + 2 + 32] = 132;  // past the end of the message
    add("session id length overruns the message", records(message), rejected(Reject::length_mismatch));
    Bytes short_message = client_hello_message(spec);
    short_message.resize(4 + 20);
    short_message[1] = 0;
    short_message[2] = 0;
    short_message[3] = 20;
    add("message ends inside random", records(short_message), rejected(Reject::length_mismatch));
  }
  add("sni list length disagrees", ext_raw(kExtServerName, {0x00, 0x05, 0x00, 0x00, 0x01, 'a'}),
      rejected(Reject::length_mismatch));
  add("sni list shorter than extension", ext_raw(kExtServerName, {0x00, 0x04, 0x00, 0x00, 0x01, 'a', 0x00}),
      rejected(Reject::length_mismatch));
  add("sni name length overruns list", ext_raw(kExtServerName, {0x00, 0x04, 0x00, 0x00, 0x05, 'a'}),
      rejected(Reject::length_mismatch));
  add("empty sni extension", ext_raw(kExtServerName, {}), rejected(Reject::length_mismatch));
  add("alpn list length disagrees", ext_raw(kExtAlpn, {0x00, 0x04, 0x02, 'h', '2'}),
      rejected(Reject::length_mismatch));
  add("alpn name overruns list", ext_raw(kExtAlpn, {0x00, 0x03, 0x05, 'h', '2'}),
      rejected(Reject::length_mismatch));

  // --- extension rules
  add("empty server name list", ext_raw(kExtServerName, {0x00, 0x00}), rejected(Reject::bad_extension));
  add("sni without a host_name entry", hello_with({sni_entries({{1, "x"}})}),
      rejected(Reject::bad_extension));
  add("empty alpn list", ext_raw(kExtAlpn, {0x00, 0x00}), rejected(Reject::bad_extension));
  add("alpn list shorter than extension", ext_raw(kExtAlpn, {0x00, 0x03, 0x02, 'h', '2', 0x00}),
      rejected(Reject::length_mismatch));
  add("zero-length alpn name", ext_raw(kExtAlpn, {0x00, 0x04, 0x02, 'h', '2', 0x00}),
      rejected(Reject::bad_extension));
  add("two sni extensions", hello_with({sni("a.example"), sni("b.example")}),
      rejected(Reject::duplicate_extension));
  add("two identical unknown extensions", hello_with({grease(0x0a0a), grease(0x0a0a)}),
      rejected(Reject::duplicate_extension));
  add("two alpn extensions", hello_with({alpn({"h2"}), alpn({"h2"})}),
      rejected(Reject::duplicate_extension));
  add("two host_name entries", hello_with({sni_entries({{0, "a.example"}, {0, "b.example"}})}),
      rejected(Reject::multiple_host_names));

  // --- host names
  for (const char* name : {"", "exa mple.com", "a..b", ".example.com", "example.com..", ".",
                           "host:443", "caf\xc3\xa9.example", "a/b", "*.example.com"}) {
    add(std::string("invalid sni \"") + name + "\"", hello_with({sni(name)}),
        rejected(Reject::invalid_host_name));
  }
  add("invalid sni with NUL", hello_with({sni(std::string("a\0b", 3))}), rejected(Reject::invalid_host_name));
  add("invalid sni 64-byte label", hello_with({sni(std::string(64, 'a') + ".com")}),
      rejected(Reject::invalid_host_name));
  {
    std::string a63(63, 'a');
    std::string name = a63 + "." + a63 + "." + a63 + "." + a63;  // 255 bytes
    add_done("sni 255 bytes", hello_with({sni(name)}), name);
    add("invalid sni 256 bytes", hello_with({sni(name + ".")}), rejected(Reject::invalid_host_name));
  }

  // --- need more
  {
    Bytes whole = records(pq_message(), 512);
    add("truncated in the first record header", Bytes(whole.begin(), whole.begin() + 3), Outcome::need_more());
    add("truncated after some records", Bytes(whole.begin(), whole.begin() + 1200), Outcome::need_more());
    add("all but the last byte", Bytes(whole.begin(), whole.end() - 1), Outcome::need_more());
    add("nothing yet", Bytes{}, Outcome::need_more());
  }

  // --- limits: consumed may be exactly max_bytes, never more
  {
    Bytes whole = records(pq_message());
    Outcome ok = done(whole, "pq.example.com", {"h2", "http/1.1"});
    cases.push_back({"exactly max_bytes", whole, ok, whole.size()});
    cases.push_back({"one byte over max_bytes", whole, rejected(Reject::too_large), whole.size() - 1});
    Bytes split = records(pq_message(), 100);
    Outcome ok_split = done(split, "pq.example.com", {"h2", "http/1.1"});
    cases.push_back({"exactly max_bytes, many records", split, ok_split, split.size()});
    cases.push_back({"one byte over max_bytes, many records", split, rejected(Reject::too_large),
                     split.size() - 1});
    // The handshake header alone shows the message cannot fit: rejected at the first record.
    cases.push_back({"message length beyond max_bytes", Bytes(split.begin(), split.begin() + 105),
                     rejected(Reject::too_large), 1000});
  }
  {
    // A 60 KiB hello in four full records: over the default, fine with the 64 KiB limit.
    std::vector<Extension> exts = {sni("big.example.com")};
    for (uint16_t i = 0; i < 6; ++i) exts.push_back({static_cast<uint16_t>(0x7000 + i), Bytes(10000, 0x61)});
    ClientHelloSpec spec;
    spec.extensions = exts;
    Bytes big = records(client_hello_message(spec));
    cases.push_back({"60 KiB hello over the default limit", big, rejected(Reject::too_large)});
    cases.push_back({"60 KiB hello under a 64 KiB limit", big, done(big, "big.example.com"), 65536});
    cases.push_back({"max_bytes above 64 KiB is clamped", big, done(big, "big.example.com"), 1 << 20});
  }
  return cases;
}

std::vector<Case> http_cases() {
  std::vector<Case> cases;
  auto add = [&](std::string name, std::string text, Outcome expected) {
    cases.push_back({std::move(name), bytes_of(text), std::move(expected)});
  };
  auto add_done = [&](std::string name, std::string text, std::string host) {
    Bytes bytes = bytes_of(text);
    Outcome expected = done(bytes, std::move(host));
    cases.push_back({std::move(name), std::move(bytes), std::move(expected)});
  };

  add_done("host header", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "example.com");
  add_done("host with port, mixed case", "GET / HTTP/1.1\r\nHost: WWW.Example.com:8080\r\n\r\n",
           "www.example.com");
  add_done("host header name is case-insensitive",
           "POST /x HTTP/1.1\r\nUser-Agent: t\r\nhOsT: example.com\r\nAccept: */*\r\n\r\n", "example.com");
  add_done("host value with surrounding whitespace", "GET / HTTP/1.1\r\nHost: \t example.com \t\r\n\r\n",
           "example.com");
  add_done("host with empty port", "GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n", "example.com");
  add_done("host trailing dot", "GET / HTTP/1.1\r\nHost: example.com.\r\n\r\n", "example.com");
  add_done("ipv6 literal with port", "GET / HTTP/1.1\r\nHost: [2001:DB8:0:0::1]:8080\r\n\r\n", "2001:db8::1");
  add_done("ipv6 literal without port", "GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", "::1");
  add_done("ipv4 literal", "GET / HTTP/1.1\r\nHost: 192.0.2.7:80\r\n\r\n", "192.0.2.7");
  add_done("http/1.0 with host", "GET / HTTP/1.0\r\nHost: example.com\r\n\r\n", "example.com");
  add_done("absolute-form target agrees with host",
           "GET http://Example.com:80/path?q HTTP/1.1\r\nHost: example.com\r\n\r\n", "example.com");
  add_done("absolute-form target without host header", "GET HTTP://example.com HTTP/1.0\r\n\r\n",
           "example.com");
  add_done("absolute-form https target", "GET https://example.com/ HTTP/1.1\r\n\r\n", "example.com");
  add_done("bare LF line endings", "GET / HTTP/1.1\nHost: example.com\n\n", "example.com");
  add_done("mixed line endings", "GET / HTTP/1.1\r\nHost: example.com\n\r\n", "example.com");
  add_done("other headers may be empty", "GET / HTTP/1.1\r\nX-Empty:\r\nHost: example.com\r\n\r\n",
           "example.com");
  add_done("non-ascii bytes in other header values",
           "GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\nHost: example.com\r\n\r\n", "example.com");
  add_done("connect request", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
           "example.com");

  add("no host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", rejected(Reject::http_no_host));
  add("two host headers", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
      rejected(Reject::http_multiple_host));
  add("host headers differing only in name case", "GET / HTTP/1.1\r\nHost: a.example\r\nHOST: b.example\r\n\r\n",
      rejected(Reject::http_multiple_host));
  add("absolute-form target conflicts with host",
      "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", rejected(Reject::http_host_conflict));
  add("userinfo in absolute-form target", "GET http://user@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
      rejected(Reject::http_bad_request_line));
  add("obs-fold line", "GET / HTTP/1.1\r\nHost: example.com\r\nX-A: b\r\n c\r\n\r\n",
      rejected(Reject::http_bad_header));
  add("obs-fold continuing host", "GET / HTTP/1.1\r\nHost:\r\n example.com\r\n\r\n",
      rejected(Reject::invalid_host_name));
  add("space before colon", "GET / HTTP/1.1\r\nHost : example.com\r\n\r\n", rejected(Reject::http_bad_header));
  add("header without colon", "GET / HTTP/1.1\r\nHost example.com\r\n\r\n", rejected(Reject::http_bad_header));
  add("empty header name", "GET / HTTP/1.1\r\n: x\r\nHost: example.com\r\n\r\n",
      rejected(Reject::http_bad_header));
  add("control character in a value", "GET / HTTP/1.1\r\nX-A: a\x01z\r\nHost: example.com\r\n\r\n",
      rejected(Reject::http_bad_header));
  add("bare CR in a header", "GET / HTTP/1.1\r\nX-A: a\rHost: b\r\nHost: example.com\r\n\r\n",
      rejected(Reject::http_bad_header));
  add("bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: example.com\r\n\r\n",
      rejected(Reject::http_bad_request_line));
  for (const char* line : {"GET /", "GET / HTTP/2.0", "GET  / HTTP/1.1", "GET / HTTP/1.1 x",
                           "GET / http/1.1", "GET / HTTP/1.", "G(T / HTTP/1.1", "GET / HTTP/1.10",
                           "PRI * HTTP/2.0"}) {
    add(std::string("bad request line \"") + line + "\"",
        std::string(line) + "\r\nHost: example.com\r\n\r\n", rejected(Reject::http_bad_request_line));
  }
  add("tls bytes", "\x16\x03\x01\x00\x10", rejected(Reject::not_http));
  add("leading empty line", "\r\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n", rejected(Reject::not_http));
  add("leading space", " GET / HTTP/1.1\r\n", rejected(Reject::not_http));
  for (const char* host : {"exa mple.com", "a..b", "[::1", "[::1]x", "[192.0.2.1]", "example.com:99999",
                           "example.com:8o", "example.com:123456", "", "a:b:c", "[fe80::1%eth0]"}) {
    add(std::string("invalid host \"") + host + "\"",
        std::string("GET / HTTP/1.1\r\nHost: ") + host + "\r\n\r\n", rejected(Reject::invalid_host_name));
  }
  add("invalid absolute-form host", "GET http://a..b/ HTTP/1.1\r\nHost: a.b\r\n\r\n",
      rejected(Reject::invalid_host_name));

  add("nothing yet", "", Outcome::need_more());
  add("request line only", "GET / HTTP/1.1\r\n", Outcome::need_more());
  add("head without its final empty line", "GET / HTTP/1.1\r\nHost: example.com\r\n", Outcome::need_more());
  add("head ending in one CR", "GET / HTTP/1.1\r\nHost: example.com\r\n\r", Outcome::need_more());

  {
    std::string head = "GET / HTTP/1.1\r\nHost: example.com\r\nX-Pad: " + std::string(200, 'p') + "\r\n\r\n";
    Bytes bytes = bytes_of(head);
    cases.push_back({"head of exactly max_bytes", bytes, done(bytes, "example.com"), bytes.size()});
    cases.push_back({"head one byte over max_bytes", bytes, rejected(Reject::too_large), bytes.size() - 1});
    cases.push_back({"endless header line", bytes_of("GET / HTTP/1.1\r\nX: " + std::string(20000, 'x')),
                     rejected(Reject::too_large)});
  }
  return cases;
}

}  // namespace snisplice::hello::testing
