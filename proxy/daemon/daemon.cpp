#include "daemon/daemon.h"

#include <signal.h>
#include <systemd/sd-daemon.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <prometheus/exposer.h>
#include <spdlog/spdlog.h>

#include "config/load.h"
#include "daemon/health.h"
#include "daemon/runtime.h"
#include "flow/accept/admission.h"
#include "metrics/metrics.h"
#include "session/worker.h"

namespace snisplice::daemon {
namespace {

spdlog::level::level_enum spdlog_level(config::LogLevel level) {
  switch (level) {
    case config::LogLevel::error: return spdlog::level::err;
    case config::LogLevel::warn: return spdlog::level::warn;
    case config::LogLevel::info: return spdlog::level::info;
    case config::LogLevel::debug: return spdlog::level::debug;
  }
  return spdlog::level::info;
}

unsigned worker_count(const config::Config& config) {
  if (config.workers > 0) return config.workers;
  return std::max(1u, std::thread::hardware_concurrency());
}

// Routes this build cannot serve yet are named once, at start and on reload.
void warn_unserved_routes(const config::Config& config) {
  for (const auto& table : config.tables)
    for (const auto& route : table.routes)
      if (route.action == config::RouteAction::resolve || route.action == config::RouteAction::original_dst)
        spdlog::warn("{}:{}: tables.{}: route \"{}\" ({}) is refused: DNS-resolved and original-destination "
                     "routes are not served by this build",
                     config.source_path, route.line, table.name, route.host, config::to_string(route.action));
}

std::string listen_signature(const config::Config& config) {
  std::string out;
  for (const auto& listener : config.listeners) {
    out += listener.name + (listener.transparent ? " T" : " ");
    for (const auto& address : listener.listen) out += " " + address.to_string();
    out += ";";
  }
  return out;
}

tl::expected<session::Published, std::string> prepare(std::shared_ptr<const config::Config> config,
                                                      uint64_t generation) {
  auto runtime = Runtime::build(config, generation);
  if (!runtime) return tl::unexpected(runtime.error());
  std::string error;
  auto log = std::make_shared<close::AccessLog>(close::AccessLog::open(config->access_log, error));
  if (!error.empty()) return tl::unexpected(error);
  return session::Published{std::move(*runtime), std::move(log)};
}

void notify(const std::string& state) { sd_notify(0, state.c_str()); }

}  // namespace

int run(const std::string& config_path, config::Config initial) {
  spdlog::set_level(spdlog_level(initial.log_level));
  // Signals are taken synchronously by this thread; workers inherit the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  metrics::Metrics metrics;
  accept::Admission admission;
  HealthBoard health;
  uint64_t generation = 1;
  auto config = std::make_shared<const config::Config>(std::move(initial));
  auto published = prepare(config, generation);
  if (!published) {
    spdlog::error("{}", published.error());
    return 1;
  }
  warn_unserved_routes(*config);

  std::unique_ptr<prometheus::Exposer> exposer;
  session::WorkerShared shared{metrics, admission, health};
  shared.publish(*published);
  HealthChecker checker(health, metrics);
  checker.configure(*config);

  std::vector<std::unique_ptr<session::Worker>> workers;
  try {
    for (unsigned i = 0; i < worker_count(*config); ++i) {
      workers.push_back(std::make_unique<session::Worker>(shared, i));
      if (!workers.back()->bind_listeners()) return 1;
    }
  } catch (const std::exception& e) {
    spdlog::error("worker setup: {}", e.what());
    return 1;
  }
  if (config->metrics_listen) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(config->metrics_listen->to_string(), 2);
      exposer->RegisterCollectable(metrics.registry());
    } catch (const std::exception& e) {
      spdlog::error("metrics.listen {}: {}", config->metrics_listen->to_string(), e.what());
      return 1;
    }
  }

  std::vector<std::thread> threads;
  for (auto& worker : workers) threads.emplace_back([&worker] { worker->run(); });
  spdlog::info("snisplice {} ready: {} workers, {} listeners, splice {}", SNISPLICE_VERSION, workers.size(),
               config->listeners.size(), "userspace");
  notify("READY=1\nSTATUS=serving");

  uint64_t watchdog_usec = 0;
  bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  while (true) {
    siginfo_t info;
    int sig;
    if (watchdog) {
      timespec wait{static_cast<time_t>(watchdog_usec / 2'000'000),
                    static_cast<long>(watchdog_usec / 2 % 1'000'000 * 1000)};
      sig = sigtimedwait(&signals, &info, &wait);
      if (sig < 0) {
        notify("WATCHDOG=1");
        continue;
      }
    } else {
      sig = sigwaitinfo(&signals, &info);
      if (sig < 0) continue;
    }
    if (sig == SIGHUP) {
      notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}",
                         std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count()));
      auto loaded = config::load_config_file(config_path);
      if (!loaded) {
        for (const auto& line : loaded.error()) spdlog::error("reload refused: {}", line);
        metrics.reloads_rejected.Increment();
        notify("READY=1");
        continue;
      }
      auto next_config = std::make_shared<const config::Config>(std::move(*loaded));
      auto next = prepare(next_config, generation + 1);
      if (!next) {
        spdlog::error("reload refused: {}", next.error());
        metrics.reloads_rejected.Increment();
        notify("READY=1");
        continue;
      }
      if (listen_signature(*next_config) != listen_signature(*config))
        spdlog::warn("reload: listener addresses changed; they take effect at the next restart");
      ++generation;
      config = next_config;
      shared.publish(std::move(*next));
      checker.configure(*config);
      spdlog::set_level(spdlog_level(config->log_level));
      warn_unserved_routes(*config);
      metrics.reloads_ok.Increment();
      spdlog::info("reloaded {}", config_path);
      notify("READY=1");
      continue;
    }
    spdlog::info("{}: stopping; draining connections for up to {} ms", strsignal(sig),
                 config->timeouts.shutdown_grace.count());
    notify("STOPPING=1");
    auto deadline = std::chrono::steady_clock::now() + config->timeouts.shutdown_grace;
    shared.drain_deadline_ns.store(deadline.time_since_epoch().count());
    shared.stopping.store(true);
    for (auto& worker : workers) worker->wake();
    break;
  }
  for (auto& thread : threads) thread.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace snisplice::daemon
