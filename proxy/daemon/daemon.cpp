#include "daemon/daemon.h"

#include <bpf/libbpf.h>
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <ifaddrs.h>
#include <signal.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bpf/splice_engine.h"
#include "config/load.h"
#include "daemon/health.h"
#include "runtime/shared.h"
#include "runtime/snapshot.h"
#include "daemon/privileges.h"
#include "daemon/xdp_control.h"
#include "events/bus.h"
#include "events/status_server.h"
#include "flow/accept/admission.h"
#include "flow/accept/cpu_placement.h"
#include "flow/resolve/dns_cache.h"
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

std::string listen_signature(const config::Config& config) {
  std::string out;
  for (const auto& listener : config.listeners) {
    // Appended piece by piece: GCC 12's -Wrestrict misreads `a + b` temporaries here.
    out += listener.name;
    out += listener.transparent ? " T" : " ";
    for (const auto& address : listener.listen) {
      out += ' ';
      out += address.to_string();
    }
    out += ";";
  }
  return out;
}

// This host's addresses (every interface, and every listen address), which resolve and
// original_dst routes must never dial: the proxy would connect to itself.
std::vector<IpAddress> host_addresses(const config::Config& config) {
  std::vector<IpAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) == 0) {
    for (ifaddrs* entry = list; entry; entry = entry->ifa_next)
      if (entry->ifa_addr && (entry->ifa_addr->sa_family == AF_INET || entry->ifa_addr->sa_family == AF_INET6))
        out.push_back(IpAddress::from_sockaddr(entry->ifa_addr));
    ::freeifaddrs(list);
  }
  for (const auto& listener : config.listeners)
    for (const auto& address : listener.listen) out.push_back(address.ip);
  return out;
}

bool has_resolve_routes(const config::Config& config) {
  for (const auto& table : config.tables)
    for (const auto& route : table.routes)
      if (route.action == config::RouteAction::resolve) return true;
  return false;
}

tl::expected<runtime::Published, Error> prepare(std::shared_ptr<const config::Config> config,
                                                      uint64_t generation) {
  auto runtime = runtime::Snapshot::build(config, generation, host_addresses(*config));
  if (!runtime) return tl::unexpected(runtime.error());
  auto log = close::AccessLog::open(config->access_log);
  if (!log) return tl::unexpected(log.error());
  return runtime::Published{std::move(*runtime), std::make_shared<close::AccessLog>(std::move(*log))};
}

void notify(const std::string& state) { sd_notify(0, state.c_str()); }

// libbpf's own messages go to our log, at debug level: what matters is logged by us, once.
int libbpf_to_log(libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[1024];
  int n = std::vsnprintf(line, sizeof line, format, args);
  std::string_view text(line, n > 0 ? std::min<size_t>(static_cast<size_t>(n), sizeof line - 1) : 0);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  spdlog::debug("libbpf: {}", text);
  return n;
}

// Redirected-but-undelivered bytes one direction of a spliced pair may hold before the
// connection is aborted (the kernel applies no backpressure to redirected bytes).
constexpr uint64_t kSpliceBudgetBytes = 128u << 20;

// Two sockets per proxied connection, bounded by what this process may open.
uint32_t splice_capacity(const config::Config& config) {
  uint64_t wanted = 0;
  for (const auto& listener : config.listeners) wanted += 2ull * listener.max_connections;
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  uint64_t cap = files.rlim_cur == RLIM_INFINITY ? wanted : files.rlim_cur;
  return static_cast<uint32_t>(std::clamp<uint64_t>(std::min(wanted, cap), 2, 1u << 20));
}

