#include "events/status_server.h"

#include <civetweb.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <thread>

#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include "events/page.h"

namespace snisplice::events {
namespace {

// CivetWeb threads beyond the event streams: /metrics scrapes and the page stay served while
// every subscriber slot is taken.
constexpr unsigned kSpareThreads = 4;
// Each stream holds a thread for its life; CivetWeb starts them all at once.
constexpr uint32_t kMaxStreamThreads = config::kMaxEventSubscribers;
// How long a write may wait on a reader that does not read before the connection is dropped:
// a stalled subscriber holds a thread no longer than this after its queue overflowed.
constexpr const char* kWriteTimeoutMs = "10000";
// With nothing to send, an event stream looks at its subscription this often (a closed or
// cut-off subscription ends the stream within this much).
constexpr auto kStreamPoll = std::chrono::milliseconds(500);
// An idle NDJSON stream writes one space this often: JSON whitespace, so it merely leads the
// next line, and a write is how a client that went away is noticed (a second write to it fails).
constexpr auto kNdjsonKeepalive = std::chrono::seconds(1);

// What the Exposer answered /metrics with.
constexpr const char* kMetricsType = "text/plain; charset=utf-8";

void send_text(mg_connection* conn, int status, const std::string& body, const char* extra_headers = "") {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\n%s\r\n",
            status, mg_get_response_code_text(conn, status), body.size(), extra_headers);
  mg_write(conn, body.data(), body.size());
}

bool is_get(mg_connection* conn) {
  std::string_view method = mg_get_request_info(conn)->request_method;
  if (method == "GET") return true;
  send_text(conn, 405, "only GET is served here\n", "Allow: GET\r\n");
  return false;
}

std::string_view query_of(const mg_connection* conn) {
  const char* query = mg_get_request_info(conn)->query_string;
  return query ? std::string_view(query) : std::string_view();
}

int log_civetweb(const mg_connection*, const char* message) {
  spdlog::debug("metrics.listen: {}", message);
  return 1;  // logged: CivetWeb prints nothing itself
}

// The sender of one WebSocket subscriber: its queue to the socket, in its own thread so that
// CivetWeb's thread keeps reading the client's frames (pings, close).
struct WebSocketClient {
  std::shared_ptr<Subscription> subscription;
  std::thread sender;
};

}  // namespace

tl::expected<std::string, Error> read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return tl::unexpected(Error{"metrics.token_file: cannot read " + path});
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
  if (line.empty()) return tl::unexpected(Error{"metrics.token_file: " + path + " has an empty first line"});
  return line;
}

bool bearer_matches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() < kScheme.size()) return false;
  // The scheme is case-insensitive (RFC 9110 section 11.1); the token is not.
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != std::tolower(kScheme[i])) return false;
  std::string_view given = authorization.substr(kScheme.size());
  unsigned char differ = given.size() == token.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i)
    differ |= static_cast<unsigned char>(given[i] ^ token[i % std::max<size_t>(token.size(), 1)]);
  return differ == 0 && !token.empty();
}

template <auto Method>
int handle(mg_connection* conn, void* self) {
  return (static_cast<StatusServer*>(self)->*Method)(conn);
}
int websocket_connect_thunk(const mg_connection* conn, void* self) {
  // CivetWeb hands a const connection, yet a refusal must be written to it.
  return static_cast<StatusServer*>(self)->websocket_connect(const_cast<mg_connection*>(conn));
}
void websocket_ready_thunk(mg_connection* conn, void* self) { static_cast<StatusServer*>(self)->websocket_ready(conn); }
int websocket_data_ignored(mg_connection*, int, char*, size_t, void*) { return 1; }  // keep the connection
void websocket_close_thunk(const mg_connection* conn, void* self) {
  static_cast<StatusServer*>(self)->websocket_close(conn);
}

