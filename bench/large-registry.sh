#!/usr/bin/env bash
# bench/large-registry.sh: lookups on a large registry (default 1,000,000
# patients) against a small one (10,000), and the time a bulk import of the
# large one takes. Both registries are made with `onecardctl gen` and loaded
# with `onecardctl import` through a running onecardd; the lookups pick
# uniformly among the cn-ids of the generated file (--keys-from). Lookup
# runs alternate between the two registries, RUNS times each; medians and
# the ratio large/small are printed. Targets: large >= 90% of small; import
# of 1,000,000 in under 60 s (and when the SQLite image caught up).
#
#   bench/large-registry.sh [LARGE [SMALL]]
#   env: RUNS (3), SECONDS_PER_RUN (10), CONNS (50), DEPTHS ("1 16"),
#        IMPORT_CONNS, IMPORT_DEPTH (onecardctl import's defaults if unset),
#        LOOKUP_CACHE (MB for both brokers' --lookup-cache; 0 measures the
#        registry alone), WARM_SECS (unmeasured lookups on each registry
#        first, so that the caches hold what they will hold; 0),
#        REUSE_DIR (keep the generated files and registries there, and use
#        them instead of generating and importing again when they exist;
#        the import is then not timed)

source "$(dirname "$0")/lib.sh"

LARGE=${1:-1000000}
SMALL=${2:-10000}
CONNS=${CONNS:-50}
DEPTHS=${DEPTHS:-1 16}

bench_setup

import_flags=()
[ -n "${IMPORT_CONNS:-}" ] && import_flags+=(--connections "$IMPORT_CONNS")
[ -n "${IMPORT_DEPTH:-}" ] && import_flags+=(--depth "$IMPORT_DEPTH")

now() { date +%s.%N; }

RDIR=${REUSE_DIR:-$WORK}
mkdir -p "$RDIR" || die "cannot make $RDIR"

# Make a registry of N patients (seed S) behind a running broker; sets
# the broker's address in the variable named by $3.
make_registry() {
	local n=$1 seed=$2 var=$3 t0 t1 t2 h
	if [ -n "${REUSE_DIR:-}" ] && [ -s "$RDIR/reg$n.csv" ] && [ -s "$RDIR/reg$n.db" ]; then
		broker_start "$RDIR/reg$n.db" ${LOOKUP_CACHE:+--lookup-cache "$LOOKUP_CACHE"}
		printf -v "$var" '%s' "$BROKER_ADDR"
		IMPORT_SECS=reused
		note "$n patients: reusing $RDIR/reg$n.db ($(du -ch "$RDIR/reg$n.db"* | tail -1 | cut -f1) on disk)"
		return
	fi
	rm -f "$RDIR/reg$n.db" "$RDIR/reg$n.db"-*
	t0=$(now)
	"$BIN/onecardctl" gen --patients "$n" --seed "$seed" --out "$RDIR/reg$n.csv"
	GEN_SECS=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
	METRICS_PORT=$(free_port)
	broker_start "$RDIR/reg$n.db" ${LOOKUP_CACHE:+--lookup-cache "$LOOKUP_CACHE"} \
		--metrics-listen "127.0.0.1:$METRICS_PORT"
	for h in H001 H002 H003 H004 H005 H006 H007 H008 H009 H010; do
		ctl hospital add "$h" --name "Hospital $h" >/dev/null 2>&1 || true
	done
	t1=$(now)
	ctl import "${import_flags[@]}" "$RDIR/reg$n.csv" >"$WORK/import$n.out" 2>&1 ||
		{ tail -5 "$WORK/import$n.out" >&2; die "import of $n patients failed"; }
	t2=$(now)
	printf -v "$var" '%s' "$BROKER_ADDR"
	IMPORT_SECS=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", b - a }')
	# The import is answered at the redo log; the SQLite image catches up
	# behind it.
	FOLD_SECS=$(fold_catch_up)
	[ "$FOLD_SECS" != never ] &&
		FOLD_SECS=$(awk -v a="$IMPORT_SECS" -v b="$FOLD_SECS" 'BEGIN { printf "%.2f", a + b }')
	note "$n patients: gen ${GEN_SECS}s, import ${IMPORT_SECS}s ($(awk -v n="$n" -v s="$IMPORT_SECS" 'BEGIN { printf "%.0f", n / s }')/s), the image caught up at ${FOLD_SECS}s, $(du -ch "$RDIR/reg$n.db"* | tail -1 | cut -f1) on disk"
}

