# tests/build: how the project builds, tested as a packager would use it.
# build/out-of-tree configures and builds onecardd in a folder of its own and
# checks that the binary lands in that folder's bin/, not in the source tree.
add_test(NAME build/out-of-tree
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/out-of-tree.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(build/out-of-tree PROPERTIES TIMEOUT 600)
