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
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main farm_warnings)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  set(props TIMEOUT ${ARG_TIMEOUT})
  if(ARG_LABELS)
    list(APPEND props LABELS "${ARG_LABELS}")
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    TEST_PREFIX "${name}."
    PROPERTIES ${props})
endfunction()