note "making the small registry ($SMALL patients)"
make_registry "$SMALL" 2 SMALL_ADDR
note "making the large registry ($LARGE patients)"
make_registry "$LARGE" 1 LARGE_ADDR
LARGE_IMPORT=$IMPORT_SECS LARGE_FOLD=${FOLD_SECS:-}

if [ "${WARM_SECS:-0}" -gt 0 ]; then
	note "warming: ${WARM_SECS}s of lookups on each registry"
	for n in "$LARGE" "$SMALL"; do
		[ "$n" = "$LARGE" ] && BROKER_ADDR=$LARGE_ADDR || BROKER_ADDR=$SMALL_ADDR
		bench --op lookup --keys-from "$RDIR/reg$n.csv" -c "$CONNS" -P 16 -d "$WARM_SECS" >/dev/null ||
			die "warm-up failed"
	done
fi

echo "# lookups on $LARGE vs $SMALL patients: $CONNS connections, ${SECONDS_PER_RUN}s x $RUNS runs, medians${LOOKUP_CACHE:+, --lookup-cache $LOOKUP_CACHE}${WARM_SECS:+, warmed ${WARM_SECS}s}"
machine_line
if [ "$LARGE_IMPORT" = reused ]; then
	echo "import of $LARGE patients: not timed (registries reused from $RDIR)"
else
	echo "import of $LARGE patients: ${LARGE_IMPORT}s ($(awk -v n="$LARGE" -v s="$LARGE_IMPORT" 'BEGIN { printf "%.0f", n / s }') patients/s; target < 60 s for 1,000,000); the image caught up at ${LARGE_FOLD}s"
fi
printf "%-6s %14s %10s %14s %10s %8s\n" depth large_req/s p99_ms small_req/s p99_ms large/small
for depth in $DEPTHS; do
	l_rate=() l_p99=() s_rate=() s_p99=()
	for run in $(seq "$RUNS"); do
		BROKER_ADDR=$LARGE_ADDR
		out=$(bench --op lookup --keys-from "$RDIR/reg$LARGE.csv" -c "$CONNS" -P "$depth" -d "$SECONDS_PER_RUN") ||
			die "onecard-bench failed: $out"
		l_rate+=("$(echo "$out" | json_get throughput)")
		l_p99+=("$(echo "$out" | json_get p99_ms)")
		BROKER_ADDR=$SMALL_ADDR
		out=$(bench --op lookup --keys-from "$RDIR/reg$SMALL.csv" -c "$CONNS" -P "$depth" -d "$SECONDS_PER_RUN") ||
			die "onecard-bench failed: $out"
		s_rate+=("$(echo "$out" | json_get throughput)")
		s_p99+=("$(echo "$out" | json_get p99_ms)")
		note "depth $depth run $run: large ${l_rate[-1]}/s p99 ${l_p99[-1]} ms; small ${s_rate[-1]}/s p99 ${s_p99[-1]} ms"
	done
	ml=$(median "${l_rate[@]}") mlp=$(median "${l_p99[@]}")
	ms=$(median "${s_rate[@]}") msp=$(median "${s_p99[@]}")
	printf "%-6s %14s %10s %14s %10s %8s\n" "$depth" "$ml" "$mlp" "$ms" "$msp" "$(ratio "$ml" "$ms")"
done
echo "(large/small: target >= 0.90)"
