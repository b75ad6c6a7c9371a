# nlohmann_json::nlohmann_json for lptrace and its agent, in every build.
#
# Natively: Debian's package config (nlohmann-json3-dev, /usr/share/cmake).
# Cross builds (riscv64-gc, riscv64-g): the toolchain files confine find_*()
# to the target root /usr/riscv64-linux-gnu, where Debian has no nlohmann
# (the package is Architecture: all and installs into /usr/include only).
# Taking the host's config anyway (NO_CMAKE_FIND_ROOT_PATH) would give an
# imported target with INTERFACE_INCLUDE_DIRECTORIES /usr/include, i.e.
# `-isystem /usr/include` in a riscv64 compile: searched before the cross
# compiler's own system directories, so <stdio.h>, <stdlib.h>, <features.h>
# ... would come from the host's x86-64 glibc (checked with
# `riscv64-linux-gnu-g++ -isystem /usr/include -H`). So the cross builds get
# a directory of their own in the build tree holding one symlink,
# nlohmann -> the host's /usr/include/nlohmann: the library is pure headers
# (architecture-free, no glibc header among them), and nothing else of
# /usr/include becomes visible. Nothing is copied.
if(TARGET nlohmann_json::nlohmann_json)
  return()
endif()
if(NOT CMAKE_CROSSCOMPILING)
  find_package(nlohmann_json REQUIRED)
  return()
endif()
# A target root that has it (some other sysroot) wins.
find_path(LP_NLOHMANN_JSON_TARGET_DIR nlohmann/json.hpp)
if(LP_NLOHMANN_JSON_TARGET_DIR)
  set(_lp_json_dir ${LP_NLOHMANN_JSON_TARGET_DIR})
else()
  find_path(LP_NLOHMANN_JSON_HOST_DIR nlohmann/json.hpp PATHS /usr/include NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
  if(NOT LP_NLOHMANN_JSON_HOST_DIR)
    message(FATAL_ERROR "nlohmann/json.hpp not found (neither in the target root nor in /usr/include): "
                        "install nlohmann-json3-dev (ci/install-deps)")
  endif()
  set(_lp_json_dir ${CMAKE_BINARY_DIR}/lp-nlohmann-json/include)
  file(MAKE_DIRECTORY ${_lp_json_dir})
  file(CREATE_LINK ${LP_NLOHMANN_JSON_HOST_DIR}/nlohmann ${_lp_json_dir}/nlohmann SYMBOLIC)
endif()
add_library(lp_nlohmann_json INTERFACE)
target_include_directories(lp_nlohmann_json SYSTEM INTERFACE ${_lp_json_dir})
add_library(nlohmann_json::nlohmann_json ALIAS lp_nlohmann_json)
