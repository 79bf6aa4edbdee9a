# owned by the splice part
# The repeat bookkeeping of relay_held: pure, unit-tested without BPF.
add_library(snisplice_held_repeats STATIC ${CMAKE_CURRENT_SOURCE_DIR}/held_repeats.cpp)
target_link_libraries(snisplice_held_repeats PUBLIC snisplice_base)
# SpliceEngine (sockhash + SK_SKB verdict owner) and the kernel feature probe.
add_library(snisplice_bpf_splice STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/splice_engine.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/splice_held_relay.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/splice_sockets.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/splice_rollback.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/kernel_features.cpp)
target_link_libraries(snisplice_bpf_splice PUBLIC snisplice_base snisplice_held_repeats PkgConfig::LIBBPF PRIVATE bpf_splice)
