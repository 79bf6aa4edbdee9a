#pragma once
// Internal to the loader: one reader per section of the file, each validating its own
// section, and the checks that need more than one section. The sections note where the parts
// the cross-section checks talk about were written, so those checks can name the line.
#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace snisplice::config::detail {

struct ListenerSource {
  std::string path;
  std::optional<YAML::Node> name;
  std::optional<YAML::Node> table;
  std::vector<YAML::Node> listen;  // parallel to Listener::listen
};

struct RouteSource {
  std::string path;
  std::optional<YAML::Node> host;
  std::string pattern_key;  // host_pattern_key() of the host
  std::optional<YAML::Node> alpn;
  std::optional<YAML::Node> backend;
  // The `port: original` or `action: original_dst` node, when the route needs a transparent
  // listener.
  std::optional<YAML::Node> original;
};

struct Sources {
  std::vector<ListenerSource> listeners;         // parallel to Config::listeners
  std::vector<std::vector<RouteSource>> routes;  // parallel to Config::tables
  std::optional<YAML::Node> metrics_listen;
};

// The whole document: the top-level keys and every section, then the cross-section checks.
// The small sections (metrics, access_log, timeouts) are read beside the top level.
void read_document(Problems& p, const YAML::Node& root, Config& config);

void read_listeners(Problems& p, const YAML::Node& node, Config& config,
                    std::vector<ListenerSource>& sources);
void read_tables(Problems& p, const YAML::Node& node, Config& config,
                 std::vector<std::vector<RouteSource>>& sources);
void read_backends(Problems& p, const YAML::Node& node, Config& config);
void read_dns(Problems& p, const YAML::Node& node, Dns& dns);
void read_xdp(Problems& p, const YAML::Node& node, Xdp& xdp);

// Listener names, listen addresses (with metrics.listen), references to tables and backends,
// and routes that need a transparent listener; in that order.
void check_across_sections(Problems& p, const Config& config, const Sources& sources);

}  // namespace snisplice::config::detail
