# farm_cc_library / farm_cc_test: every target looks the same (after Abseil's helpers).

add_library(farm_warnings INTERFACE)
target_compile_options(farm_warnings INTERFACE -Wall -Wextra -Wno-unused-parameter
                       $<$<BOOL:${FARM_WERROR}>:-Werror>)

# farm_cc_library(NAME SRCS a.cc b.cc DEPS lib1 lib2)
function(farm_cc_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE farm_warnings)
endfunction()

# farm_cc_binary(NAME SRCS main.cc DEPS lib)
function(farm_cc_binary name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} farm_warnings)
endfunction()

# farm_cc_test(NAME SRCS x_test.cc DEPS lib [LABELS slow] [TIMEOUT 300])
# Each GoogleTest case becomes a ctest test; GTEST_SKIP shows as skipped, never as passed.
function(farm_cc_test name)
  cmake_parse_arguments(ARG "RUN_SERIAL" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main farm_warnings)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    TEST_PREFIX "${name}."
    PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  # Labels (a list) and RUN_SERIAL cannot pass through gtest_discover_tests' PROPERTIES (it keeps
  # only the first list element): set them on the discovered tests from an include file that
  # ctest reads after the discovery's own.
  if(ARG_LABELS OR ARG_RUN_SERIAL)
    set(extra "")
    if(ARG_LABELS)
      string(APPEND extra " LABELS \"${ARG_LABELS}\"")
    endif()
    if(ARG_RUN_SERIAL)
      string(APPEND extra " RUN_SERIAL TRUE")
    endif()
    file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/${name}_props.cmake
      "foreach(_t IN LISTS ${name}_TESTS)\n  set_tests_properties(\"\${_t}\" PROPERTIES${extra})\nendforeach()\n")
    set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES
                 ${CMAKE_CURRENT_BINARY_DIR}/${name}_props.cmake)
  endif()
endfunction()
