# The tests that run the registry on PostgreSQL share one throwaway cluster
# (tests/pg/cluster.sh), started by the fixture pg/start before the first of
# them and stopped by pg/stop after the last; the URL is in pg/url under the
# build folder. No server, no pass: pg/start fails, and every test needing
# it is reported as not run.
set(PG_STATE "${CMAKE_BINARY_DIR}/pg")
add_test(NAME pg/start COMMAND ${CMAKE_CURRENT_LIST_DIR}/cluster.sh start ${PG_STATE})
add_test(NAME pg/stop COMMAND ${CMAKE_CURRENT_LIST_DIR}/cluster.sh stop ${PG_STATE})
set_tests_properties(pg/start PROPERTIES FIXTURES_SETUP pg TIMEOUT 120)
set_tests_properties(pg/stop PROPERTIES FIXTURES_CLEANUP pg TIMEOUT 60)

# The registry's unit suite again, on PostgreSQL.
add_test(NAME unit/registry_pg COMMAND unit_registry --pg)
set(PG_TESTS unit/registry_pg)
# Every integration test named test_pg*.c runs against the cluster.
foreach(src ${INTEGRATION_TESTS})
  get_filename_component(name ${src} NAME_WE)
  if(name MATCHES "^test_pg")
    string(REGEX REPLACE "^test_" "" short ${name})
    list(APPEND PG_TESTS integration/${short})
  endif()
endforeach()
set_tests_properties(${PG_TESTS} PROPERTIES FIXTURES_REQUIRED pg
  ENVIRONMENT "ONECARD_TEST_PG_URLFILE=${PG_STATE}/url")
# The integration suite again with each broker's registry in a new schema
# of the cluster (ONECARD_TEST_STORE, tests/integration/harness_pg.c): the
# contract through every door on PostgreSQL. Left out, as only the SQLite
# store has what they test: its backup of files, its disk faults, its
# write-ahead log; and test_pg*, which run on PostgreSQL already.
set(SQLITE_ONLY backup faults writeahead)
foreach(src ${INTEGRATION_TESTS})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^test_" "" short ${name})
  list(FIND SQLITE_ONLY ${short} only)
  if(only EQUAL -1 AND NOT name MATCHES "^test_pg")
    add_test(NAME integration-pg/${short} COMMAND it_${short})
    set_tests_properties(integration-pg/${short} PROPERTIES TIMEOUT 600
      FIXTURES_REQUIRED pg ENVIRONMENT
      "ONECARD_TEST_STORE=postgresql;ONECARD_TEST_PG_URLFILE=${PG_STATE}/url")
  endif()
endforeach()

# A primary with a synchronous standby (pg_basebackup) of its own: the
# broker rides a restart and a promotion without losing an acknowledged
# write (tests/pg/ha.sh; not the shared cluster).
add_test(NAME pg/ha COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/ha.sh
  ${ONECARD_BIN_DIR} ${CMAKE_SOURCE_DIR})
set_tests_properties(pg/ha PROPERTIES TIMEOUT 300)
