#!/usr/bin/env bash
# bench/writes-vs-postgres.sh: durable enrollments on onecardd against
# PostgreSQL insert transactions with synchronous_commit=on, on this
# machine, 50 connections each. An enrollment is a new patient with a cn-id
# and a hosp:BENCH visit card; the PostgreSQL transaction inserts a patient
# row and those two identifier rows. PostgreSQL is a throwaway cluster in a
# temp folder, run by an unprivileged user (postgres, or $PG_USER) on a
# loopback TCP port. Each side runs RUNS times, interleaved; medians and the
# ratio broker/postgres are printed.
#
# After each broker run the script notes the fold lag (how far the SQLite
# image is behind the answered writes) and the registry's size; the broker
# keeps its registry across runs, so it grows run by run (past 1,000,000
# with the defaults). LONG_SECONDS > 0 adds one broker-only run that long
# at the end, with its rate for each minute.
#
#   bench/writes-vs-postgres.sh
#   env: RUNS (3), SECONDS_PER_RUN (60), CONNS (50), LONG_SECONDS (0),
#        BROKER_THREADS, BENCH_THREADS, PG_BIN (newest
#        /usr/lib/postgresql/*/bin), PG_USER

SECONDS_PER_RUN=${SECONDS_PER_RUN:-60}
source "$(dirname "$0")/lib.sh"
LONG_SECONDS=${LONG_SECONDS:-0}

CONNS=${CONNS:-50}
PG_USER=${PG_USER:-postgres}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PG_BIN/initdb" ] || die "PostgreSQL server binaries not found: run bench/deps.sh"
[ -x "$PG_BIN/pgbench" ] || die "pgbench not found: run bench/deps.sh"
id "$PG_USER" >/dev/null 2>&1 || die "user $PG_USER does not exist (set PG_USER)"

bench_setup

# Run a command as the unprivileged PostgreSQL user.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$PG_USER" -- "$@"
	else
		"$@"
	fi
}

# --- PostgreSQL ---------------------------------------------------------------
PGDATA=$WORK/pg
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)))
PGLOG=$WORK/pglog
mkdir -p "$PGDATA" "$PGLOG"
[ "$(id -u)" = 0 ] && chown "$PG_USER" "$PGDATA" "$PGLOG"
as_pg "$PG_BIN/initdb" -D "$PGDATA" -U bench --auth=trust -E UTF8 --no-locale >"$PGLOG/initdb.log" 2>&1 ||
	{ cat "$PGLOG/initdb.log" >&2; die "initdb failed"; }
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGLOG/pg.log" -w -o \
	"-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c max_connections=200 -c synchronous_commit=on -c fsync=on -c shared_buffers=256MB" \
	start >/dev/null || { cat "$PGLOG/pg.log" >&2; die "pg_ctl start failed"; }
