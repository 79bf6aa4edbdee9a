#pragma once
// One immutable snapshot of what the configuration means at run time: the Config plus the
// compiled route tables. Workers share it; each connection keeps the snapshot it was
// accepted under, so a reload never changes a connection's route.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "base/error.h"

#include "config/config.h"
#include "flow/resolve/address_policy.h"
#include "flow/route/route_table.h"

namespace snisplice::runtime {

struct Snapshot {
  std::shared_ptr<const config::Config> config;
  std::vector<route::RouteTable> tables;                // parallel to config->tables
  std::vector<size_t> listener_table;                   // listener index -> table index
  std::vector<std::vector<std::string>> route_labels;   // [table][route]: metric label
  // [table][route]: which addresses a resolve / original_dst route may dial (unused for others).
  std::vector<std::vector<resolve::AddressPolicy>> route_policies;
  uint64_t generation = 0;

  // own_addresses: this host's addresses, refused as destinations by the default policy.
  static tl::expected<std::shared_ptr<const Snapshot>, Error> build(
      std::shared_ptr<const config::Config> config, uint64_t generation, const std::vector<IpAddress>& own_addresses);
};

}  // namespace snisplice::runtime
