// snisplice_load: load generator and backend for side-by-side proxy benchmarks.
//
//   snisplice_load serve --listen 127.0.0.1:19101
//   snisplice_load stream --target 127.0.0.1:19201 --sni bench.localhost --direction up
//   snisplice_load pingpong --target ... ; snisplice_load reconnect --target ...
//
// Every client connection starts with a real ClientHello (made by OpenSSL for --sni) and a
// 16-byte control header telling the backend what to do; proxies route on the hello and pass
// both through. Results go to stdout as one JSON object. Everything is bounded in time and
// count, and only loopback addresses and bench/run-peers' namespace addresses (198.51.100.0/24)
// are accepted.
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "client_hello.h"
#include "control.h"
#include "socket_io.h"

namespace snisplice::load {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBulkChunk = 256 * 1024;
constexpr double kBackendIoTimeoutSeconds = 30;
constexpr double kClientIoTimeoutSeconds = 15;
constexpr size_t kMaxHelloRecord = 16384 + 2048;  // TLS record limit plus expansion slack

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// Sleeps as needed so that bytes sent since the start stay at or under the rate.
class Pacer {
 public:
  explicit Pacer(uint32_t rate_mbit) : rate_mbit_(rate_mbit), start_(Clock::now()) {}
  void sent(size_t bytes) {
    if (rate_mbit_ == 0) return;
    total_ += bytes;
    const auto due = start_ + std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(total_) * 8e3 / rate_mbit_));
    std::this_thread::sleep_until(due);
  }

 private:
  uint32_t rate_mbit_;
  Clock::time_point start_;
  uint64_t total_ = 0;
};

// ---- backend ---------------------------------------------------------------------------------

// Reads one TLS handshake record (the ClientHello) and the control header.
std::optional<Control> read_preamble(int fd) {
  std::array<uint8_t, 5> header{};
  if (read_exact(fd, header) != IoResult::ok || header[0] != 0x16) return std::nullopt;
  const size_t length = (size_t{header[3]} << 8) | header[4];
  if (length == 0 || length > kMaxHelloRecord) return std::nullopt;
  std::vector<uint8_t> body(length);
  if (read_exact(fd, body) != IoResult::ok) return std::nullopt;
  std::array<uint8_t, kControlSize> control{};
  if (read_exact(fd, control) != IoResult::ok) return std::nullopt;
  return decode(control);
}

void serve_connection(UniqueFd fd) {
  set_nodelay(fd.get());
  set_io_timeout(fd.get(), kBackendIoTimeoutSeconds);
  const auto control = read_preamble(fd.get());
  if (!control || write_all(fd.get(), kReady) != IoResult::ok) return;
  std::vector<uint8_t> buffer(kBulkChunk);
  switch (control->action) {
    case BackendAction::sink: {
      SinkReport report;
      const auto window = std::chrono::milliseconds(control->duration_ms);
      std::optional<Clock::time_point> first;
      for (;;) {
        const ssize_t n = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // the client went away before the window ended: no report
        const auto now = Clock::now();
        if (!first) first = now;
        report.bytes += static_cast<uint64_t>(n);
        if (now - *first >= window) {
          report.nanoseconds = static_cast<uint64_t>(std::chrono::nanoseconds(now - *first).count());
          break;
        }
      }
      if (write_all(fd.get(), encode(report)) != IoResult::ok) return;
      // Keep reading so the sender is never stuck, until it closes.
      while (::recv(fd.get(), buffer.data(), buffer.size(), 0) > 0) {
      }
      break;
    }
    case BackendAction::source: {
      // The client closes when its window ends; the bound only stops a sender nobody reads.
      const auto bound = Clock::now() + std::chrono::milliseconds(control->duration_ms) * 4 + std::chrono::seconds(10);
      Pacer pacer(control->rate_mbit);
      while (Clock::now() < bound) {
        if (write_all(fd.get(), buffer) != IoResult::ok) return;
        pacer.sent(buffer.size());
      }
      break;
    }
    case BackendAction::echo:
      for (;;) {
        const ssize_t n = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (write_all(fd.get(), std::span(buffer.data(), static_cast<size_t>(n))) != IoResult::ok) break;
      }
      break;
  }
}

std::atomic<bool> g_stop_requested{false};  // set only by the signal handler
void request_stop(int) { g_stop_requested.store(true); }

