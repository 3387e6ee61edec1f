# Unit suites of files that live in a client program rather than a library:
# the file is built into its suite.
target_link_libraries(unit_cli_out PRIVATE onecard_cli)