tl::expected<std::unique_ptr<StatusServer>, Error> StatusServer::start(
    const SocketAddress& address, std::shared_ptr<prometheus::Registry> registry, EventBus& bus,
    const config::Events& settings) {
  auto access = read_access(settings);
  if (!access) return tl::unexpected(access.error());
  // A CivetWeb thread per stream, fixed at start; a reload may lower the limit, not raise it.
  std::unique_ptr<StatusServer> server(
      new StatusServer(std::move(registry), bus, std::min(settings.max_subscribers, kMaxStreamThreads)));
  if (auto note = server->apply(std::move(*access)); !note.empty()) spdlog::warn("{}", note);

  std::string ports = address.to_string();
  std::string threads = std::to_string(server->stream_threads_ + kSpareThreads);
  const char* options[] = {"listening_ports", ports.c_str(),
                           "num_threads", threads.c_str(),
                           "request_timeout_ms", kWriteTimeoutMs,
                           // One request per connection, as the Exposer did: a kept-alive
                           // connection would hold one of the few threads.
                           "enable_keep_alive", "no",
                           nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = log_civetweb;
  mg_init_data init{&callbacks, server.get(), options};
  char error_text[256] = "";
  unsigned error_code = 0;
  mg_error_data error{&error_code, error_text, sizeof error_text};
  server->context_ = mg_start2(&init, &error);
  if (!server->context_) return tl::unexpected(Error{"metrics.listen " + ports + ": " + error_text});

  mg_context* context = server->context_;
  mg_set_request_handler(context, "/metrics$", handle<&StatusServer::serve_metrics>, server.get());
  mg_set_request_handler(context, "/$", handle<&StatusServer::serve_page>, server.get());
  mg_set_request_handler(context, "/events.ndjson$", handle<&StatusServer::serve_ndjson>, server.get());
  mg_set_request_handler(
      context, "/events$",
      [](mg_connection* conn, void*) {
        send_text(conn, 426, "/events is a WebSocket; /events.ndjson streams the same events over plain HTTP\n",
                  "Upgrade: websocket\r\n");
        return 426;
      },
      nullptr);
  mg_set_websocket_handler(context, "/events$", websocket_connect_thunk, websocket_ready_thunk,
                           websocket_data_ignored, websocket_close_thunk, server.get());
  return server;
}

StatusServer::StatusServer(std::shared_ptr<prometheus::Registry> registry, EventBus& bus, unsigned stream_threads)
    : registry_(std::move(registry)), bus_(bus), stream_threads_(stream_threads) {
  mg_init_library(0);
}

StatusServer::~StatusServer() {
  // Streams end when their subscription closes; CivetWeb then waits for its threads.
  bus_.close_all();
  if (context_) mg_stop(context_);
  mg_exit_library();
}

tl::expected<StatusServer::Access, Error> StatusServer::read_access(const config::Events& settings) {
  Access access;
  access.max_subscribers = settings.max_subscribers;
  if (!settings.token_file.empty()) {
    auto token = read_token_file(settings.token_file);
    if (!token) return tl::unexpected(token.error());
    access.token = std::move(*token);
  }
  return access;
}

std::string StatusServer::apply(Access access) {
  std::string note;
  uint32_t limit = access.max_subscribers;
  if (limit > stream_threads_) {
    note = "metrics.max_subscribers: " + std::to_string(limit) + " is more than the " +
           std::to_string(stream_threads_) + " stream threads started with; " + std::to_string(stream_threads_) +
           " apply until a restart (at most " + std::to_string(kMaxStreamThreads) + ")";
    limit = stream_threads_;
  }
  bus_.set_max_subscribers(limit);
  std::lock_guard lock(token_mutex_);
  token_ = std::move(access.token);
  return note;
}

bool StatusServer::authorised(mg_connection* conn) {
  {
    std::lock_guard lock(token_mutex_);
    if (token_.empty()) return true;
    const char* given = mg_get_header(conn, "Authorization");
    if (given && bearer_matches(given, token_)) return true;
  }
  send_text(conn, 401, "a bearer token is required (metrics.token_file)\n", "WWW-Authenticate: Bearer\r\n");
  return false;
}

std::shared_ptr<Subscription> StatusServer::open_subscription(mg_connection* conn) {
  auto filter = Filter::parse(query_of(conn));
  if (!filter) {
    send_text(conn, 400, filter.error() + "\n");
    return nullptr;
  }
  auto subscription = bus_.subscribe(std::move(*filter));
  if (!subscription) send_text(conn, 503, "every subscriber slot is taken (metrics.max_subscribers)\n");
  return subscription;
}

int StatusServer::serve_metrics(mg_connection* conn) {
  if (!is_get(conn)) return 405;
  std::string body = prometheus::TextSerializer().Serialize(registry_->Collect());
  mg_printf(conn, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", kMetricsType, body.size());
  mg_write(conn, body.data(), body.size());
  return 200;
}

int StatusServer::serve_page(mg_connection* conn) {
  if (!is_get(conn)) return 405;
  if (!authorised(conn)) return 401;
  std::string_view page = status_page();
  // Everything the page needs is inline; it talks only to this server.
  mg_printf(conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
            "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; connect-src 'self'; img-src data:\r\n\r\n",
            page.size());
  mg_write(conn, page.data(), page.size());
  return 200;
}

int StatusServer::serve_ndjson(mg_connection* conn) {
  if (!is_get(conn)) return 405;
  if (!authorised(conn)) return 401;
  auto subscription = open_subscription(conn);
  if (!subscription) return 400;
  // No length and no chunking: the stream ends when the connection does.
  mg_printf(conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n");
  if (auto interval = subscription->filter().aggregate_ms) {
    auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(*interval);
    while (auto summary = subscription->summary_at(next, std::chrono::system_clock::now())) {
      *summary += '\n';
      if (mg_write(conn, summary->data(), summary->size()) <= 0) break;
      next += std::chrono::milliseconds(*interval);
    }
  } else {
    std::string out;
    auto last_write = std::chrono::steady_clock::now();
    while (true) {
      auto batch = subscription->wait(kStreamPoll);
      out.clear();
      for (const auto& line : batch.lines) (out += *line) += '\n';
      auto now = std::chrono::steady_clock::now();
      if (out.empty() && now - last_write >= kNdjsonKeepalive) out = " ";
      if (!out.empty()) {
        if (mg_write(conn, out.data(), out.size()) <= 0) break;
        last_write = now;
      }
      if (batch.state != Subscription::State::open) break;
    }
  }
  bus_.unsubscribe(subscription);
  return 200;
}

int StatusServer::websocket_connect(mg_connection* conn) {
  if (!authorised(conn)) return 1;
  auto subscription = open_subscription(conn);
  if (!subscription) return 1;
  // Owned by the connection from here on: websocket_close takes it back.
  auto client = std::make_unique<WebSocketClient>(WebSocketClient{std::move(subscription), {}});
  mg_set_user_connection_data(conn, client.release());
  return 0;
}

void StatusServer::websocket_ready(mg_connection* conn) {
  auto* client = static_cast<WebSocketClient*>(mg_get_user_connection_data(conn));
  client->sender = std::thread([conn, subscription = client->subscription] {
    auto send = [conn](const std::string& text) {
      return mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_TEXT, text.data(), text.size()) > 0;
    };
    if (auto interval = subscription->filter().aggregate_ms) {
      auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(*interval);
      while (auto summary = subscription->summary_at(next, std::chrono::system_clock::now())) {
        if (!send(*summary)) return;
        next += std::chrono::milliseconds(*interval);
      }
    } else {
      while (true) {
        auto batch = subscription->wait(kStreamPoll);
        for (const auto& line : batch.lines)
          if (!send(*line)) return;
        if (batch.state != Subscription::State::open) break;
      }
    }
    // Cut off or shutting down: say so; CivetWeb closes once the client answers (or times out).
    static constexpr char kGoingAway[] = {0x03, static_cast<char>(0xe9)};  // 1001 (RFC 6455 section 7.4.1)
    mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, kGoingAway, sizeof kGoingAway);
  });
}

void StatusServer::websocket_close(const mg_connection* conn) {
  std::unique_ptr<WebSocketClient> client(static_cast<WebSocketClient*>(mg_get_user_connection_data(conn)));
  if (!client) return;  // refused in websocket_connect
  bus_.unsubscribe(client->subscription);
  if (client->sender.joinable()) client->sender.join();
}

}  // namespace snisplice::events
