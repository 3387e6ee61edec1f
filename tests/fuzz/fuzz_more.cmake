# tests/fuzz: four more harnesses, built the way fuzz.cmake builds fuzz_frame.
#
#   fuzz_request  frames through request validation and dispatch against a
#                 real SQLite registry (registry/*.c)
#   fuzz_csv      onecardctl's patient CSV parser (clients/onecardctl/csv.c)
#   fuzz_config   onecardd's config-file parser (broker/onecardd.c's
#                 config_set through inih)
#   fuzz_fhir     the FHIR door's query-string and JSON-body parser
#                 (broker/fhir_parse.c)
#
# With Clang and -DONECARD_FUZZ=ON each is a libFuzzer binary and the ctest
# fuzz/<name> fuzzes it for 30 s from its committed corpus (new inputs go to
# the build folder). Otherwise each is linked with fuzz_main.c and the ctest
# fuzz/<name>-corpus replays tests/fuzz/corpus/<name>/: seeds and every crash
# once found stay regression tests in every build. docs/hardening.md says how
# to fuzz longer.
option(ONECARD_FUZZ "build libFuzzer harnesses (needs Clang)" OFF)

set(FUZZ_SRC "${CMAKE_CURRENT_LIST_DIR}")
set(FUZZ_CORPUS "${FUZZ_SRC}/corpus")

# The registry's own sources, compiled into fuzz_request so they carry
# coverage feedback under libFuzzer.
file(GLOB FUZZ_REGISTRY_SOURCES CONFIGURE_DEPENDS
  "${CMAKE_SOURCE_DIR}/registry/*.c")
# The rest of the daemon except onecardd.c (fuzz_config includes that one).
file(GLOB FUZZ_DAEMON_SOURCES CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/broker/*.c")
list(REMOVE_ITEM FUZZ_DAEMON_SOURCES "${CMAKE_SOURCE_DIR}/broker/onecardd.c")

# onecard_fuzz_target(<name> <sources>...): fuzz_<name> or fuzz_<name>_corpus
# and its ctest; the caller adds links and includes to ${ONECARD_FUZZ_TARGET}.
macro(onecard_fuzz_target name)
  if(ONECARD_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
    set(ONECARD_FUZZ_TARGET fuzz_${name})
    add_executable(${ONECARD_FUZZ_TARGET} "${FUZZ_SRC}/fuzz_${name}.c" ${ARGN})
    target_compile_options(${ONECARD_FUZZ_TARGET} PRIVATE
      -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer)
    target_link_options(${ONECARD_FUZZ_TARGET} PRIVATE
      -fsanitize=fuzzer,address,undefined)
    set_target_properties(${ONECARD_FUZZ_TARGET} PROPERTIES
      RUNTIME_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
    set(_work "${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/${name}")
    file(MAKE_DIRECTORY "${_work}")
    # -close_fd_mask=2: the harnessed code's own stderr chatter is dropped;
    # libFuzzer's report and the sanitizers' still come through.
    add_test(NAME fuzz/${name}
      COMMAND ${ONECARD_FUZZ_TARGET} -max_total_time=30 -print_final_stats=1
              -close_fd_mask=2
              -artifact_prefix=${CMAKE_CURRENT_BINARY_DIR}/fuzz-${name}-
              "${_work}" "${FUZZ_CORPUS}/${name}")
    set_tests_properties(fuzz/${name} PROPERTIES TIMEOUT 120)
  else()
    set(ONECARD_FUZZ_TARGET fuzz_${name}_corpus)
    add_executable(${ONECARD_FUZZ_TARGET} "${FUZZ_SRC}/fuzz_${name}.c"
      "${FUZZ_SRC}/fuzz_main.c" ${ARGN})
    set_target_properties(${ONECARD_FUZZ_TARGET} PROPERTIES
      RUNTIME_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
    add_test(NAME fuzz/${name}-corpus
      COMMAND ${ONECARD_FUZZ_TARGET} "${FUZZ_CORPUS}/${name}")
  endif()
endmacro()

onecard_fuzz_target(request ${FUZZ_REGISTRY_SOURCES})
target_include_directories(${ONECARD_FUZZ_TARGET} PRIVATE "${CMAKE_SOURCE_DIR}/registry"
  "${CMAKE_SOURCE_DIR}/registry/match")
# match/ (the matcher, names, Unihan tables) comes from the library: only
# those objects are pulled from it, the registry's own are compiled above.
target_link_libraries(${ONECARD_FUZZ_TARGET} PRIVATE onecard_proto
  PkgConfig::SQLITE PkgConfig::EVENT OpenSSL::Crypto Threads::Threads
  onecard_registry m)

onecard_fuzz_target(csv "${CMAKE_SOURCE_DIR}/clients/onecardctl/csv.c")
target_include_directories(${ONECARD_FUZZ_TARGET} PRIVATE
  "${CMAKE_SOURCE_DIR}/clients/onecardctl")

onecard_fuzz_target(config ${FUZZ_DAEMON_SOURCES})
target_include_directories(${ONECARD_FUZZ_TARGET} PRIVATE "${CMAKE_SOURCE_DIR}/broker")
# Host names in fuzzed input must not turn into DNS queries (fuzz_config.c).
target_link_options(${ONECARD_FUZZ_TARGET} PRIVATE -Wl,--wrap=getaddrinfo)
target_link_libraries(${ONECARD_FUZZ_TARGET} PRIVATE onecard_registry
  PkgConfig::EVENT PkgConfig::EVENT_EXTRA
  PkgConfig::EVENT_PTHREADS PkgConfig::EVENT_OPENSSL PkgConfig::JANSSON
  PkgConfig::INIH OpenSSL::SSL OpenSSL::Crypto
  Threads::Threads)

onecard_fuzz_target(fhir "${CMAKE_SOURCE_DIR}/broker/fhir_parse.c")
target_include_directories(${ONECARD_FUZZ_TARGET} PRIVATE "${CMAKE_SOURCE_DIR}/broker")
target_link_libraries(${ONECARD_FUZZ_TARGET} PRIVATE onecard_proto
  PkgConfig::EVENT PkgConfig::EVENT_EXTRA PkgConfig::JANSSON)
