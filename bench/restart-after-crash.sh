#!/usr/bin/env bash
# bench/restart-after-crash.sh: how long a registry of N patients (default
# 1,000,000) takes to come back after kill -9 with M of its writes
# (default 500,000) answered but not yet folded into the SQLite image, and
# what the registry costs in memory per patient.
#
# The first N - M generated patients are imported and folded; then the fold
# is held (the test hook ONECARD_TEST_FOLD_HOLD names a file; while it
# exists the fold waits) and the last M are imported, so they live only in
# the redo log and in memory. kill -9, then a timed restart: from exec to
# "listening", with the broker's own line on what it loaded and replayed.
# Memory: the broker's resident memory after that restart (lookup cache
# off, nothing asked yet) less that of a broker on an empty registry,
# divided by N, RUNS times; and the bytes the broker's index took, which it
# logs at start-up (its heap grown by the load, SQLite's cache given back).
#
#   bench/restart-after-crash.sh [N [M]]
#   env: RUNS (3), REUSE_CSV (a generated CSV of N patients to use)

source "$(dirname "$0")/lib.sh"

N=${1:-1000000}
M=${2:-500000}
[ "$M" -lt "$N" ] || die "M ($M) must be below N ($N)"

bench_setup
CSV=${REUSE_CSV:-$WORK/gen.csv}
[ -f "$CSV" ] || "$BIN/onecardctl" gen --patients "$N" --seed 11 --out "$CSV"
head -n $((N - M + 1)) "$CSV" >"$WORK/first.csv"
{ head -n 1 "$CSV"; tail -n "$M" "$CSV"; } >"$WORK/last.csv"
HOLD=$WORK/fold-hold
DB=$WORK/registry.db
METRICS_PORT=$(free_port)
now() { date +%s.%N; }

echo "# restart after kill -9: $N patients, $M writes not folded; $RUNS runs, medians"
machine_line

# Resident memory of a broker on an empty registry, for the baseline.
broker_start "$WORK/empty.db" --lookup-cache 0
sleep 1
empty_kib=$(rss_kib "$BROKER_PID")
broker_stop

export ONECARD_TEST_FOLD_HOLD=$HOLD
rm -f "$HOLD"
broker_start "$DB" --lookup-cache 0 --metrics-listen "127.0.0.1:$METRICS_PORT" --log-level info
for h in $(seq -f "H%03g" 1 10); do ctl hospital add "$h" --name "$h" >/dev/null; done
ctl import "$WORK/first.csv" --reject "$WORK/rej1.csv" >/dev/null 2>&1 ||
	die "import of the first $((N - M)) failed"
note "first $((N - M)) imported; fold caught up after $(fold_catch_up) s more"
touch "$HOLD"
ctl import "$WORK/last.csv" --reject "$WORK/rej2.csv" >/dev/null 2>&1 ||
	die "import of the last $M failed"
unfolded=$(metric onecard_registry_unfolded_entries)
unfolded_mb=$(awk -v b="$(metric onecard_registry_unfolded_bytes)" 'BEGIN { printf "%.0f", b / 1048576 }')
note "last $M imported with the fold held: $unfolded log entries ($unfolded_mb MiB) unfolded"
kill -9 "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null || true
unset ONECARD_TEST_FOLD_HOLD
rm -f "$HOLD"
cp -a "$DB" "$WORK/crashed.db"
cp -a "$DB-redo" "$WORK/crashed.db-redo"
[ -f "$DB-wal" ] && cp -a "$DB-wal" "$WORK/crashed.db-wal"

secs=() rss=() per=()
for run in $(seq "$RUNS"); do
	# Each run restarts the same crashed registry.
	rm -f "$DB" "$DB-wal" "$DB-shm" "$DB-redo"
	cp -a "$WORK/crashed.db" "$DB"
	cp -a "$WORK/crashed.db-redo" "$DB-redo"
	[ -f "$WORK/crashed.db-wal" ] && cp -a "$WORK/crashed.db-wal" "$DB-wal"
	sync
	t0=$(now)
	broker_start "$DB" --lookup-cache 0 --metrics-listen "127.0.0.1:$METRICS_PORT" --log-level info
	t1=$(now)
	secs+=("$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.2f\n", a - b }')")
	k=$(rss_kib "$BROKER_PID")
	rss+=("$k")
	per+=("$(awk -v k="$k" -v e="$empty_kib" -v n="$N" 'BEGIN { printf "%.0f\n", (k - e) * 1024 / n }')")
	note "run $run: listening after ${secs[-1]} s; $(grep -oE 'registry .*: [0-9]+ patients.*' "$BROKER_LOG" | head -1 | sed 's|^registry [^:]*: ||')"
	[ "$run" = "$RUNS" ] && note "fold caught up $(fold_catch_up) s after start-up"
	n=$(ctl stats --json 2>/dev/null | grep -oE '"patients":[0-9]+' | head -1 | cut -d: -f2)
	[ "$n" = "$N" ] || note "run $run: $n patients after the restart, want $N"
	broker_stop
done
printf "%-28s %s\n" "restart (exec to listening)" "$(median "${secs[@]}") s (target < 20 s)"
printf "%-28s %s\n" "resident memory" "$(median "${rss[@]}") KiB (empty registry: $empty_kib KiB)"
printf "%-28s %s\n" "memory per patient" "$(median "${per[@]}") bytes (resident, lookup cache off)"
