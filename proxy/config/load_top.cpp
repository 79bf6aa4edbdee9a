#include <cstdint>

#include "config/load_sections.h"
#include "config/load_values.h"

namespace snisplice::config::detail {
namespace {

using namespace std::string_view_literals;

constexpr std::string_view kTopKeys[] = {
    "workers"sv,    "user"sv,      "listeners"sv, "tables"sv,       "backends"sv,
    "dns"sv,        "splice"sv,    "xdp"sv,       "bpf_pin_path"sv, "metrics"sv,
    "access_log"sv, "log_level"sv, "timeouts"sv};
constexpr std::string_view kMetricsKeys[] = {"listen"sv, "token_file"sv, "max_subscribers"sv};
constexpr std::string_view kTimeoutsKeys[] = {"idle"sv, "shutdown_grace"sv};

constexpr uint64_t kMaxWorkers = 1024;

std::optional<unsigned> read_workers(Problems& p, const YAML::Node& node, std::string_view path) {
  if (node.IsScalar()) {
    if (node.Scalar() == "auto") return 0u;
    if (auto count = read_uint(p, node, path, 1, kMaxWorkers)) return static_cast<unsigned>(*count);
    return std::nullopt;
  }
  p.add(node, path, "expected \"auto\" or a positive integer, got " + describe(node));
  return std::nullopt;
}

std::optional<std::string> read_absolute_path(Problems& p, const YAML::Node& node,
                                              std::string_view path) {
  auto text = read_string(p, node, path);
  if (text && !text->starts_with('/')) {
    p.add(node, path, "must be an absolute path, got " + quote(*text));
    return std::nullopt;
  }
  return text;
}

void read_metrics(Problems& p, const YAML::Node& node, Config& config,
                  std::optional<YAML::Node>& listen_source) {
  MapReader map(p, node, "metrics", kMetricsKeys);
  read_key(p, map, "token_file", config.events.token_file, &read_string);
  read_key(p, map, "max_subscribers", config.events.max_subscribers,
           &read_integer<0, kMaxEventSubscribers>);
  auto listen = map.find("listen");
  if (!listen) return;
  if (listen->IsScalar() && listen->Scalar().empty()) {  // "": no metrics endpoint
    config.metrics_listen = std::nullopt;
    return;
  }
  if (auto address = read_bind_address(p, *listen, "metrics.listen")) {
    config.metrics_listen = *address;
    listen_source = *listen;
  }
}

void read_access_log(Problems& p, const YAML::Node& node, AccessLog& log) {
  auto text = read_string(p, node, "access_log");
  if (!text) return;
  if (*text == "stdout") {
    log = {AccessLog::Kind::stdout_stream, {}};
  } else if (*text == "off") {
    log = {AccessLog::Kind::off, {}};
  } else if (text->empty()) {
    p.add(node, "access_log", "expected stdout, off or a file path, got \"\"");
  } else {
    log = {AccessLog::Kind::file, *text};
  }
}

void read_timeouts(Problems& p, const YAML::Node& node, Timeouts& timeouts) {
  MapReader map(p, node, "timeouts", kTimeoutsKeys);
  read_key(p, map, "idle", timeouts.idle, &read_positive_duration);
  // Zero grace: close every connection at once on SIGTERM.
  read_key(p, map, "shutdown_grace", timeouts.shutdown_grace, &read_duration);
}

}  // namespace

void read_document(Problems& p, const YAML::Node& root, Config& config) {
  if (root.IsNull()) {  // an empty file
    p.add(1, "listeners", "missing required key");
    return;
  }
  MapReader top(p, root, "", kTopKeys);
  if (!top.is_map()) return;
  Sources sources;
  read_key(p, top, "workers", config.workers, &read_workers);
  read_key(p, top, "user", config.user, &read_string);
  if (auto node = top.require("listeners")) read_listeners(p, *node, config, sources.listeners);
  if (auto node = top.find("tables")) read_tables(p, *node, config, sources.routes);
  if (auto node = top.find("backends")) read_backends(p, *node, config);
  if (auto node = top.find("dns")) read_dns(p, *node, config.dns);
  read_key(p, top, "splice", config.splice, &read_enumerated<kSpliceModeNames>);
  if (auto node = top.find("xdp")) read_xdp(p, *node, config.xdp);
  read_key(p, top, "bpf_pin_path", config.bpf_pin_path, &read_absolute_path);
  if (auto node = top.find("metrics")) read_metrics(p, *node, config, sources.metrics_listen);
  if (auto node = top.find("access_log")) read_access_log(p, *node, config.access_log);
  read_key(p, top, "log_level", config.log_level, &read_enumerated<kLogLevelNames>);
  if (auto node = top.find("timeouts")) read_timeouts(p, *node, config.timeouts);

  check_across_sections(p, config, sources);
}

}  // namespace snisplice::config::detail
