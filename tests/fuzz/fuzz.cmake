# tests/fuzz: libFuzzer harnesses and their seed corpora.
#
# With Clang and -DONECARD_FUZZ=ON each harness is a libFuzzer binary and the
# ctest fuzz/<name> fuzzes it for 30 s starting from its committed corpus
# (tests/fuzz/corpus/<name>/). Otherwise each harness is linked with
# fuzz_main.c, a plain driver, and the ctest fuzz/<name>-corpus replays the
# corpus: every seed and every crash once found stays a regression test in
# every build.
#
# A harness elsewhere adds itself from its own fragment (tests/fuzz/*.cmake is
# included after this file, in name order) with
#   onecard_fuzz(<name> SOURCES <files...> [LIBRARIES <targets...>]
#                [INCLUDES <dirs...>] [COVERAGE_SOURCES <files...>])
# COVERAGE_SOURCES are compiled into the libFuzzer binary only, so code that a
# library also holds gets coverage feedback there; the library's own copy is
# then never pulled from its archive.
option(ONECARD_FUZZ "build libFuzzer harnesses (needs Clang)" OFF)

set(FUZZ_SRC "${CMAKE_CURRENT_LIST_DIR}")
set(FUZZ_CORPUS "${FUZZ_SRC}/corpus")
set(FUZZ_FLAGS -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer)
if(ONECARD_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  set(FUZZ_LIBFUZZER ON)
else()
  set(FUZZ_LIBFUZZER OFF)
endif()

function(onecard_fuzz name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBRARIES;INCLUDES;COVERAGE_SOURCES"
    ${ARGN})
  set(corpus "${FUZZ_CORPUS}/${name}")
  if(FUZZ_LIBFUZZER)
    set(target fuzz_${name})
    add_executable(${target} ${F_SOURCES} ${F_COVERAGE_SOURCES})
    target_compile_options(${target} PRIVATE ${FUZZ_FLAGS})
    target_link_options(${target} PRIVATE ${FUZZ_FLAGS})
  else()
    set(target fuzz_${name}_corpus)
    add_executable(${target} ${F_SOURCES} "${FUZZ_SRC}/fuzz_main.c")
  endif()
  target_include_directories(${target} PRIVATE ${F_INCLUDES})
  target_compile_definitions(${target} PRIVATE ${TEST_DEFS})
  target_link_libraries(${target} PRIVATE ${F_LIBRARIES})
  set_target_properties(${target} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  if(FUZZ_LIBFUZZER)
    # New inputs go to the first folder, so the committed corpus stays as is.
    set(work "${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/${name}")
    file(MAKE_DIRECTORY "${work}")
    add_test(NAME fuzz/${name}
      COMMAND ${target} -max_total_time=30 -print_final_stats=1
              -artifact_prefix=${CMAKE_CURRENT_BINARY_DIR}/fuzz-${name}-
              "${work}" "${corpus}")
    set_tests_properties(fuzz/${name} PROPERTIES TIMEOUT 120)
  else()
    add_test(NAME fuzz/${name}-corpus COMMAND ${target} "${corpus}")
  endif()
endfunction()

# The frame codec: arbitrary byte streams through peek, unpack, re-encode.
onecard_fuzz(frame
  SOURCES "${FUZZ_SRC}/fuzz_frame.c"
  COVERAGE_SOURCES "${CMAKE_SOURCE_DIR}/proto/wire.c"
  LIBRARIES onecard_proto)
