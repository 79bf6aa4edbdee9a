# Pinned-object directory, XDP allowlist owner, DNS cache map owner: one small library each.
add_library(snisplice_bpf_pin STATIC ${CMAKE_CURRENT_LIST_DIR}/pin_dir.cpp)
target_link_libraries(snisplice_bpf_pin PUBLIC snisplice_base tl::expected PkgConfig::LIBBPF)

# The XDP program's owner and the reader of its live-event ring (into the EventBus).
add_library(snisplice_bpf_allowlist STATIC ${CMAKE_CURRENT_LIST_DIR}/xdp_allowlist.cpp
                                           ${CMAKE_CURRENT_LIST_DIR}/xdp_event_reader.cpp)
# bpf_xdp_allowlist carries both the generated skeleton and ebpf/include (xdp_abi.h, used by
# the public header).
target_link_libraries(snisplice_bpf_allowlist PUBLIC snisplice_bpf_pin bpf_xdp_allowlist
                                                     snisplice_events)

add_library(snisplice_bpf_dns_cache STATIC ${CMAKE_CURRENT_LIST_DIR}/dns_cache_map.cpp)
target_link_libraries(snisplice_bpf_dns_cache PUBLIC snisplice_bpf_pin PRIVATE bpf_dns_cache)
