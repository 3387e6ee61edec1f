#!/bin/sh
# prometheus/alert-rules and grafana/dashboard: the operator files in dist/.
#   tests/prometheus/check.sh rules SOURCE_DIR      promtool check + test rules
#   tests/prometheus/check.sh dashboard SOURCE_DIR  the dashboard's JSON, its
#       PromQL (through promtool, as recording rules) and its metric names
# Needs promtool (Debian's prometheus package; scripts/deps.sh installs it):
# without it the test fails rather than skipping.
set -eu
what=$1
src=$2
command -v promtool >/dev/null || {
	echo "check.sh: promtool not found: apt-get install prometheus" >&2
	exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every onecard_* name used in $1 must be a family the broker exports
# (broker/metrics.c, and notify.c for the subscriptions').
known_metrics() {
	bad=0
	for m in $(grep -o 'onecard_[a-z_]*' "$1" | sort -u); do
		base=${m%_bucket}
		grep -q "\"$base[ {\"]" "$src/broker/metrics.c" "$src/broker/notify.c" ||
			grep -q "\"$base\"" "$src/broker/metrics.c" "$src/broker/notify.c" || {
			echo "check.sh: $1 uses $m, which onecardd does not export" >&2
			bad=1
		}
	done
	return $bad
}

case $what in
rules)
	promtool check rules "$src/dist/prometheus/onecard-alerts.yml"
	cd "$src/tests/prometheus"
	promtool test rules onecard-alerts.test.yml
	known_metrics "$src/dist/prometheus/onecard-alerts.yml"
	;;
dashboard)
	dash=$src/dist/grafana/onecard-dashboard.json
	python3 - "$dash" "$tmp/dashboard-rules.yml" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
assert exprs, "no panel queries"
rules = [{"record": "dashboard:panel_%d" % i,
          "expr": e.replace("$__rate_interval", "5m").replace("$instance", ".*")}
         for i, e in enumerate(exprs)]
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
print("dashboard: %d panels, %d queries" % (len(d["panels"]), len(exprs)))
PY
	promtool check rules "$tmp/dashboard-rules.yml"
	known_metrics "$dash"
	;;
*)
	echo "usage: $0 rules|dashboard SOURCE_DIR" >&2
	exit 2
	;;
esac
