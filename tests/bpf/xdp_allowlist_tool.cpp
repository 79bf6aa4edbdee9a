// Test tool for tests/e2e/xdp: attaches the XDP allowlist through XdpAllowlist, exactly as
// the daemon does, prints one line per interface, then "ready", and stays attached until
// SIGINT or SIGTERM. Counters and the allowlist are read and edited through the pins.
#include <signal.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "bpf/xdp_allowlist.h"

int main(int argc, char** argv) {
  using snisplice::config::XdpMode;
  using snisplice::config::XdpPolicy;
  CLI::App app{"Attach the snisplice XDP allowlist until SIGTERM"};
  std::string pin_path;
  std::vector<std::string> interfaces;
  std::string mode_text = "auto";
  std::string policy_text = "enforce";
  std::vector<uint16_t> ports;
  std::vector<std::string> allow_text;
  const std::map<std::string, XdpMode> modes = {
      {"native", XdpMode::native}, {"generic", XdpMode::generic}, {"auto", XdpMode::automatic}};
  const std::map<std::string, XdpPolicy> policies = {
      {"off", XdpPolicy::off}, {"monitor", XdpPolicy::monitor}, {"enforce", XdpPolicy::enforce}};
  app.add_option("--pin-path", pin_path, "directory on bpffs for the pinned maps")->required();
  app.add_option("--interface", interfaces, "interface to attach to (repeatable)");
  app.add_option("--mode", mode_text, "native | generic | auto")
      ->check(CLI::IsMember({"native", "generic", "auto"}));
  app.add_option("--policy", policy_text, "off | monitor | enforce")
      ->check(CLI::IsMember({"off", "monitor", "enforce"}));
  app.add_option("--port", ports, "filtered TCP port (repeatable)");
  app.add_option("--allow", allow_text, "allowed CIDR, as in the config (repeatable)");
  CLI11_PARSE(app, argc, argv);
  const XdpMode mode = modes.at(mode_text);
  const XdpPolicy policy = policies.at(policy_text);

  std::vector<snisplice::Cidr> allow;
  for (const std::string& text : allow_text) {
    auto cidr = snisplice::Cidr::parse(text);
    if (!cidr) {
      std::fprintf(stderr, "not a CIDR: %s\n", text.c_str());
      return 2;
    }
    allow.push_back(*cidr);
  }

  // Blocked before the attach so a signal arriving early is not lost.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto failed = [](const snisplice::Error& error) {
    std::fprintf(stderr, "%s\n", error.message().c_str());
    return 1;
  };
  auto allowlist = snisplice::bpf::XdpAllowlist::open(pin_path, interfaces, mode);
  if (!allowlist) return failed(allowlist.error());
  if (auto ok = allowlist->set_ports(ports); !ok) return failed(ok.error());
  auto synced = allowlist->sync_allow(allow);
  if (!synced) return failed(synced.error());
  if (auto ok = allowlist->set_policy(policy); !ok) return failed(ok.error());
  for (const auto& attachment : allowlist->attachments())
    std::printf("attached %s %s\n", attachment.interface.c_str(),
                snisplice::bpf::to_string(attachment.mode));
  std::printf("allow: %u added, %u removed, %u operator entries kept\nready\n", synced->added,
              synced->removed, synced->operator_kept);
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  return 0;  // the destructor detaches; the pinned maps stay for the caller to remove
}
