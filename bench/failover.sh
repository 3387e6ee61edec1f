#!/usr/bin/env bash
# bench/failover.sh: kill -9 one of two brokers on one PostgreSQL registry
# under load (issue 19's target: clients working on the other within 1 s,
# and no acknowledged write lost).
#
# A throwaway cluster (tests/pg/cluster.sh, fsync on), two onecardd on it
# (A and B), then onecard-bench over CONNS connections, desks' work (MIX,
# default lookup=90,enroll=10), given --broker A,B --failover --acked FILE:
# every connection starts on A, the first that answers. KILL_AFTER seconds
# in, A gets SIGKILL; each lost connection connects again, to B, and the
# bench reports how long that took and how long connections went without
# answers (the longest of each is the figure). After the
# run every cn-id the bench saw acknowledged is looked for through B (one
# onecardctl export): a missing one is a lost acknowledged write. Each run
# starts A again; medians over RUNS.
#
#   bench/failover.sh
#   env: RUNS (3), SECONDS_PER_RUN (8), KILL_AFTER (3), CONNS (50), MIX,
#        BROKER_THREADS, PG_USER, PG_BIN, ONECARD_BIN_DIR

SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
source "$(dirname "$0")/lib.sh"
KILL_AFTER=${KILL_AFTER:-3}
CONNS=${CONNS:-50}
MIX=${MIX:-lookup=90,enroll=10}

bench_setup
pg_cluster_start

broker_start "$DB"
B_ADDR=$BROKER_ADDR
note "B at $B_ADDR on $DB"

echo "# kill -9 of one of two brokers on one PostgreSQL registry: $CONNS connections ($MIX), ${SECONDS_PER_RUN}s runs, A killed after ${KILL_AFTER}s, $RUNS runs"
machine_line
gaps=() conns=() rates=()
lost_total=0
for run in $(seq "$RUNS"); do
	broker_start "$DB"
	A_PID=$BROKER_PID A_ADDR=$BROKER_ADDR
	BROKER_ADDR="$A_ADDR,$B_ADDR"
	acked="$WORK/acked.$run"
	(sleep "$KILL_AFTER"; kill -KILL "$A_PID") &
	killer=$!
	# Lookups of a population never enrolled: NOT_FOUND is an answer too.
	out=$(bench --op mixed --mix "$MIX" --assume-populated -c "$CONNS" -P 1 \
		-d "$SECONDS_PER_RUN" --failover --acked "$acked") ||
		die "onecard-bench failed: $out"
	wait "$killer" || true
	wait "$A_PID" 2>/dev/null || true
	BROKER_ADDR=$B_ADDR
	n=$(wc -l <"$acked")
	ctl export --out "$WORK/export.csv" >/dev/null ||
		die "onecardctl export through B failed"
	missing=$(grep -oE '[0-9]{17}[0-9X]' "$WORK/export.csv" | sort -u |
		comm -13 - <(sort -u "$acked") | wc -l)
	lost_total=$((lost_total + missing))
	gaps+=("$(echo "$out" | json_get failover_gap_max_ms)")
	conns+=("$(echo "$out" | json_get reconnect_max_ms)")
	rates+=("$(echo "$out" | json_get throughput)")
	note "run $run: $(echo "$out" | json_get conns_lost) connections lost, $(echo "$out" | json_get reconnected) connected again to B within ${conns[-1]} ms, longest without answers ${gaps[-1]} ms; $n enrollments acknowledged, $missing of them missing after"
done
echo "every lost connection connected again to B within, median of runs: $(median "${conns[@]}") ms; runs: ${conns[*]}"
echo "longest time without answers after the kill, median of runs: $(median "${gaps[@]}") ms (target <= 1000 ms); runs: ${gaps[*]}"
echo "requests/s through the run (kill included), median: $(median "${rates[@]}")"
echo "acknowledged enrollments missing afterwards, all runs: $lost_total (target 0)"
[ "$lost_total" = 0 ]
