#pragma once
// The YAML spelling of every enum value, in one list per enum: the loader parses with these
// lists, lists them in "allowed values" messages, and to_string() prints with them.
#include <span>
#include <string_view>

#include "config/config.h"

namespace snisplice::config {

template <class Enum>
struct EnumName {
  std::string_view name;
  Enum value;
};

inline constexpr EnumName<Protocol> kProtocolNames[] = {{"tls", Protocol::tls},
                                                        {"http", Protocol::http}};
inline constexpr EnumName<Balance> kBalanceNames[] = {{"round_robin", Balance::round_robin},
                                                      {"least_conn", Balance::least_conn},
                                                      {"source_hash", Balance::source_hash}};
inline constexpr EnumName<ProxyProtocol> kProxyProtocolNames[] = {
    {"off", ProxyProtocol::off}, {"v1", ProxyProtocol::v1}, {"v2", ProxyProtocol::v2}};
inline constexpr EnumName<SpliceMode> kSpliceModeNames[] = {{"auto", SpliceMode::automatic},
                                                            {"sockmap", SpliceMode::sockmap},
                                                            {"userspace", SpliceMode::userspace}};
inline constexpr EnumName<XdpMode> kXdpModeNames[] = {
    {"native", XdpMode::native}, {"generic", XdpMode::generic}, {"auto", XdpMode::automatic}};
inline constexpr EnumName<XdpPolicy> kXdpPolicyNames[] = {
    {"off", XdpPolicy::off}, {"monitor", XdpPolicy::monitor}, {"enforce", XdpPolicy::enforce}};
inline constexpr EnumName<RateLimitMode> kRateLimitModeNames[] = {
    {"off", RateLimitMode::off},
    {"monitor", RateLimitMode::monitor},
    {"enforce", RateLimitMode::enforce}};
inline constexpr EnumName<SyncookieMode> kSyncookieModeNames[] = {
    {"off", SyncookieMode::off}, {"auto", SyncookieMode::automatic}, {"on", SyncookieMode::on}};
inline constexpr EnumName<LogLevel> kLogLevelNames[] = {{"error", LogLevel::error},
                                                        {"warn", LogLevel::warn},
                                                        {"info", LogLevel::info},
                                                        {"debug", LogLevel::debug}};
// Only reject and original_dst are written as `action:`; backend and resolve have their own keys.
inline constexpr EnumName<RouteAction> kRouteActionNames[] = {
    {"reject", RouteAction::reject}, {"original_dst", RouteAction::original_dst}};

}  // namespace snisplice::config
