#include "client_hello.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>

namespace snisplice::load {
namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

}  // namespace

tl::expected<std::vector<uint8_t>, std::string> make_client_hello(const std::string& server_name) {
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return tl::unexpected(std::string("SSL_CTX_new failed"));
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  if (!ssl) return tl::unexpected(std::string("SSL_new failed"));
  // SSL_set_bio hands both BIOs to the SSL object, which frees them.
  BIO* incoming = BIO_new(BIO_s_mem());
  BIO* outgoing = BIO_new(BIO_s_mem());
  if (incoming == nullptr || outgoing == nullptr) {
    BIO_free(incoming);
    BIO_free(outgoing);
    return tl::unexpected(std::string("BIO_new failed"));
  }
  SSL_set_bio(ssl.get(), incoming, outgoing);
  if (SSL_set_tlsext_host_name(ssl.get(), server_name.c_str()) != 1) {
    return tl::unexpected("server name refused by OpenSSL: " + server_name);
  }
  SSL_set_connect_state(ssl.get());
  const int rc = SSL_do_handshake(ssl.get());
  if (rc == 1 || SSL_get_error(ssl.get(), rc) != SSL_ERROR_WANT_READ) {
    return tl::unexpected(std::string("handshake did not stop after the ClientHello"));
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(outgoing, &data);
  if (size <= 0) return tl::unexpected(std::string("OpenSSL wrote no ClientHello"));
  return std::vector<uint8_t>(data, data + size);
}

}  // namespace snisplice::load
