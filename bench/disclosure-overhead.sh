#!/usr/bin/env bash
# bench/disclosure-overhead.sh: what the disclosure policy costs lookups.
# On one registry of KEYS patients, 50 connections, pipeline depth 1 and
# 16, the broker is restarted for each run, in turn: this build under the
# default (full); this build with --disclosure minimal (every reply decoded,
# filtered, and encoded again when something is left out); and, when
# BASE_BIN_DIR names the bin/ of a build from before the policy, that
# broker. RUNS times each; medians of throughput, p99 and the broker's CPU
# per lookup. Target: full >= 0.97 of base (issue 21, policy and limits
# together).
#
#   BASE_BIN_DIR=/tmp/base/build/bin bench/disclosure-overhead.sh [KEYS]
#   env: RUNS (3), SECONDS_PER_RUN (10), CONNS (50), DEPTHS ("1 16"),
#        BROKER_THREADS (nproc)
#
# The populated patients hold only BENCH's own cards, so under minimal the
# filter decodes each reply and sends it unchanged; a registry where every
# patient holds other hospitals' cards would add an encode per reply.

source "$(dirname "$0")/lib.sh"

KEYS=${1:-10000}
CONNS=${CONNS:-50}
DEPTHS=${DEPTHS:-1 16}
NEW_BIN=$BIN
MODES="full minimal"
[ -n "${BASE_BIN_DIR:-}" ] && MODES="base $MODES"

bench_setup
DB=$WORK/registry.db
broker_start "$DB"
note "enrolling $KEYS patients"
bench --op lookup --populate --keys "$KEYS" -c 8 -P 64 -n 1 >/dev/null || die "populate failed"
broker_stop

# One run of mode $1 at depth $2: sets R (req/s), P (p99 ms), C (CPU us).
run_mode() {
	local mode=$1 depth=$2 out t0 flags=()
	BIN=$NEW_BIN
	case $mode in
	base) BIN=$BASE_BIN_DIR ;;
	minimal) flags=(--disclosure minimal) ;;
	esac
	broker_start "$DB" "${flags[@]}"
	BIN=$NEW_BIN
	t0=$(cpu_ticks "$BROKER_PID")
	out=$(bench --op lookup --assume-populated --keys "$KEYS" -c "$CONNS" -P "$depth" -d "$SECONDS_PER_RUN") ||
		die "onecard-bench failed: $out"
	C=$(cpu_us_per_req $(($(cpu_ticks "$BROKER_PID") - t0)) "$(echo "$out" | json_get requests)")
	R=$(echo "$out" | json_get throughput)
	P=$(echo "$out" | json_get p99_ms)
	broker_stop
}

echo "# lookups by disclosure policy: $KEYS keys, $CONNS connections, ${SECONDS_PER_RUN}s x $RUNS runs, medians"
machine_line
printf "%-6s %-8s %12s %8s %8s %8s %8s\n" depth mode req/s p99_ms cpu_us vs_full cpu_vs
for depth in $DEPTHS; do
	declare -A rate=() p99=() cpu=()
	for run in $(seq "$RUNS"); do
		for mode in $MODES; do
			run_mode "$mode" "$depth"
			rate[$mode]+="$R " p99[$mode]+="$P " cpu[$mode]+="$C "
			note "depth $depth run $run $mode: $R/s p99 $P ms $C us CPU/lookup"
		done
	done
	# shellcheck disable=SC2086
	fr=$(median ${rate[full]}) fc=$(median ${cpu[full]})
	for mode in $MODES; do
		# shellcheck disable=SC2086
		mr=$(median ${rate[$mode]}) mc=$(median ${cpu[$mode]})
		# shellcheck disable=SC2086
		printf "%-6s %-8s %12s %8s %8s %8s %8s\n" "$depth" "$mode" "$mr" "$(median ${p99[$mode]})" "$mc" \
			"$(ratio "$mr" "$fr")" "$(ratio "$mc" "$fc")"
	done
	unset rate p99 cpu
done
echo "(vs_full: throughput against this build under full; for base, full = 1 / that: target full >= 0.97 of base)"
