# owned by the splice part
# sockhash + SK_SKB stream verdict; yields INTERFACE target bpf_splice (splice.skel.h).
bpf_skeleton(splice splice.bpf.c ${CMAKE_CURRENT_SOURCE_DIR}/include/splice_abi.h)