pg_stop() {
	as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
	bench_cleanup
}
trap pg_stop EXIT
PSQL=("$PG_BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U bench -d postgres -qAt -v ON_ERROR_STOP=1)
pg_enroll_tables
PG_VERSION=$("${PSQL[@]}" -c 'SHOW server_version')
SYNC=$("${PSQL[@]}" -c 'SHOW synchronous_commit')

# --- onecardd -------------------------------------------------------------------
METRICS_PORT=$(free_port)
broker_start "$WORK/registry.db" --metrics-listen "127.0.0.1:$METRICS_PORT"
note "onecardd at $BROKER_ADDR; PostgreSQL $PG_VERSION at 127.0.0.1:$PGPORT (synchronous_commit=$SYNC)"

echo "# durable enrollments vs PostgreSQL inserts: $CONNS connections, ${SECONDS_PER_RUN}s x $RUNS runs, medians"
machine_line
PG_PID=$(head -1 "$PGDATA/postmaster.pid")
b_rate=() b_p99=() p_rate=() p_p99=() b_cpu=() p_cpu=() b_lag=()
for run in $(seq "$RUNS"); do
	t0=$(cpu_ticks "$BROKER_PID")
	out=$(bench --op enroll -c "$CONNS" -P 1 -d "$SECONDS_PER_RUN") || die "onecard-bench failed: $out"
	b_cpu+=("$(cpu_us_per_req $(($(cpu_ticks "$BROKER_PID") - t0)) "$(echo "$out" | json_get requests)")")
	b_rate+=("$(echo "$out" | json_get throughput)")
	b_p99+=("$(echo "$out" | json_get p99_ms)")
	[ "$(echo "$out" | json_get created)" = "$(echo "$out" | json_get requests)" ] ||
		note "not every enrollment made a new patient: $out"
	b_lag+=("$(metric onecard_registry_fold_lag_seconds)")
	b_size=$(metric onecard_registry_patients)
	note "run $run: broker at the end: fold lag ${b_lag[-1]} s, $(metric onecard_registry_unfolded_entries) entries unfolded, $b_size patients"

	rm -f "$WORK"/pgbench_log.*
	# The postmaster's own time plus its backends' once they exit.
	t0=$(cpu_ticks "$PG_PID" kids)
	(cd "$WORK" && "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U bench -n -M prepared \
		-c "$CONNS" -j "$(nproc)" -T "$SECONDS_PER_RUN" -f "$WORK/enroll.sql" -l \
		postgres >"$WORK/pgbench.out" 2>&1) || { cat "$WORK/pgbench.out" >&2; die "pgbench failed"; }
	sleep 0.5 # the backends exit after pgbench hangs up
	p_cpu+=("$(cpu_us_per_req $(($(cpu_ticks "$PG_PID" kids) - t0)) "$(grep -oE 'actually processed: [0-9]+' "$WORK/pgbench.out" | grep -oE '[0-9]+$')")")
	p_rate+=("$(grep -oE 'tps = [0-9.]+' "$WORK/pgbench.out" | head -1 | cut -d' ' -f3)")
	# Per-transaction log: field 3 is the latency in microseconds.
	p_p99+=("$(cat "$WORK"/pgbench_log.* | awk '{ print $3 }' | sort -n |
		awk '{ a[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f\n", a[i] / 1000 }')")
	note "run $run: broker ${b_rate[-1]}/s p99 ${b_p99[-1]} ms ${b_cpu[-1]} us CPU/write; postgres ${p_rate[-1]}/s p99 ${p_p99[-1]} ms ${p_cpu[-1]} us CPU/write"
done
mb=$(median "${b_rate[@]}") mbp=$(median "${b_p99[@]}")
mp=$(median "${p_rate[@]}") mpp=$(median "${p_p99[@]}")
printf "%-14s %12s %10s %14s\n" side writes/s p99_ms cpu_us/write
printf "%-14s %12s %10s %14s\n" onecardd "$mb" "$mbp" "$(median "${b_cpu[@]}")"
printf "%-14s %12s %10s %14s\n" postgresql "$mp" "$mpp" "$(median "${p_cpu[@]}")"
echo "ratio broker/postgres: $(ratio "$mb" "$mp")x writes/s (target >= 5x)"
echo "fold lag at the end of the broker's runs: $(median "${b_lag[@]}") s (median); registry: $b_size patients"

# --- one long run ---------------------------------------------------------------
if [ "$LONG_SECONDS" -gt 0 ]; then
	echo "# one run of ${LONG_SECONDS}s, $CONNS connections: enrollments/s each minute"
	"$BIN/onecard-bench" --broker "$BROKER_ADDR" --ca "$WORK/certs/ca.pem" \
		--cert "$WORK/certs/BENCH.pem" --key "$WORK/certs/BENCH.key" \
		--threads "$BENCH_THREADS" --json --op enroll -c "$CONNS" -P 1 \
		-d "$LONG_SECONDS" >"$WORK/long.json" 2>"$WORK/long.progress" ||
		die "the long run failed: $(tail -3 "$WORK/long.progress")"
	# Progress lines: "... enroll   <s>s ... total <n>"; the total at each
	# whole minute gives that minute's rate.
	awk '/ enroll .* total / { for (i = 1; i <= NF; i++) { if ($i ~ /^[0-9]+s$/) t = $i + 0; if ($i == "total") n = $(i + 1) }
		m = int(t / 60); last[m] = n; if (m > maxm) maxm = m }
		END { prev = 0; for (m = 0; m < maxm; m++) { if (!(m in last)) continue;
			r = (last[m] - prev) / 60; printf "minute %2d: %8.0f/s\n", m + 1, r; rates[m] = r; prev = last[m] }
			lo = hi = rates[0]; sum = 0; k = 0
			for (m in rates) { if (rates[m] < lo) lo = rates[m]; if (rates[m] > hi) hi = rates[m]; sum += rates[m]; k++ }
			mean = sum / k
			printf "slowest minute %.0f/s, fastest %.0f/s, mean %.0f/s: every minute within %.1f%% of the mean (target: 10%%)\n",
				lo, hi, mean, 100 * ((mean - lo > hi - mean) ? (mean - lo) : (hi - mean)) / mean }' \
		"$WORK/long.progress"
	echo "whole run: $(json_get throughput <"$WORK/long.json")/s, p99 $(json_get p99_ms <"$WORK/long.json") ms; fold lag at its end $(metric onecard_registry_fold_lag_seconds) s; registry: $(metric onecard_registry_patients) patients"
fi
