# The CLIs' edges that are not C: bash completion, man pages, what
# `cmake --install` puts where. Each is a shell script in tests/tools.
add_test(NAME tools/completion
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/completion.sh
    ${CMAKE_SOURCE_DIR}/clients/completion/onecard.bash)
if(SCDOC)
  add_test(NAME tools/man
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/man.sh ${SCDOC}
      ${CMAKE_SOURCE_DIR}/docs/man ${ONECARD_BIN_DIR})
  add_test(NAME tools/install
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/install.sh ${CMAKE_COMMAND}
      ${CMAKE_BINARY_DIR})
endif()
