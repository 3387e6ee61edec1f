# Unit suites of files that live in a client program rather than a library:
# the file is built into its suite.
target_sources(unit_watch_state PRIVATE
  ${CMAKE_SOURCE_DIR}/clients/onecard/watch_state.c)
target_include_directories(unit_watch_state PRIVATE
  ${CMAKE_SOURCE_DIR}/clients/onecard)
target_link_libraries(unit_watch_state PRIVATE onecard_cli)
target_link_libraries(unit_cli_out PRIVATE onecard_cli)
# The audit suite compiles onecardctl's audit files into itself; the
# reports print JSON with the CLIs' shared helpers.
target_sources(unit_audit_line PRIVATE
  ${CMAKE_SOURCE_DIR}/clients/onecardctl/audit_line.c)
target_include_directories(unit_audit_line PRIVATE
  ${CMAKE_SOURCE_DIR}/clients/onecardctl)
target_link_libraries(unit_audit PRIVATE onecard_cli)