// The in-kernel splice for `splice: auto | sockmap`; nullopt when connections are relayed in
// userspace. An error only when `sockmap` demands it and it cannot be had.
tl::expected<std::optional<bpf::SpliceEngine>, Error> load_splice(const config::Config& config) {
  if (config.splice == config::SpliceMode::userspace) return std::nullopt;
  auto engine = bpf::SpliceEngine::load(splice_capacity(config));
  if (engine) return std::optional<bpf::SpliceEngine>(std::move(*engine));
  if (config.splice == config::SpliceMode::sockmap)
    return tl::unexpected(engine.error().within("splice: sockmap: the in-kernel splice is unavailable"));
  spdlog::warn("splice: auto: the in-kernel splice is unavailable ({}); relaying every connection in userspace",
               engine.error().message());
  return std::nullopt;
}

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
  events::EventBus bus({metrics.events_dropped_ring_full, metrics.events_dropped_slow_subscriber,
                        metrics.event_subscribers});
  accept::Admission admission;
  runtime::HealthBoard health;
  uint64_t generation = 1;
  auto config = std::make_shared<const config::Config>(std::move(initial));
  auto published = prepare(config, generation);
  if (!published) {
    spdlog::error("{}", published.error().message());
    return 1;
  }

  libbpf_set_print(libbpf_to_log);
  auto splice = load_splice(*config);
  if (!splice) {
    spdlog::error("{}", splice.error().message());
    return 1;
  }

  std::unique_ptr<events::StatusServer> status;
  runtime::WorkerShared shared{metrics, admission, health, bus};
  shared.publish(*published);
  // The DNS cache outlives every resolver; opened when the first resolve route appears.
  std::unique_ptr<resolve::DnsCache> dns_cache;
  auto open_dns_cache = [&](const config::Config& with) {
    if (dns_cache || !has_resolve_routes(with)) return;
    auto opened = resolve::DnsCache::open(with.dns, with.bpf_pin_path);
    spdlog::info("dns cache: {}", opened.note);
    dns_cache = std::move(opened.cache);
    shared.set_dns_cache(*dns_cache);
  };
  open_dns_cache(*config);
  if (*splice) shared.splice.emplace(runtime::SpliceUse{**splice, kSpliceBudgetBytes});

  auto placement = accept::place_workers(accept::allowed_cpus(), config->workers);
  std::vector<std::unique_ptr<session::Worker>> workers;
  for (unsigned i = 0; i < placement.workers; ++i) {
    auto worker = session::Worker::create(shared, i, placement.steer_by_cpu);
    if (!worker) {
      spdlog::error("worker setup: {}", worker.error().message());
      return 1;
    }
    workers.push_back(std::move(*worker));
  }
  if (config->metrics_listen) {
    auto started = events::StatusServer::start(*config->metrics_listen, metrics.registry(), bus, config->events);
    if (!started) {
      spdlog::error("{}", started.error().message());
      return 1;
    }
    status = std::move(*started);
  }

  XdpControl xdp(metrics, bus);
  if (auto attached = xdp.apply(*config); !attached) {
    spdlog::error("{}", attached.error().message());
    return 1;
  }

  // Everything that needs privilege exists now: sockets, BPF objects, pins.
  auto dropped = drop_privileges(config->user, runtime_capabilities(*config));
  if (!dropped) {
    spdlog::error("{}", dropped.error().message());
    return 1;
  }
  spdlog::info("{}", *dropped);
  HealthChecker checker(health, metrics);
  checker.configure(*config);

  std::vector<std::thread> threads;
  for (size_t i = 0; i < workers.size(); ++i) {
    std::optional<int> cpu;
    if (i < placement.worker_cpus.size()) cpu = placement.worker_cpus[i];
    threads.emplace_back([&worker = workers[i]] { worker->run(); });
    // Pinned from here, before the log line and READY=1 below say so (a pin inside the thread
    // could come after them). A failed pin leaves the worker to the scheduler: slower, never wrong.
    if (cpu) {
      if (auto pinned = accept::pin_thread(threads.back().native_handle(), *cpu); !pinned)
        spdlog::warn("{}", pinned.error().message());
    }
  }
  if (!placement.worker_cpus.empty())
    spdlog::info("workers pinned one per CPU{}", placement.steer_by_cpu ? "; new connections go to the worker on their CPU" : "");
  spdlog::info("snisplice {} ready: {} workers, {} listeners, data path: {}", SNISPLICE_VERSION, workers.size(),
               config->listeners.size(), shared.splice ? "in-kernel splice (sockmap)" : "userspace relay");
  notify("READY=1\nSTATUS=serving");

  uint64_t watchdog_usec = 0;
  bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  // Wake at least this often: XDP counters into metrics, and the systemd watchdog.
  auto tick = std::chrono::microseconds(watchdog ? std::min<uint64_t>(watchdog_usec / 2, 1'000'000) : 1'000'000);
  unsigned ticks = 0;
  while (true) {
    siginfo_t info;
    timespec wait{static_cast<time_t>(tick.count() / 1'000'000), static_cast<long>(tick.count() % 1'000'000 * 1000)};
    int sig = sigtimedwait(&signals, &info, &wait);
    if (sig < 0) {
      xdp.refresh_metrics();
      if (dns_cache && ++ticks % 10 == 0) metrics.dns_cache_entries.Set(static_cast<double>(dns_cache->entries()));
      if (watchdog) notify("WATCHDOG=1");
      continue;
    }
    if (sig == SIGHUP) {
      notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}",
                         std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count()));
      // A refused reload leaves the running configuration in force.
      auto refuse = [&](const std::vector<std::string>& reasons) {
        for (const auto& reason : reasons) spdlog::error("reload refused: {}", reason);
        metrics.reloads_rejected.Increment();
        bus.publish(events::Reload{"rejected"});
        notify("READY=1");
      };
      auto loaded = config::load_config_file(config_path);
      if (!loaded) {
        refuse(loaded.error());
        continue;
      }
      auto next_config = std::make_shared<const config::Config>(std::move(*loaded));
      auto next = prepare(next_config, generation + 1);
      if (!next) {
        refuse({next.error().message()});
        continue;
      }
      if (next_config->splice != config::SpliceMode::userspace && !shared.splice)
        spdlog::warn("reload: splice: {} takes effect at the next restart; relaying in userspace until then",
                     config::to_string(next_config->splice));
      if (listen_signature(*next_config) != listen_signature(*config))
        spdlog::warn("reload: listener addresses changed; they take effect at the next restart");
      // Read before anything changes, so that a bad token file leaves the old settings in force.
      auto access = events::StatusServer::read_access(next_config->events);
      if (!access) {
        refuse({access.error().message()});
        continue;
      }
      if (auto attached = xdp.apply(*next_config); !attached) {
        refuse({attached.error().message()});
        continue;
      }
      ++generation;
      open_dns_cache(*next_config);
      config = next_config;
      shared.publish(std::move(*next));
      checker.configure(*config);
      if (status) {
        if (auto note = status->apply(std::move(*access)); !note.empty()) spdlog::warn("reload: {}", note);
      }
      spdlog::set_level(spdlog_level(config->log_level));
      metrics.reloads_ok.Increment();
      bus.publish(events::Reload{"ok"});
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
