# Installs libpatch (component `libpatch`): libpatch.so.0 (shared, exports only
# lp_*), libpatch.a, the headers, a find_package(libpatch) config with targets
# libpatch::patch (shared) and libpatch::patch_static, and a libpatch.pc. Both
# package files are relocatable: they find the prefix from where they are, so
# `cmake --install build --prefix ANY` gives a working install.
include(CMakePackageConfigHelpers)
set(_lp_cmakedir ${CMAKE_INSTALL_LIBDIR}/cmake/libpatch)
install(TARGETS patch patch_static EXPORT libpatchTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT libpatch
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT libpatch NAMELINK_COMPONENT libpatch)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/libpatch/include/libpatch DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT libpatch)
install(EXPORT libpatchTargets NAMESPACE libpatch:: DESTINATION ${_lp_cmakedir} COMPONENT libpatch)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/libpatchConfig.cmake.in [=[
@PACKAGE_INIT@
include(CMakeFindDependencyMacro)
find_dependency(Threads)
include(${CMAKE_CURRENT_LIST_DIR}/libpatchTargets.cmake)
check_required_components(libpatch)
]=])
configure_package_config_file(${CMAKE_CURRENT_BINARY_DIR}/libpatchConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/libpatchConfig.cmake INSTALL_DESTINATION ${_lp_cmakedir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/libpatchConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/libpatchConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/libpatchConfigVersion.cmake
  DESTINATION ${_lp_cmakedir} COMPONENT libpatch)

# libpatch.pc: prefix relative to the .pc file itself. Libs.private is what a
# static link (pkg-config --static) needs beyond libpatch.a: LLVM MC's archives
# (linked into libpatch.so, not into libpatch.a), the C++ runtime, threads.
file(RELATIVE_PATH _lp_pc_up ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" _lp_pc_up "${_lp_pc_up}")
set(_lp_private)
set(_lp_llvm_dirs)
foreach(_a IN LISTS LP_LLVM_LINK_STATIC)
  if(_a MATCHES "^(.*)/lib([^/]+)\\.a$")
    list(APPEND _lp_llvm_dirs "-L${CMAKE_MATCH_1}")
    list(APPEND _lp_private "-l${CMAKE_MATCH_2}")
  else()
    list(APPEND _lp_private "-l${_a}")
  endif()
endforeach()
list(REMOVE_DUPLICATES _lp_llvm_dirs)
list(APPEND _lp_private -lstdc++ -lm -lpthread)
if(CMAKE_DL_LIBS)
  list(APPEND _lp_private -l${CMAKE_DL_LIBS})
endif()
list(JOIN _lp_llvm_dirs " " _lp_llvm_dirs)
list(JOIN _lp_private " " _lp_private)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/libpatch.pc "\
prefix=\${pcfiledir}/${_lp_pc_up}
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: libpatch
Description: Live patching of probes into running multi-threaded processes
Version: ${PROJECT_VERSION}
Libs: -L\${libdir} -lpatch
Libs.private: ${_lp_llvm_dirs} ${_lp_private}
Cflags: -I\${includedir}
")
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/libpatch.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT libpatch)
