# tests/fuzz: the name normaliser (registry/match/name_norm.c) and its
# generated Unihan tables, built by fuzz.cmake's onecard_fuzz: a libFuzzer
# binary with Clang and -DONECARD_FUZZ=ON (ctest fuzz/name_norm), else the
# corpus replay (ctest fuzz/name_norm-corpus) over tests/fuzz/corpus/name_norm/.
# name_norm.c is compiled into the libFuzzer binary for coverage; the tables
# come from onecard_registry.
onecard_fuzz(name_norm
  SOURCES "${FUZZ_SRC}/fuzz_name_norm.c"
  COVERAGE_SOURCES "${CMAKE_SOURCE_DIR}/registry/match/name_norm.c"
  LIBRARIES onecard_registry)
