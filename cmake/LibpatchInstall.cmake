# Installs libpatch with a find_package(libpatch) config and a libpatch.pc.
include(CMakePackageConfigHelpers)
install(TARGETS patch EXPORT libpatchTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/libpatch/include/libpatch DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT libpatchTargets NAMESPACE libpatch:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/libpatch)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/libpatchConfig.cmake.in
  "@PACKAGE_INIT@\ninclude(CMakeFindDependencyMacro)\nfind_dependency(Threads)\ninclude(\${CMAKE_CURRENT_LIST_DIR}/libpatchTargets.cmake)\n")
configure_package_config_file(${CMAKE_CURRENT_BINARY_DIR}/libpatchConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/libpatchConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/libpatch)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/libpatchConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/libpatchConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/libpatchConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/libpatch)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/libpatch.pc
  "prefix=${CMAKE_INSTALL_PREFIX}\nlibdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}\nincludedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}\n\nName: libpatch\nDescription: Live patching of probes into running multi-threaded processes\nVersion: ${PROJECT_VERSION}\nLibs: -L\${libdir} -lpatch -lpthread -ldl\nCflags: -I\${includedir}\n")
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/libpatch.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