int run_serve(const SocketAddress& listen_address, double max_seconds, int max_connections) {
  auto listener = listen_on(listen_address);
  if (!listener) {
    fmt::print(stderr, "serve: {}\n", listener.error());
    return 1;
  }
  std::signal(SIGTERM, request_stop);
  std::signal(SIGINT, request_stop);
  std::atomic<int> active{0};
  uint64_t accepted = 0;
  const auto deadline = Clock::now() + std::chrono::duration<double>(max_seconds);
  fmt::print(stderr, "serve: listening on {}\n", listen_address.to_string());
  while (!g_stop_requested.load() && Clock::now() < deadline) {
    pollfd pfd{listener->get(), POLLIN, 0};
    if (::poll(&pfd, 1, 200) <= 0) continue;
    UniqueFd fd(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) continue;
    if (active.load() >= max_connections) continue;  // closed at once: over the bound
    ++accepted;
    active.fetch_add(1);
    std::thread([conn = std::move(fd), &active]() mutable {
      serve_connection(std::move(conn));
      active.fetch_sub(1);
    }).detach();
  }
  fmt::print(stderr, "serve: stopping after {} connections\n", accepted);
  // Detached connection threads end with the process.
  std::fflush(stderr);
  std::_Exit(0);
}

// ---- clients ---------------------------------------------------------------------------------

struct ClientSetup {
  SocketAddress target;
  std::vector<uint8_t> hello;
};

tl::expected<UniqueFd, std::string> open_session(const ClientSetup& setup, const Control& control) {
  auto fd = connect_to(setup.target);
  if (!fd) return fd;
  set_io_timeout(fd->get(), kClientIoTimeoutSeconds);
  std::vector<uint8_t> preamble = setup.hello;
  const auto header = encode(control);
  preamble.insert(preamble.end(), header.begin(), header.end());
  if (write_all(fd->get(), preamble) != IoResult::ok) return tl::unexpected(std::string("preamble write failed"));
  std::array<uint8_t, kReady.size()> ready{};
  if (read_exact(fd->get(), ready) != IoResult::ok || ready != kReady) {
    return tl::unexpected(std::string("no ready answer from the backend"));
  }
  return fd;
}

struct StreamResult {
  uint64_t bytes = 0;
  double seconds = 0;  // the receiver's measurement window
  std::string error;
};

// Client to backend: send until the backend reports what it received in its window (so bytes
// a proxy buffered but never delivered do not count).
StreamResult stream_up(const ClientSetup& setup, uint32_t duration_ms, uint32_t rate_mbit) {
  auto fd = open_session(setup, Control{BackendAction::sink, duration_ms, 0});
  if (!fd) return {0, 0, fd.error()};
  std::atomic<bool> reported{false};
  std::thread sender([&] {
    std::vector<uint8_t> buffer(kBulkChunk, 0x5a);
    Pacer pacer(rate_mbit);
    while (!reported.load() && write_all(fd->get(), buffer) == IoResult::ok) {
      pacer.sent(buffer.size());
    }
  });
  std::array<uint8_t, kSinkReportSize> bytes{};
  const IoResult got = read_exact(fd->get(), bytes);
  reported.store(true);
  sender.join();
  if (got != IoResult::ok) return {0, 0, "no report from the backend (connection closed or reset)"};
  const SinkReport report = decode_report(bytes);
  return {report.bytes, static_cast<double>(report.nanoseconds) / 1e9, ""};
}

// Backend to client: count what arrives for the window from the first byte, then close.
StreamResult stream_down(const ClientSetup& setup, uint32_t duration_ms, uint32_t rate_mbit) {
  StreamResult result;
  auto fd = open_session(setup, Control{BackendAction::source, duration_ms, rate_mbit});
  if (!fd) return {0, 0, fd.error()};
  std::vector<uint8_t> buffer(kBulkChunk);
  const auto window = std::chrono::milliseconds(duration_ms);
  std::optional<Clock::time_point> first;
  for (;;) {
    const ssize_t n = ::recv(fd->get(), buffer.data(), buffer.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      result.error = n == 0 ? "EOF before the window ended" : std::string("recv: ") + std::strerror(errno);
      return result;
    }
    const auto now = Clock::now();
    if (!first) first = now;
    result.bytes += static_cast<uint64_t>(n);
    if (now - *first >= window) {
      result.seconds = seconds_between(*first, now);
      return result;
    }
  }
}

