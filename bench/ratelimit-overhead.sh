#!/usr/bin/env bash
# bench/ratelimit-overhead.sh: lookups with a rate limit on every lookup
# (--rate-lookup 1000000/1000000: every one takes from its hospital's
# bucket, none is refused) against the same broker without limits, on one
# registry of KEYS patients, 50 connections of one hospital (BENCH: one
# bucket shared by every worker, the contended case), pipeline depth 1 and
# 16. The broker is restarted for each run, alternating off and on, RUNS
# times; medians and the ratio on/off are printed. Target (issue 21):
# policy and limits together cost <= 3% of lookup throughput.
#
#   bench/ratelimit-overhead.sh [KEYS]     (default 10000)
#   env: RUNS (3), SECONDS_PER_RUN (10), CONNS (50), DEPTHS ("1 16"),
#   ON_FLAGS (the "on" broker's flags; default the rate limit alone:
#   ON_FLAGS="--rate-lookup 1000000/1000000 --disclosure minimal" measures
#   the limits with the recommended disclosure policy)

source "$(dirname "$0")/lib.sh"

KEYS=${1:-10000}
CONNS=${CONNS:-50}
DEPTHS=${DEPTHS:-1 16}
read -r -a ON <<<"${ON_FLAGS:---rate-lookup 1000000/1000000}"

bench_setup
DB=$WORK/registry.db
broker_start "$DB"
note "enrolling $KEYS patients"
bench --op lookup --populate --keys "$KEYS" -c 8 -P 64 -n 1 >/dev/null || die "populate failed"
broker_stop

echo "# lookups with ${ON[*]} (on) vs without (off): $KEYS keys, $CONNS connections, ${SECONDS_PER_RUN}s x $RUNS runs, medians"
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
		broker_start "$DB" "${ON[@]}"
		t0=$(cpu_ticks "$BROKER_PID")
		out=$(bench --op lookup --assume-populated --keys "$KEYS" -c "$CONNS" -P "$depth" -d "$SECONDS_PER_RUN") ||
			die "onecard-bench failed: $out"
		onc+=("$(cpu_us_per_req $(($(cpu_ticks "$BROKER_PID") - t0)) "$(echo "$out" | json_get requests)")")
		broker_stop
		on+=("$(echo "$out" | json_get throughput)")
		onp+=("$(echo "$out" | json_get p99_ms)")
		note "depth $depth run $run: off ${off[-1]}/s p99 ${offp[-1]} ms ${offc[-1]} us CPU/req; on ${on[-1]}/s p99 ${onp[-1]} ms ${onc[-1]} us CPU/req"
	done
	mo=$(median "${off[@]}") mop=$(median "${offp[@]}")
	mn=$(median "${on[@]}") mnp=$(median "${onp[@]}")
	printf "%-6s %14s %10s %14s %10s %8s %8s %8s\n" "$depth" "$mo" "$mop" "$mn" "$mnp" "$(ratio "$mn" "$mo")" \
		"$(median "${offc[@]}")" "$(median "${onc[@]}")"
done
echo "(on/off: target >= 0.97; cpu_* = broker CPU microseconds per lookup)"
