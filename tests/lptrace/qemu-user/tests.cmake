# lptrace on this cross build's programs under qemu-user (label lptrace):
# the HOST's lptrace (a cross build cannot build the CLI: it needs host
# libraries) runs dynamically linked programs of the target with this build's
# agent (tools/lptrace: libpatch-trace.so on libpatch.so). Included by
# tests/lptrace/<arch>/CMakeLists.txt, which sets
#   LP_QEMU_TEST_SLED    the entry-sled flag of wl_sled_* (tests/lptrace/workload.c)
#   LP_QEMU_TEST_PREFIX  the programs' names: lptrace_<prefix>_workload, lptrace_<prefix>_libc
# Driver: run.sh (shared by every arch), one ctest test per case,
# lptrace.<label>.<case>. .ci/run (ci/test) builds the host preset before the
# cross ones; without a host lptrace the tests fail and say to build it.
set(LP_HOST_LPTRACE ${PROJECT_SOURCE_DIR}/build/host/tools/lptrace/lptrace CACHE FILEPATH
    "the host (x86-64) lptrace that runs this build's ${LP_ARCH} programs under qemu-${LP_ARCH}")

# LD_PRELOAD needs a dynamic loader: these programs are linked without the
# toolchain's -static (CMAKE_EXE_LINKER_FLAGS is per directory: this file is
# included, not a function), against Debian's cross glibc
# (/usr/${LP_ARCH}-linux-gnu), which qemu-${LP_ARCH} -L finds.
string(REGEX REPLACE "(^| )-static( |$)" " " CMAKE_EXE_LINKER_FLAGS "${CMAKE_EXE_LINKER_FLAGS}")
# The workload of tests/lptrace (known call counts): wl_sled_* with an entry
# sled, wl_plain_* without (probed at their first instruction).
set(_lp_wl lptrace_${LP_QEMU_TEST_PREFIX}_workload)
set(_lp_libc lptrace_${LP_QEMU_TEST_PREFIX}_libc)
add_executable(${_lp_wl} ${CMAKE_CURRENT_LIST_DIR}/../workload.c ${CMAKE_CURRENT_LIST_DIR}/../plain.c)
target_link_libraries(${_lp_wl} PRIVATE Threads::Threads)
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/../workload.c PROPERTIES COMPILE_OPTIONS ${LP_QEMU_TEST_SLED})
add_executable(${_lp_libc} ${CMAKE_CURRENT_LIST_DIR}/libc_calls.c)

foreach(_case counts exits fork libc exec record patterns ctl bad)
  add_test(NAME lptrace.${LP_ARCH_LABEL}.${_case}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run.sh ${LP_ARCH} lptrace.${LP_ARCH_LABEL}.${_case}
                   ${LP_HOST_LPTRACE} $<TARGET_FILE:patch-trace> $<TARGET_FILE:${_lp_wl}> $<TARGET_FILE:${_lp_libc}>
                   $<TARGET_FILE:patch-stress> ${CMAKE_CURRENT_BINARY_DIR}/scratch/${_case})
  set_tests_properties(lptrace.${LP_ARCH_LABEL}.${_case} PROPERTIES LABELS lptrace TIMEOUT 300)
endforeach()
