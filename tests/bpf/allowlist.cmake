# XDP allowlist and DNS cache map: BPF tests (exit 77 = skipped without privileges) and the
# end-to-end network-namespace test.

# One doctest binary tests/bpf/<source>.cpp linked with `library`, run as ctest test `test`.
function(snisplice_bpf_doctest source test library timeout)
  add_executable(${source} ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/${source}.cpp)
  target_link_libraries(${source} PRIVATE ${library} doctest::doctest)
  target_include_directories(${source} PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
  add_test(NAME ${test} COMMAND ${source})
  set_tests_properties(${test} PROPERTIES LABELS bpf SKIP_RETURN_CODE 77 TIMEOUT ${timeout})
endfunction()

snisplice_bpf_doctest(xdp_test bpf_xdp_allowlist snisplice_bpf_allowlist 120)
snisplice_bpf_doctest(xdp_rate_limit_test bpf_xdp_rate_limit snisplice_bpf_allowlist 120)
snisplice_bpf_doctest(dns_cache_test bpf_dns_cache snisplice_bpf_dns_cache 60)

# End to end: a veth pair between two network namespaces, the allowlist attached through
# this tool, real TCP connections, bpftool edits of the pinned tries.
add_executable(xdp_allowlist_tool ${CMAKE_CURRENT_LIST_DIR}/xdp_allowlist_tool.cpp)
target_link_libraries(xdp_allowlist_tool PRIVATE snisplice_bpf_allowlist CLI11::CLI11)
foreach(mode auto generic)
  add_test(NAME e2e_xdp_allowlist_${mode}
           COMMAND bash ${PROJECT_SOURCE_DIR}/tests/e2e/xdp/xdp_allowlist_e2e.sh
                   $<TARGET_FILE:xdp_allowlist_tool> ${PROJECT_SOURCE_DIR}/scripts/allowlist-key
                   ${PROJECT_SOURCE_DIR}/ebpf/include/xdp_abi.h ${mode})
  set_tests_properties(e2e_xdp_allowlist_${mode}
                       PROPERTIES LABELS e2e SKIP_RETURN_CODE 77 TIMEOUT 180)
endforeach()

# End to end: a bounded SYN flood (3 s, at most 6000 packets a phase) against the daemon in a
# network namespace, legitimate clients measured with the rate limit off, on, and with the SYN
# cookie mode (tests/e2e/test_syn_flood.py; exits 77 without root).
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME e2e_syn_flood
         COMMAND ${Python3_EXECUTABLE} test_syn_flood.py
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/e2e)
set_tests_properties(e2e_syn_flood PROPERTIES LABELS e2e SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE
  ENVIRONMENT "SNISPLICE_BIN=$<TARGET_FILE:snisplice>;PYTHONDONTWRITEBYTECODE=1")

snisplice_bpf_doctest(xdp_events_test bpf_xdp_events snisplice_bpf_allowlist 120)

# End to end: an XDP drop from a client namespace in /events.ndjson within a second
# (tests/e2e/test_xdp_events.py; exits 77 without root).
add_test(NAME e2e_xdp_events
         COMMAND ${Python3_EXECUTABLE} run_module.py test_xdp_events
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/e2e)
set_tests_properties(e2e_xdp_events PROPERTIES LABELS e2e SKIP_RETURN_CODE 77 TIMEOUT 120
  ENVIRONMENT "SNISPLICE_BIN=$<TARGET_FILE:snisplice>;PYTHONDONTWRITEBYTECODE=1")
