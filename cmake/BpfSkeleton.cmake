# bpf_skeleton(NAME SOURCE)
# Compiles ebpf/NAME.bpf.c with clang for the BPF target and generates NAME.skel.h with
# bpftool gen skeleton. Defines the INTERFACE target bpf_NAME whose include path carries
# the generated header.
find_program(BPF_CLANG NAMES clang-14 clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

set(BPF_ARCH_INCLUDE /usr/include/${CMAKE_LIBRARY_ARCHITECTURE})

function(bpf_skeleton name source)
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
  set(skel ${CMAKE_CURRENT_BINARY_DIR}/skel/${name}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror
            -I${CMAKE_CURRENT_SOURCE_DIR}/include -I${BPF_ARCH_INCLUDE}
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${source} -o ${obj}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${source} ${ARGN}
    COMMENT "BPF ${source}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/skel
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(bpf_${name}_gen DEPENDS ${skel})
  add_library(bpf_${name} INTERFACE)
  add_dependencies(bpf_${name} bpf_${name}_gen)
  target_include_directories(bpf_${name} INTERFACE ${CMAKE_CURRENT_BINARY_DIR}/skel
                                                   ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_link_libraries(bpf_${name} INTERFACE PkgConfig::LIBBPF)
endfunction()
