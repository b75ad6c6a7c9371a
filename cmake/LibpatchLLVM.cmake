# LLVM MC for instruction-site decoding, linked STATICALLY from Debian's
# component archives (llvm-16-dev ships them): a program that loads libpatch
# must not get libLLVM-16.so and what it drags in (libedit, whose readline
# symbols collide with GNU readline's; libz3, libicu, libxml2, libffi). The
# shared libpatch hides every LLVM symbol (--exclude-libs,ALL + version script).
#
# Sets LP_LLVM_MC (ON when found), LP_LLVM_INCLUDE_DIRS, LP_LLVM_DEFINITIONS and
# the archive lists, in link order (dependents first):
#   LP_LLVM_ARCHIVES_<arch>   the ISA's Disassembler/Desc/Info archives (AArch64: + Utils)
#   LP_LLVM_ARCHIVES_core     MC, MCDisassembler and what they need
#   LP_LLVM_SYSTEM_LIBS       system libraries those objects reference
# Only native builds: Debian 12 has no LLVM for the riscv64 and aarch64 cross
# builds, which decode with the built-in RV64GC / A64 decoders.
set(LP_LLVM_MC OFF)
if(CMAKE_CROSSCOMPILING)
  return()
endif()
option(LP_WITH_LLVM_MC "Decode instruction sites with LLVM MC (native builds)" ON)
if(NOT LP_WITH_LLVM_MC)
  return()
endif()
find_package(LLVM 16 CONFIG PATHS /usr/lib/llvm-16/lib/cmake/llvm NO_DEFAULT_PATH)
if(NOT LLVM_FOUND)
  message(WARNING "LLVM 16 not found (apt install llvm-16-dev): no instruction sites on ${LP_ARCH}, "
                  "no torn-fetch; run ci/install-deps")
  return()
endif()

set(LP_LLVM_INCLUDE_DIRS ${LLVM_INCLUDE_DIRS})
separate_arguments(LP_LLVM_DEFINITIONS NATIVE_COMMAND "${LLVM_DEFINITIONS}")
set(_lp_llvm_x86_64 X86Disassembler X86Desc X86Info)
set(_lp_llvm_riscv64 RISCVDisassembler RISCVDesc RISCVInfo)
set(_lp_llvm_aarch64 AArch64Disassembler AArch64Desc AArch64Info AArch64Utils)
set(_lp_llvm_core MCDisassembler MC DebugInfoCodeView BinaryFormat TargetParser Support Demangle)
foreach(_set x86_64 riscv64 aarch64 core)
  set(LP_LLVM_ARCHIVES_${_set})
  foreach(_c IN LISTS _lp_llvm_${_set})
    set(_a ${LLVM_LIBRARY_DIR}/libLLVM${_c}.a)
    if(NOT EXISTS ${_a})
      message(FATAL_ERROR "LLVM static archive ${_a} missing (Debian's llvm-16-dev ships it)")
    endif()
    list(APPEND LP_LLVM_ARCHIVES_${_set} ${_a})
  endforeach()
endforeach()
# What LLVM's Support objects reference (compression, CRC, terminal colours):
# Debian's LLVM 16 was built with zlib, zstd and terminfo. libpatch.so needs
# none of them at run time (--gc-sections drops the compression paths, and it
# answers terminfo itself: libpatch/src/mc/llvm_no_terminfo.cpp); static links
# of LLVM (libpatch.a's consumers, the tests) name them.
set(LP_LLVM_SYSTEM_LIBS z zstd tinfo)
# What the project's own static links of LLVM use (tests, tools): every ISA's
# archives and the core in one rescanned group (a file path carries no
# dependencies, so CMake cannot order them; the linker rescans the group).
add_library(lp_llvm INTERFACE)
target_link_libraries(lp_llvm INTERFACE
  "$<LINK_GROUP:RESCAN,${LP_LLVM_ARCHIVES_x86_64},${LP_LLVM_ARCHIVES_riscv64},${LP_LLVM_ARCHIVES_aarch64},${LP_LLVM_ARCHIVES_core}>"
  ${LP_LLVM_SYSTEM_LIBS})
set(LP_LLVM_MC ON)
message(STATUS "libpatch: LLVM MC ${LLVM_PACKAGE_VERSION} from ${LLVM_LIBRARY_DIR} (static archives)")
