// snisplice: argv -> config -> daemon.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "config/load.h"
#include "daemon/daemon.h"
#include "daemon/kernel_report.h"

int main(int argc, char** argv) {
  CLI::App app{"snisplice: SNI-aware transparent TCP proxy with in-kernel splicing"};
  std::string config_path;
  bool check = false;
  bool version = false;
  app.add_option("-c,--config", config_path, "configuration file (YAML)");
  app.add_flag("--check", check, "validate the configuration and exit: 0 valid, 1 with one line per problem");
  app.add_flag("--version", version, "print the version and the kernel features found, and exit");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::printf("snisplice %s\n%s", SNISPLICE_VERSION, snisplice::daemon::kernel_report().c_str());
    return 0;
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "snisplice: -c FILE is required (see --help)\n");
    return 2;
  }
  auto config = snisplice::config::load_config_file(config_path);
  if (!config) {
    for (const auto& line : config.error()) std::fprintf(stderr, "%s\n", line.c_str());
    return 1;
  }
  if (check) {
    std::printf("%s: configuration is valid\n", config_path.c_str());
    return 0;
  }
  return snisplice::daemon::run(config_path, std::move(*config));
}
