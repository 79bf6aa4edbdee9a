#pragma once
// The HTTP side of `metrics.listen`, one CivetWeb server (Debian's libcivetweb, the library
// prometheus-cpp's Exposer embeds) serving:
//   GET /metrics        Prometheus text, as the Exposer served it; always open
//   GET /               the status page, shipped inside the binary
//   GET /events         WebSocket: one JSON event per text frame
//   GET /events.ndjson  the same events as newline-delimited JSON, for curl -N and scripts
// Both event streams take the filters of filter.h, count against metrics.max_subscribers, and,
// with metrics.token_file set, want "Authorization: Bearer <token>" (as does the page).
// Nothing served changes any state.
#include <memory>
#include <mutex>
#include <string>

#include <prometheus/registry.h>
#include <tl/expected.hpp>

#include "base/error.h"
#include "base/net_address.h"
#include "config/config.h"
#include "events/bus.h"

struct mg_context;
struct mg_connection;

namespace snisplice::events {

class StatusServer {
 public:
  // Listens on `address` (the token file read first); an error says why it cannot.
  static tl::expected<std::unique_ptr<StatusServer>, Error> start(
      const SocketAddress& address, std::shared_ptr<prometheus::Registry> registry, EventBus& bus,
      const config::Events& settings);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  // Who may subscribe, read from the configuration (and its token file) before a reload
  // commits to anything, applied once it does.
  struct Access {
    std::string token;  // empty: no token asked for
    uint32_t max_subscribers = 0;
  };
  static tl::expected<Access, Error> read_access(const config::Events& settings);
  // A note (non-empty) when part of it waits for a restart.
  std::string apply(Access access);

 private:
  StatusServer(std::shared_ptr<prometheus::Registry> registry, EventBus& bus, unsigned stream_threads);

  // Request handlers; each returns the HTTP status it sent (CivetWeb's convention).
  int serve_metrics(mg_connection* conn);
  int serve_page(mg_connection* conn);
  int serve_ndjson(mg_connection* conn);
  // WebSocket: connect (authorise, subscribe; non-zero refuses), ready (start the sender),
  // close (unsubscribe, stop the sender).
  int websocket_connect(mg_connection* conn);
  void websocket_ready(mg_connection* conn);
  void websocket_close(const mg_connection* conn);

  bool authorised(mg_connection* conn);
  // Parses the filter and subscribes, or sends the error response (400, 503) and returns null.
  std::shared_ptr<Subscription> open_subscription(mg_connection* conn);

  std::shared_ptr<prometheus::Registry> registry_;
  EventBus& bus_;
  const unsigned stream_threads_;  // CivetWeb threads set aside for event streams
  std::mutex token_mutex_;
  std::string token_;  // empty: no token asked for
  mg_context* context_ = nullptr;

  template <auto Method>
  friend int handle(mg_connection* conn, void* self);
  friend int websocket_connect_thunk(const mg_connection* conn, void* self);
  friend void websocket_ready_thunk(mg_connection* conn, void* self);
  friend void websocket_close_thunk(const mg_connection* conn, void* self);
};

// The first line of a token file, trailing blanks removed; an error for a missing,
// unreadable or empty file.
tl::expected<std::string, Error> read_token_file(const std::string& path);

// "Bearer <token>" compared in time independent of where it differs.
bool bearer_matches(std::string_view authorization, std::string_view token);

}  // namespace snisplice::events
