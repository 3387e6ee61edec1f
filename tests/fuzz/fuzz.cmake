# tests/fuzz: libFuzzer harnesses and their seed corpora.
#
# With Clang and -DONECARD_FUZZ=ON each harness is a libFuzzer binary and the
# ctest fuzz/<name> fuzzes it for 30 s starting from its committed corpus.
# Otherwise each harness is linked with fuzz_main.c, a plain driver, and the
# ctest fuzz/<name>-corpus replays the corpus: every seed and every crash once
# found stays a regression test in every build.
option(ONECARD_FUZZ "build libFuzzer harnesses (needs Clang)" OFF)

set(FUZZ_SRC "${CMAKE_CURRENT_LIST_DIR}")
set(FUZZ_CORPUS "${FUZZ_SRC}/corpus")

if(ONECARD_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  set(FUZZ_FLAGS -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer)
  add_executable(fuzz_frame "${FUZZ_SRC}/fuzz_frame.c"
    # Compiled again here so the codec itself carries coverage feedback;
    # its copy in onecard_proto is then never pulled from the archive.
    "${CMAKE_SOURCE_DIR}/proto/wire.c")
  target_compile_options(fuzz_frame PRIVATE ${FUZZ_FLAGS})
  target_link_options(fuzz_frame PRIVATE ${FUZZ_FLAGS})
  target_link_libraries(fuzz_frame PRIVATE onecard_proto)
  set_target_properties(fuzz_frame PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  # New inputs go to the first folder, so the committed corpus stays as is.
  set(FUZZ_WORK "${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/frame")
  file(MAKE_DIRECTORY "${FUZZ_WORK}")
  add_test(NAME fuzz/frame
    COMMAND fuzz_frame -max_total_time=30 -print_final_stats=1
            -artifact_prefix=${CMAKE_CURRENT_BINARY_DIR}/fuzz-frame-
            "${FUZZ_WORK}" "${FUZZ_CORPUS}/frame")
  set_tests_properties(fuzz/frame PROPERTIES TIMEOUT 120)
else()
  add_executable(fuzz_frame_corpus "${FUZZ_SRC}/fuzz_frame.c"
    "${FUZZ_SRC}/fuzz_main.c")
  target_link_libraries(fuzz_frame_corpus PRIVATE onecard_proto)
  set_target_properties(fuzz_frame_corpus PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  add_test(NAME fuzz/frame-corpus
    COMMAND fuzz_frame_corpus "${FUZZ_CORPUS}/frame")
endif()
