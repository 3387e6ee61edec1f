#!/usr/bin/env bash
# bench/idle-conns.sh: onecardd's resident memory while it holds many idle
# mutual-TLS connections (default 10,000), each identified by one ping.
# Raises the descriptor limit, starts a fresh broker each run, samples
# VmRSS from /proc/PID/status before and while the connections are held,
# and prints medians. Target: 10,000 idle connections in < 1 GB.
#
#   bench/idle-conns.sh [CONNS]     (default 10000)
#   env: RUNS (3), HOLD (5 seconds), BROKER_THREADS, BENCH_THREADS (2)

BENCH_THREADS=${BENCH_THREADS:-2} # before lib.sh, whose default is 1
source "$(dirname "$0")/lib.sh"

CONNS=${1:-10000}
HOLD=${HOLD:-5}
ulimit -n $((CONNS * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((CONNS + 64)) ] || die "descriptor limit $(ulimit -n) is too low for $CONNS connections"

bench_setup

echo "# idle TLS connections: $CONNS held ${HOLD}s x $RUNS runs, onecardd VmRSS, medians"
machine_line
base=() held=() up=()
for run in $(seq "$RUNS"); do
	rm -f "$WORK/registry.db"*
	broker_start "$WORK/registry.db" --max-conns $((CONNS + 100)) --idle-timeout 0
	sleep 0.5
	base+=("$(rss_kib "$BROKER_PID")")
	log=$WORK/idle.$run.log
	"$BIN/onecard-bench" --broker "$BROKER_ADDR" --ca "$WORK/certs/ca.pem" \
		--cert "$WORK/certs/BENCH.pem" --key "$WORK/certs/BENCH.key" \
		--threads "$BENCH_THREADS" --op idle -c "$CONNS" -d "$HOLD" \
		--timeout 120 --json >"$WORK/idle.$run.json" 2>"$log" &
	bpid=$!
	BENCH_PIDS+=("$bpid")
	wait_for_line "$log" 'holding [0-9]+ connections open|no connection came up' 600 >/dev/null ||
		{ cat "$log" >&2; die "the connections did not come up"; }
	sleep 1
	held+=("$(rss_kib "$BROKER_PID")")
	wait "$bpid" || note "onecard-bench: $(tail -3 "$log")"
	up+=("$(json_get connected <"$WORK/idle.$run.json")")
	note "run $run: ${up[-1]} connections up; VmRSS ${base[-1]} KiB idle, ${held[-1]} KiB holding them"
	broker_stop
done
mb=$(median "${base[@]}") mh=$(median "${held[@]}") mu=$(median "${up[@]}")
printf "%-26s %12s\n" "connections up (median)" "$mu"
printf "%-26s %12s KiB\n" "VmRSS before" "$mb"
printf "%-26s %12s KiB\n" "VmRSS holding them" "$mh"
awk -v h="$mh" -v b="$mb" -v n="$mu" 'BEGIN {
	printf "%-26s %12.1f KiB\n", "per connection", (n > 0 ? (h - b) / n : 0)
	printf "%-26s %12.1f MiB (target < 1024 MiB)\n", "total", h / 1024 }'
