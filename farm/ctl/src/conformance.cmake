# `farmctl conformance` (issue 7): a library (also used by the tests) linked
# into farmctl. Included from farm/ctl/CMakeLists.txt.
add_library(farm_conformance_lib STATIC
  ${CMAKE_CURRENT_LIST_DIR}/conformance_matrix.cpp
  ${CMAKE_CURRENT_LIST_DIR}/conformance_report.cpp
  ${CMAKE_CURRENT_LIST_DIR}/conformance_run.cpp)
target_include_directories(farm_conformance_lib PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(farm_conformance_lib PUBLIC farm_ctl_lib farmd_lib farm_agent_lib CLI11::CLI11
                      nlohmann_json::nlohmann_json)
target_compile_options(farm_conformance_lib PRIVATE -Wall -Wextra)
target_link_libraries(farmctl PRIVATE farm_conformance_lib)

if(BUILD_TESTING AND EXISTS ${CMAKE_CURRENT_LIST_DIR}/../../../tests/conformance/CMakeLists.txt)
  add_subdirectory(${CMAKE_CURRENT_LIST_DIR}/../../../tests/conformance ${CMAKE_BINARY_DIR}/tests/conformance)
endif()