int run_stream(const ClientSetup& setup, const std::string& direction, int connections, double seconds,
               uint32_t rate_mbit) {
  const bool up = direction == "up" || direction == "both";
  const bool down = direction == "down" || direction == "both";
  const auto duration_ms = static_cast<uint32_t>(seconds * 1000);
  std::vector<StreamResult> up_results(up ? connections : 0), down_results(down ? connections : 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < connections; ++i) {
    if (up) threads.emplace_back([&, i] { up_results[i] = stream_up(setup, duration_ms, rate_mbit); });
    if (down) threads.emplace_back([&, i] { down_results[i] = stream_down(setup, duration_ms, rate_mbit); });
  }
  for (auto& t : threads) t.join();
  // Connections run side by side, so the aggregate rate is the sum of each one's rate.
  auto summarize = [&](const std::vector<StreamResult>& results, uint64_t& bytes, double& gbit, int& errors) {
    for (const auto& r : results) {
      bytes += r.bytes;
      if (!r.error.empty()) {
        ++errors;
        fmt::print(stderr, "stream: {}\n", r.error);
      } else if (r.seconds > 0) {
        gbit += static_cast<double>(r.bytes) * 8 / r.seconds / 1e9;
      }
    }
  };
  uint64_t up_bytes = 0, down_bytes = 0;
  double up_gbit = 0, down_gbit = 0;
  int errors = 0;
  summarize(up_results, up_bytes, up_gbit, errors);
  summarize(down_results, down_bytes, down_gbit, errors);
  fmt::print(
      "{{\"mode\":\"stream\",\"direction\":\"{}\",\"connections\":{},\"seconds\":{:.3f},\"rate_mbit\":{},"
      "\"up_bytes\":{},\"up_gbit_per_s\":{:.3f},\"down_bytes\":{},\"down_gbit_per_s\":{:.3f},\"errors\":{}}}\n",
      direction, connections, seconds, rate_mbit, up_bytes, up_gbit, down_bytes, down_gbit, errors);
  return errors == 0 ? 0 : 1;
}

double percentile_us(std::vector<double>& sorted_ns, double fraction) {
  if (sorted_ns.empty()) return 0;
  const size_t index = std::min(sorted_ns.size() - 1, static_cast<size_t>(fraction * sorted_ns.size()));
  return sorted_ns[index] / 1000.0;
}

int run_pingpong(const ClientSetup& setup, int connections, double seconds, uint64_t max_exchanges,
                 size_t message_size) {
  constexpr int kWarmupExchanges = 20;
  std::mutex samples_mutex;
  std::vector<double> samples_ns;
  std::atomic<int> errors{0};
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&] {
      std::vector<double> local;
      auto fd = open_session(setup, Control{BackendAction::echo, 0, 0});
      if (!fd) {
        fmt::print(stderr, "pingpong: {}\n", fd.error());
        errors.fetch_add(1);
        return;
      }
      std::vector<uint8_t> request(message_size, 0x42), reply(message_size);
      for (uint64_t i = 0; i < max_exchanges + kWarmupExchanges && Clock::now() < deadline; ++i) {
        const auto sent = Clock::now();
        if (write_all(fd->get(), request) != IoResult::ok || read_exact(fd->get(), reply) != IoResult::ok) {
          errors.fetch_add(1);
          break;
        }
        if (i >= kWarmupExchanges) local.push_back(std::chrono::duration<double, std::nano>(Clock::now() - sent).count());
      }
      std::lock_guard lock(samples_mutex);
      samples_ns.insert(samples_ns.end(), local.begin(), local.end());
    });
  }
  for (auto& t : threads) t.join();
  std::sort(samples_ns.begin(), samples_ns.end());
  fmt::print(
      "{{\"mode\":\"pingpong\",\"connections\":{},\"message_bytes\":{},\"exchanges\":{},"
      "\"p50_us\":{:.2f},\"p99_us\":{:.2f},\"errors\":{}}}\n",
      connections, message_size, samples_ns.size(), percentile_us(samples_ns, 0.50),
      percentile_us(samples_ns, 0.99), errors.load());
  return errors.load() == 0 && !samples_ns.empty() ? 0 : 1;
}

