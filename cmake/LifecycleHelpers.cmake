# Helpers that declare Lifecycle's libraries, executables and tests the same way:
# includes from the repo root, -Wall -Wextra -Werror on our own code (never on
# generated code), and tests labelled `unit` or `integration`.
include(GoogleTest)

set(LIFECYCLE_WARNINGS -Wall -Wextra -Werror)
if(LIFECYCLE_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC's flow analysis reports false "may be used uninitialized" on ASan-instrumented
  # std::variant and std::string code.
  list(APPEND LIFECYCLE_WARNINGS -Wno-maybe-uninitialized)
endif()

# lifecycle_cc_library(NAME SRCS ... DEPS ... [PRIVATE_DEPS ...])
function(lifecycle_cc_library NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${NAME} STATIC ${ARG_SRCS})
  target_include_directories(${NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${NAME} PRIVATE ${LIFECYCLE_WARNINGS})
  target_link_libraries(${NAME} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# lifecycle_cc_binary(NAME SRCS ... DEPS ...)
function(lifecycle_cc_binary NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_include_directories(${NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${NAME} PRIVATE ${LIFECYCLE_WARNINGS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS})
endfunction()

# lifecycle_cc_test(NAME SRCS ... DEPS ... LABEL unit|integration [TIMEOUT s])
# Each GoogleTest case becomes its own ctest test, listed when ctest runs.
function(lifecycle_cc_test NAME)
  cmake_parse_arguments(ARG "" "LABEL;TIMEOUT" "SRCS;DEPS" ${ARGN})
  if(NOT ARG_LABEL MATCHES "^(unit|integration)$")
    message(FATAL_ERROR "${NAME}: LABEL must be unit or integration")
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_executable(${NAME} ${ARG_SRCS})
  target_include_directories(${NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${NAME} PRIVATE ${LIFECYCLE_WARNINGS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  gtest_discover_tests(${NAME}
    DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT})
endfunction()
