#pragma once
// How a client connection ended: a closed list, each with its metric label
// (snisplice_connections_total{result}). A new value without a label fails the build.
#include <string_view>

namespace snisplice::session {

enum class Result {
  proxied,               // reached a backend and finished with both sides closed cleanly
  rejected,              // a route with action: reject
  no_route,              // no pattern matched (and no "*"), or a reload removed the listener
  client_closed,         // the client closed before its hello/request head was complete
  client_hello_error,    // malformed, oversized or not the listener's protocol
  client_hello_timeout,  // the hello/request head did not arrive within client_hello_timeout
  proxy_protocol_error,  // a malformed PROXY header, or one from an untrusted source
  resolve_error,         // the name of a resolve route did not resolve (NXDOMAIN, SERVFAIL, timeout)
  connect_error,         // every server of the backend failed or timed out
  denied_address,        // the address policy refused the address to dial
  limit_exceeded,        // max_connections or per_ip_max_connections
  client_reset,          // the client reset or errored after the backend was reached
  backend_reset,         // the backend reset or errored mid-stream
  idle_timeout,          // no traffic either way for timeouts.idle
  splice_budget,         // a peer stopped reading while the kernel kept redirecting to it
  splice_error,          // the kernel repeated bytes where the splice could not cut them out
  shutdown,              // still open when shutdown_grace ran out
};

constexpr std::string_view result_label(Result result) {
  switch (result) {
    case Result::proxied: return "proxied";
    case Result::rejected: return "rejected";
    case Result::no_route: return "no_route";
    case Result::client_closed: return "client_closed";
    case Result::client_hello_error: return "client_hello_error";
    case Result::client_hello_timeout: return "client_hello_timeout";
    case Result::proxy_protocol_error: return "proxy_protocol_error";
    case Result::resolve_error: return "resolve_error";
    case Result::connect_error: return "connect_error";
    case Result::denied_address: return "denied_address";
    case Result::limit_exceeded: return "limit_exceeded";
    case Result::client_reset: return "client_reset";
    case Result::backend_reset: return "backend_reset";
    case Result::idle_timeout: return "idle_timeout";
    case Result::splice_budget: return "splice_budget";
    case Result::splice_error: return "splice_error";
    case Result::shutdown: return "shutdown";
  }
  return "unknown";
}

}  // namespace snisplice::session
