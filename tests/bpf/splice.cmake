# owned by the splice part
# Real sockets on loopback through the in-kernel splice; one binary, one ctest test
# (exit 77 = skipped, with the reason printed, when BPF cannot be loaded).
add_executable(bpf_splice_test
  ${CMAKE_CURRENT_LIST_DIR}/splice_main.cpp
  ${CMAKE_CURRENT_LIST_DIR}/splice_bytes_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/splice_ends_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/splice_backpressure_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/splice_maps_test.cpp)
target_link_libraries(bpf_splice_test PRIVATE snisplice_bpf_splice doctest::doctest)
add_test(NAME bpf_splice_test COMMAND bpf_splice_test)
set_tests_properties(bpf_splice_test PROPERTIES LABELS bpf SKIP_RETURN_CODE 77 TIMEOUT 120)
