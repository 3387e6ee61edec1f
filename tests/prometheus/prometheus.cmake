# tests/prometheus: the alerting rules and the Grafana dashboard in dist/.
# prometheus/alert-rules runs promtool check rules and promtool test rules
# (onecard-alerts.test.yml); grafana/dashboard checks the dashboard's JSON
# and runs its queries through promtool. Both check that every metric they
# name is one onecardd exports.
add_test(NAME prometheus/alert-rules
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/check.sh rules ${CMAKE_SOURCE_DIR})
add_test(NAME grafana/dashboard
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/check.sh dashboard ${CMAKE_SOURCE_DIR})
