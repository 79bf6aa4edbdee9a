#include "tls_builder.h"

#include <algorithm>

namespace snisplice::hello::testing {

Bytes bytes_of(std::string_view text) { return Bytes(text.begin(), text.end()); }

void put_u8(Bytes& out, size_t value) { out.push_back(static_cast<uint8_t>(value)); }
void put_u16(Bytes& out, size_t value) {
  put_u8(out, value >> 8);
  put_u8(out, value);
}
void put_u24(Bytes& out, size_t value) {
  put_u8(out, value >> 16);
  put_u16(out, value & 0xffff);
}
void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

Extension sni_entries(const std::vector<std::pair<uint8_t, std::string>>& entries) {
  Bytes list;
  for (const auto& [type, name] : entries) {
    put_u8(list, type);
    put_u16(list, name.size());
    append(list, bytes_of(name));
  }
  Bytes data;
  put_u16(data, list.size());
  append(data, list);
  return {kExtServerName, data};
}

Extension sni(const std::string& host) { return sni_entries({{0, host}}); }

Extension alpn(const std::vector<std::string>& protocols) {
  Bytes list;
  for (const auto& p : protocols) {
    put_u8(list, p.size());
    append(list, bytes_of(p));
  }
  Bytes data;
  put_u16(data, list.size());
  append(data, list);
  return {kExtAlpn, data};
}

Extension ech_outer() {
  Bytes data = {0};                    // ECHClientHelloType outer
  put_u16(data, 0x0001);               // kdf_id HKDF-SHA256
  put_u16(data, 0x0001);               // aead_id AES-128-GCM
  put_u8(data, 7);                     // config_id
  put_u16(data, 32);                   // enc
  append(data, Bytes(32, 0x11));
  put_u16(data, 144);                  // payload
  append(data, Bytes(144, 0x22));
  return {kExtEch, data};
}

Extension grease(uint16_t value, Bytes data) { return {value, std::move(data)}; }

std::vector<Extension> modern_extensions(bool post_quantum) {
  Bytes versions = {6, 0x3a, 0x3a, 0x03, 0x04, 0x03, 0x03};  // GREASE, TLS 1.3, TLS 1.2
  Bytes groups;
  Bytes group_list = {0x3a, 0x3a};
  if (post_quantum) append(group_list, {0x11, 0xec});        // X25519MLKEM768
  append(group_list, {0x00, 0x1d, 0x00, 0x17});              // x25519, secp256r1
  put_u16(groups, group_list.size());
  append(groups, group_list);
  Bytes sigalgs;
  Bytes sigalg_list = {0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x05, 0x03, 0x08, 0x05, 0x05, 0x01};
  put_u16(sigalgs, sigalg_list.size());
  append(sigalgs, sigalg_list);
  Bytes shares;
  put_u16(shares, 0x3a3a);  // GREASE share
  put_u16(shares, 1);
  put_u8(shares, 0);
  if (post_quantum) {
    put_u16(shares, 0x11ec);
    put_u16(shares, 1216);
    append(shares, Bytes(1216, 0x42));
  }
  put_u16(shares, 0x001d);
  put_u16(shares, 32);
  append(shares, Bytes(32, 0x24));
  Bytes key_share;
  put_u16(key_share, shares.size());
  append(key_share, shares);
  return {grease(0x0a0a),
          {kExtSupportedVersions, versions},
          {kExtSupportedGroups, groups},
          {kExtSignatureAlgorithms, sigalgs},
          {kExtKeyShare, key_share},
          grease(0x1a1a, {0})};
}

Bytes client_hello_message(const ClientHelloSpec& spec) {
  Bytes body;
  put_u16(body, spec.legacy_version);
  append(body, Bytes(32, 0x33));  // random
  put_u8(body, spec.session_id.size());
  append(body, spec.session_id);
  put_u16(body, spec.cipher_suites.size());
  append(body, spec.cipher_suites);
  put_u8(body, spec.compression.size());
  append(body, spec.compression);
  if (spec.raw_tail) {
    append(body, *spec.raw_tail);
  } else if (spec.extensions) {
    Bytes exts;
    for (const auto& ext : *spec.extensions) {
      put_u16(exts, ext.type);
      put_u16(exts, ext.data.size());
      append(exts, ext.data);
    }
    put_u16(body, exts.size());
    append(body, exts);
  }
  Bytes message = {1};
  put_u24(message, body.size());
  append(message, body);
  return message;
}

Bytes records(const Bytes& message, size_t fragment_size, uint16_t record_version,
              uint8_t content_type) {
  Bytes out;
  for (size_t at = 0; at < message.size(); at += fragment_size) {
    size_t n = std::min(fragment_size, message.size() - at);
    put_u8(out, content_type);
    put_u16(out, record_version);
    put_u16(out, n);
    out.insert(out.end(), message.begin() + at, message.begin() + at + n);
  }
  return out;
}

Bytes hello_with(std::vector<Extension> extensions) {
  ClientHelloSpec spec;
  spec.extensions = std::move(extensions);
  return records(client_hello_message(spec));
}

}  // namespace snisplice::hello::testing
