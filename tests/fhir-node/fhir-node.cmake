# tests/fhir-node: the FHIR door asked by a real FHIR client. fhir/node runs
# run.sh, which installs fhir-kit-client and the FHIR R4 JSON schema
# validator (package-lock.json) into the build folder, starts onecardd with
# --fhir-listen and runs test.mjs against it under node.
add_test(NAME fhir/node
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/run.sh ${CMAKE_SOURCE_DIR} ${ONECARD_BIN_DIR}
    ${CMAKE_CURRENT_BINARY_DIR}/fhir-node)
set_tests_properties(fhir/node PROPERTIES TIMEOUT 300)
