#include "flow/hello/outcome.h"

namespace snisplice::hello {

std::string_view reject_label(Reject reason) {
  switch (reason) {
    case Reject::not_tls: return "not_tls";
    case Reject::not_http: return "not_http";
    case Reject::too_large: return "too_large";
    case Reject::bad_record: return "bad_record";
    case Reject::bad_handshake: return "bad_handshake";
    case Reject::bad_extension: return "bad_extension";
    case Reject::duplicate_extension: return "duplicate_extension";
    case Reject::multiple_host_names: return "multiple_host_names";
    case Reject::invalid_host_name: return "invalid_host_name";
    case Reject::length_mismatch: return "length_mismatch";
    case Reject::http_bad_request_line: return "http_bad_request_line";
    case Reject::http_bad_header: return "http_bad_header";
    case Reject::http_no_host: return "http_no_host";
    case Reject::http_multiple_host: return "http_multiple_host";
    case Reject::http_host_conflict: return "http_host_conflict";
  }
  return "unknown";  // unreachable for valid enum values; keeps -Wreturn-type quiet
}

}  // namespace snisplice::hello
