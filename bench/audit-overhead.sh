#!/usr/bin/env bash
# bench/audit-overhead.sh: lookups with the audit trail on (--audit-log)
# against the same broker with it off, on one registry of KEYS patients,
# 50 connections, pipeline depth 1 and 16. The broker is restarted for each
# run, alternating off and on, RUNS times; medians and the ratio on/off are
# printed. Target: on >= 90% of off.
#
#   bench/audit-overhead.sh [KEYS]     (default 10000)
#   env: RUNS (3), SECONDS_PER_RUN (10), CONNS (50), DEPTHS ("1 16")

source "$(dirname "$0")/lib.sh"

KEYS=${1:-10000}
CONNS=${CONNS:-50}
DEPTHS=${DEPTHS:-1 16}

bench_setup
DB=$WORK/registry.db
broker_start "$DB"
note "enrolling $KEYS patients"
bench --op lookup --populate --keys "$KEYS" -c 8 -P 64 -n 1 >/dev/null || die "populate failed"
broker_stop

echo "# lookups with --audit-log on vs off: $KEYS keys, $CONNS connections, ${SECONDS_PER_RUN}s x $RUNS runs, medians"
machine_line
printf "%-6s %14s %10s %14s %10s %8s %8s %8s\n" depth off_req/s p99_ms on_req/s p99_ms on/off cpu_off cpu_on
for depth in $DEPTHS; do
	off=() offp=() on=() onp=() offc=() onc=()
	for run in $(seq "$RUNS"); do
		broker_start "$DB"
		t0=$(cpu_ticks "$BROKER_PID")
		out=$(bench --op lookup --assume-populated --keys "$KEYS" -c "$CONNS" -P "$depth" -d "$SECONDS_PER_RUN") ||
			die "onecard-bench failed: $out"
		offc+=("$(cpu_us_per_req $(($(cpu_ticks "$BROKER_PID") - t0)) "$(echo "$out" | json_get requests)")")
		broker_stop
		off+=("$(echo "$out" | json_get throughput)")
		offp+=("$(echo "$out" | json_get p99_ms)")
		rm -f "$WORK/audit.log"
		broker_start "$DB" --audit-log "$WORK/audit.log"
		t0=$(cpu_ticks "$BROKER_PID")
		out=$(bench --op lookup --assume-populated --keys "$KEYS" -c "$CONNS" -P "$depth" -d "$SECONDS_PER_RUN") ||
			die "onecard-bench failed: $out"
		onc+=("$(cpu_us_per_req $(($(cpu_ticks "$BROKER_PID") - t0)) "$(echo "$out" | json_get requests)")")
		broker_stop
		on+=("$(echo "$out" | json_get throughput)")
		onp+=("$(echo "$out" | json_get p99_ms)")
		note "depth $depth run $run: off ${off[-1]}/s p99 ${offp[-1]} ms ${offc[-1]} us CPU/req; on ${on[-1]}/s p99 ${onp[-1]} ms ${onc[-1]} us CPU/req; audit log $(wc -l <"$WORK/audit.log") lines"
	done
	mo=$(median "${off[@]}") mop=$(median "${offp[@]}")
	mn=$(median "${on[@]}") mnp=$(median "${onp[@]}")
	printf "%-6s %14s %10s %14s %10s %8s %8s %8s\n" "$depth" "$mo" "$mop" "$mn" "$mnp" "$(ratio "$mn" "$mo")" \
		"$(median "${offc[@]}")" "$(median "${onc[@]}")"
done
echo "(on/off: target >= 0.90; cpu_* = broker CPU microseconds per lookup)"
