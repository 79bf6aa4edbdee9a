# The DNS resolver: c-ares driven by the worker's loop, answers cached in the pinned eBPF LRU
# map (or an in-process LRU without BPF).
add_library(snisplice_resolver STATIC
  ${CMAKE_CURRENT_LIST_DIR}/dns_cache.cpp
  ${CMAKE_CURRENT_LIST_DIR}/resolver.cpp)
target_link_libraries(snisplice_resolver PUBLIC
  snisplice_resolve snisplice_base snisplice_bpf_dns_cache tl::expected
  PRIVATE PkgConfig::CARES)