// Connect, hello, one small exchange, close: what a proxy costs per connection.
int run_reconnect(const ClientSetup& setup, int concurrency, double seconds, uint64_t max_connections,
                  size_t message_size) {
  std::atomic<uint64_t> completed{0}, started{0};
  std::atomic<int> errors{0};
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int c = 0; c < concurrency; ++c) {
    threads.emplace_back([&] {
      std::vector<uint8_t> request(message_size, 0x43), reply(message_size);
      while (Clock::now() < deadline && started.fetch_add(1) < max_connections) {
        auto fd = open_session(setup, Control{BackendAction::echo, 0, 0});
        if (!fd || write_all(fd->get(), request) != IoResult::ok || read_exact(fd->get(), reply) != IoResult::ok) {
          if (errors.fetch_add(1) < 5) fmt::print(stderr, "reconnect: {}\n", fd ? "exchange failed" : fd.error());
          continue;
        }
        completed.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = seconds_between(start, Clock::now());
  fmt::print("{{\"mode\":\"reconnect\",\"concurrency\":{},\"connections\":{},\"seconds\":{:.3f},"
             "\"connections_per_s\":{:.1f},\"errors\":{}}}\n",
             concurrency, completed.load(), elapsed, static_cast<double>(completed.load()) / elapsed, errors.load());
  return errors.load() == 0 ? 0 : 1;
}

int main_with_args(int argc, char** argv) {
  CLI::App app{"snisplice_load: load generator and backend for proxy benchmarks"};
  app.require_subcommand(1);
  std::string address_text, sni = "bench.localhost", direction = "up";
  double seconds = 5;
  int connections = 1;
  uint64_t max_count = 10'000'000;
  size_t message_size = 64;
  int max_backend_connections = 2000;
  uint32_t rate_mbit = 0;

  auto* serve = app.add_subcommand("serve", "backend: read the hello and control header, then sink, source or echo");
  serve->add_option("--listen", address_text, "loopback or 198.51.100.0/24 address:port")->required();
  serve->add_option("--max-seconds", seconds, "stop after this long")->capture_default_str();
  serve->add_option("--max-connections", max_backend_connections, "concurrent connections")->capture_default_str();

  auto add_client_options = [&](CLI::App* sub) {
    sub->add_option("--target", address_text, "loopback or 198.51.100.0/24 address:port of the proxy or backend")->required();
    sub->add_option("--sni", sni, "server name in the ClientHello")->capture_default_str();
    sub->add_option("--seconds", seconds, "duration")->capture_default_str()->check(CLI::Range(0.1, 600.0));
  };
  auto* stream = app.add_subcommand("stream", "bulk transfer; reports Gbit/s measured at the receiver");
  add_client_options(stream);
  stream->add_option("--direction", direction, "up (client to backend), down, or both")
      ->check(CLI::IsMember({"up", "down", "both"}))->capture_default_str();
  stream->add_option("--rate-mbit", rate_mbit, "pace each connection's sender to this many Mbit/s (0: unpaced)")
      ->check(CLI::Range(0, 1000000))->capture_default_str();
  stream->add_option("--connections", connections, "connections per direction")->check(CLI::Range(1, 256))->capture_default_str();

  auto* pingpong = app.add_subcommand("pingpong", "small request/response; reports p50/p99 round trip");
  add_client_options(pingpong);
  pingpong->add_option("--connections", connections, "concurrent connections")->check(CLI::Range(1, 256))->capture_default_str();
  pingpong->add_option("--count", max_count, "exchanges per connection at most")->capture_default_str();
  pingpong->add_option("--size", message_size, "message bytes")->check(CLI::Range(1, 65536))->capture_default_str();

  auto* reconnect = app.add_subcommand("reconnect", "connect, hello, one exchange, close; reports connections/s");
  add_client_options(reconnect);
  reconnect->add_option("--concurrency", connections, "client threads")->check(CLI::Range(1, 256))->capture_default_str();
  reconnect->add_option("--count", max_count, "connections at most")->capture_default_str();
  reconnect->add_option("--size", message_size, "message bytes")->check(CLI::Range(1, 65536))->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  const auto address = SocketAddress::parse(address_text);
  if (!address) {
    fmt::print(stderr, "not an address:port: {}\n", address_text);
    return 2;
  }
  if (!is_bench_address(*address)) {
    fmt::print(stderr, "refusing {}: only loopback and 198.51.100.0/24 addresses are allowed\n", address_text);
    return 2;
  }
  if (serve->parsed()) {
    if (!serve->count("--max-seconds")) seconds = 3600;
    return run_serve(*address, seconds, max_backend_connections);
  }
  auto hello = make_client_hello(sni);
  if (!hello) {
    fmt::print(stderr, "ClientHello: {}\n", hello.error());
    return 1;
  }
  const ClientSetup setup{*address, std::move(*hello)};
  if (stream->parsed()) return run_stream(setup, direction, connections, seconds, rate_mbit);
  if (pingpong->parsed()) return run_pingpong(setup, connections, seconds, max_count, message_size);
  return run_reconnect(setup, connections, seconds, max_count, message_size);
}

}  // namespace
}  // namespace snisplice::load

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  return snisplice::load::main_with_args(argc, argv);
}
