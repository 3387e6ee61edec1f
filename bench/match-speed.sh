#!/usr/bin/env bash
# bench/match-speed.sh [N]: how fast matching is on a registry of N
# patients (default 1,000,000) of onecardctl gen's population (10%
# duplicates), the speed targets of issue 17:
#   - a ranked search by a patient's name and birth date: p99 at depth 1
#     (one connection), and searches a second at 50 connections;
#   - durable enrollments at 50 connections with the enroll's duplicate
#     check against the same broker with --duplicate-check off (>= 0.8x);
#   - the whole-registry scan (< 5 min for 1,000,000);
#   - the match index's memory a patient (from the broker's load line).
# The population is loaded with --duplicate-check off (a bulk load), then
# the broker restarts on it. RUNS runs (3) of SECONDS_PER_RUN (10) each;
# medians.
#   bench/match-speed.sh 1000000
source "$(dirname "$0")/lib.sh"

N=${1:-1000000}
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-10}

bench_setup
machine_line
now() { date +%s.%N; }
# onecard-bench, refusing a run in which any reply was not OK.
run() {
	local out
	out=$(bench "$@") || die "onecard-bench $* failed"
	[ "$(echo "$out" | json_get not_ok)" = 0 ] ||
		die "onecard-bench $*: replies not OK: $(echo "$out" | grep -oE '"codes":\{[^}]*\}')"
	echo "$out"
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
"$BIN/onecardctl" gen --patients "$N" --duplicates 0.1 --seed 7 \
	--out "$WORK/pop.csv" --truth "$WORK/truth.csv" >/dev/null
note "generated $N rows in $(secs "$t0" "$(now)") s"
broker_start "$WORK/reg.db" --duplicate-check off
for h in H001 H002 H003 H004 H005 H006 H007 H008 H009 H010; do
	ctl hospital add "$h" --name "Hospital $h" >/dev/null 2>&1 || true
done
t0=$(now)
ctl import "$WORK/pop.csv" >"$WORK/import.out" 2>&1 ||
	{ tail -5 "$WORK/import.out" >&2; die "import failed"; }
note "imported in $(secs "$t0" "$(now)") s: $(tail -1 "$WORK/import.out")"
broker_stop

# Searches and the scan, with the duplicate check on (the default).
broker_start "$WORK/reg.db" --log-level info
LOAD=$(grep -h 'image loaded' "$BROKER_LOG" | sed 's/^.*registry [^:]*: //')
note "loaded: $LOAD"
MATCH_BYTES=$(echo "$LOAD" | grep -oE "matching's [0-9]+" | grep -oE '[0-9]+')
p99=() rate1=() rate50=()
for run in $(seq "$RUNS"); do
	out=$(run --op search --keys-from "$WORK/pop.csv" -c 1 -P 1 -d "$SECS")
	p99+=("$(echo "$out" | json_get p99_ms)")
	rate1+=("$(echo "$out" | json_get throughput)")
	out=$(run --op search --keys-from "$WORK/pop.csv" -c 50 -P 1 -d "$SECS")
	rate50+=("$(echo "$out" | json_get throughput)")
	note "search run $run: depth 1 p99 ${p99[-1]} ms (${rate1[-1]}/s), 50 connections ${rate50[-1]}/s"
done
t0=$(now)
ctl --json duplicates scan >"$WORK/scan.json" 2>/dev/null || die "scan failed"
SCAN_SECS=$(secs "$t0" "$(now)")
note "scan: $(cat "$WORK/scan.json") in $SCAN_SECS s"

# Enrollments with the check and without, on the same registry.
on=() off=()
for run in $(seq "$RUNS"); do
	out=$(run --op enroll -c 50 -P 1 -d "$SECS")
	on+=("$(echo "$out" | json_get throughput)")
	broker_stop
	broker_start "$WORK/reg.db" --duplicate-check off
	out=$(run --op enroll -c 50 -P 1 -d "$SECS")
	off+=("$(echo "$out" | json_get throughput)")
	broker_stop
	broker_start "$WORK/reg.db"
	note "enroll run $run: with the check ${on[-1]}/s, without ${off[-1]}/s"
done
broker_stop

echo "population: $N patients (onecardctl gen --duplicates 0.1 --seed 7)"
echo "search, depth 1: p99 $(median "${p99[@]}") ms, $(median "${rate1[@]}")/s (target p99 <= 5 ms)"
echo "search, 50 connections: $(median "${rate50[@]}")/s (target >= 10,000/s)"
echo "enroll, 50 connections: with the check $(median "${on[@]}")/s, without $(median "${off[@]}")/s: $(ratio "$(median "${on[@]}")" "$(median "${off[@]}")")x (target >= 0.8x)"
echo "whole-registry scan: $SCAN_SECS s (target < 300 s for 1,000,000)"
echo "match index: $MATCH_BYTES bytes a patient"
