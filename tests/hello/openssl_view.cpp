#include "openssl_view.h"

#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>

#include <memory>

namespace snisplice::hello::testing {

namespace {

constexpr unsigned kExtEncryptedClientHello = 0xfe0d;

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

// A second, deliberately simple reading of the raw extension bodies OpenSSL hands back.
size_t be16(const unsigned char* p) { return static_cast<size_t>(p[0]) << 8 | p[1]; }

std::optional<std::string> first_host_name(const unsigned char* p, size_t len) {
  if (len < 2 || be16(p) != len - 2) return std::nullopt;
  for (size_t at = 2; at + 3 <= len;) {
    unsigned type = p[at];
    size_t n = be16(p + at + 1);
    if (at + 3 + n > len) return std::nullopt;
    if (type == 0) return std::string(reinterpret_cast<const char*>(p + at + 3), n);
    at += 3 + n;
  }
  return std::nullopt;
}

std::vector<std::string> alpn_names(const unsigned char* p, size_t len) {
  std::vector<std::string> out;
  if (len < 2 || be16(p) != len - 2) return out;
  for (size_t at = 2; at < len && at + 1 + p[at] <= len; at += 1 + p[at])
    out.emplace_back(reinterpret_cast<const char*>(p + at + 1), p[at]);
  return out;
}

int on_client_hello(SSL* ssl, int* alert, void* arg) {
  auto* view = static_cast<OpensslView*>(arg);
  view->hello_seen = true;
  const unsigned char* data = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &data, &len))
    view->host_name = first_host_name(data, len);
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &data, &len))
    view->alpn = alpn_names(data, len);
  view->ech_present = SSL_client_hello_get0_ext(ssl, kExtEncryptedClientHello, &data, &len) == 1;
  *alert = SSL_AD_HANDSHAKE_FAILURE;
  return SSL_CLIENT_HELLO_ERROR;  // seen enough: stop the handshake here
}

}  // namespace

OpensslView openssl_view(std::span<const uint8_t> bytes) {
  OpensslView view;
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return view;
  SSL_CTX_set_min_proto_version(ctx.get(), 0);  // any version: we only want the hello read
  SSL_CTX_set_client_hello_cb(ctx.get(), on_client_hello, &view);
  // OpenSSL 3.0 keeps only extensions it knows; declaring ECH makes get0_ext report it.
  SSL_CTX_add_custom_ext(ctx.get(), kExtEncryptedClientHello, SSL_EXT_CLIENT_HELLO, nullptr,
                         nullptr, nullptr, nullptr, nullptr);
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  if (!ssl) return view;
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  BIO_write(in, bytes.data(), static_cast<int>(bytes.size()));
  BIO_set_mem_eof_return(in, -1);  // end of input reads as "retry", not EOF
  SSL_set_bio(ssl.get(), in, out);  // ssl owns both BIOs now
  SSL_set_accept_state(ssl.get());
  SSL_do_handshake(ssl.get());
  return view;
}

std::string normalized_for_comparison(const std::string& host) {
  std::string out = host;
  if (!out.empty() && out.back() == '.') out.pop_back();
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string compare_with_openssl(std::span<const uint8_t> bytes, const std::string& our_host,
                                 const std::vector<std::string>& our_alpn, bool our_ech) {
  OpensslView view = openssl_view(bytes);
  if (!view.hello_seen) return "OpenSSL did not accept the ClientHello";
  std::string theirs = view.host_name ? normalized_for_comparison(*view.host_name) : "";
  if (theirs != our_host) return "SNI: OpenSSL \"" + theirs + "\", ours \"" + our_host + "\"";
  if (view.alpn != our_alpn) return "ALPN lists differ";
  if (view.ech_present != our_ech) return "ECH presence differs";
  return "";
}

}  // namespace snisplice::hello::testing
