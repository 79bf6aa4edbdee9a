# XDP program (source allowlist, SYN rate limit, SYN cookies) and the DNS cache map (maps only); ABI in include/xdp_abi.h and
# include/dns_cache_abi.h.
bpf_skeleton(xdp_allowlist xdp_allowlist.bpf.c
             ${CMAKE_CURRENT_SOURCE_DIR}/include/xdp_abi.h
             ${CMAKE_CURRENT_SOURCE_DIR}/include/parse_l3.h
             ${CMAKE_CURRENT_SOURCE_DIR}/include/xdp_rate_limit.h
             ${CMAKE_CURRENT_SOURCE_DIR}/include/xdp_syncookie.h)
bpf_skeleton(dns_cache dns_cache.bpf.c ${CMAKE_CURRENT_SOURCE_DIR}/include/dns_cache_abi.h)
