#!/usr/bin/env bash
# bench/pg-store.sh: the registry on PostgreSQL, side by side with
# PostgreSQL's own pgbench on the same server, and with the SQLite store.
# A throwaway cluster (tests/pg/cluster.sh, fsync and synchronous_commit
# on) serves both the brokers and pgbench.
#
#   1. Durable enrollments through a broker on PostgreSQL against pgbench's
#      two-insert transaction (a patient row and its two identifier rows,
#      as bench/writes-vs-postgres.sh), CONNS connections each.
#   2. Lookups of KEYS patients, CONNS connections: cached on PostgreSQL,
#      cached on SQLite, uncached on PostgreSQL (--lookup-cache 0), and
#      pgbench's primary-key select (-S, scale PGBENCH_SCALE).
#   3. Cross-broker staleness: a second broker on the same registry; its
#      cached lookup of a patient changed through the first, from the
#      change's acknowledgement to the second's new answer (stale-bench),
#      while the first takes RATE enrollments a second.
# Each pair runs RUNS times, interleaved; medians and ratios are printed.
#
#   bench/pg-store.sh
#   env: RUNS (3), SECONDS_PER_RUN (15), CONNS (50), KEYS (100000),
#        RATE (1000), SAMPLES (300), PGBENCH_SCALE (10), BROKER_THREADS,
#        BENCH_THREADS, PG_USER, PG_BIN, ONECARD_BIN_DIR

SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
source "$(dirname "$0")/lib.sh"
CONNS=${CONNS:-50}
KEYS=${KEYS:-100000}
RATE=${RATE:-1000}
SAMPLES=${SAMPLES:-300}
PGBENCH_SCALE=${PGBENCH_SCALE:-10}
PG_USER=${PG_USER:-postgres}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PG_BIN/pgbench" ] || die "pgbench not found: run bench/deps.sh"
[ -x "$BIN/stale-bench" ] || die "$BIN/stale-bench not found: build first"

bench_setup
PG_SHARED_BUFFERS=256MB PG_MAX_CONNECTIONS=200 pg_cluster_start
PSQL=(psql "$DB" -qAt -v ON_ERROR_STOP=1)
PGB=("$PG_BIN/pgbench" "$DB")
PG_VERSION=$("${PSQL[@]}" -c 'SHOW server_version')

# pgbench's tables, beside the registry's (other names).
pg_enroll_tables
"${PGB[@]}" -i -q -s "$PGBENCH_SCALE" -I dtgvp >"$WORK/pgbench-init.log" 2>&1 ||
	{ cat "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }

echo "# the registry on PostgreSQL $PG_VERSION: ${SECONDS_PER_RUN}s x $RUNS runs, $CONNS connections, medians"
machine_line

# pgbench for SECONDS_PER_RUN at CONNS clients with extra args; prints tps.
pgbench_tps() {
	local out
	out=$("${PGB[@]}" -n -M prepared -c "$CONNS" -j "$(nproc)" -T "$SECONDS_PER_RUN" "$@" 2>&1) ||
		{ echo "$out" >&2; die "pgbench failed"; }
	echo "$out" | grep -oE 'tps = [0-9.]+' | head -1 | cut -d' ' -f3
}

# --- 1. Durable enrollments ------------------------------------------------
broker_start "$DB"
A_PID=$BROKER_PID A_ADDR=$BROKER_ADDR
b_rate=() p_rate=() b_p99=()
for run in $(seq "$RUNS"); do
	out=$(bench --op enroll -c "$CONNS" -P 1 -d "$SECONDS_PER_RUN") || die "onecard-bench failed: $out"
	b_rate+=("$(echo "$out" | json_get throughput)")
	b_p99+=("$(echo "$out" | json_get p99_ms)")
	p_rate+=("$(pgbench_tps -f "$WORK/enroll.sql")")
	note "run $run: broker ${b_rate[-1]} enrollments/s (p99 ${b_p99[-1]} ms); pgbench ${p_rate[-1]} tx/s"
done
mb=$(median "${b_rate[@]}") mp=$(median "${p_rate[@]}")
echo "enrollments/s: broker on PostgreSQL $mb (p99 $(median "${b_p99[@]}") ms), pgbench two-insert $mp: $(ratio "$mb" "$mp")x (target >= 1.0x)"

# --- 2. Lookups --------------------------------------------------------------
BROKER_ADDR=$A_ADDR
bench --op lookup --populate --keys "$KEYS" -c 8 -P 64 -n 1 >/dev/null || die "populate on PostgreSQL failed"
broker_start "$WORK/registry.db"
S_ADDR=$BROKER_ADDR
bench --op lookup --populate --keys "$KEYS" -c 8 -P 64 -n 1 >/dev/null || die "populate on SQLite failed"
broker_start "$DB" --lookup-cache 0
U_ADDR=$BROKER_ADDR
lookups() {
	BROKER_ADDR=$1
	out=$(bench --op lookup --assume-populated --keys "$KEYS" -c "$CONNS" -P 1 -d "$SECONDS_PER_RUN") ||
		die "onecard-bench failed: $out"
	[ "$(echo "$out" | json_get not_ok)" = 0 ] || note "some lookups were not OK: $out"
	echo "$out" | json_get throughput
}
# Each worker's cache fills as it is asked: one run of each cached broker
# first, not counted, so the runs compare caches that hold the keys.
lookups "$A_ADDR" >/dev/null
lookups "$S_ADDR" >/dev/null
pc=() sc=() pu=() ps=()
for run in $(seq "$RUNS"); do
	pc+=("$(lookups "$A_ADDR")")
	sc+=("$(lookups "$S_ADDR")")
	pu+=("$(lookups "$U_ADDR")")
	ps+=("$(pgbench_tps -S)")
	note "run $run: cached on PostgreSQL ${pc[-1]}/s, on SQLite ${sc[-1]}/s; uncached on PostgreSQL ${pu[-1]}/s; pgbench -S ${ps[-1]}/s"
done
mpc=$(median "${pc[@]}") msc=$(median "${sc[@]}") mpu=$(median "${pu[@]}") mps=$(median "${ps[@]}")
echo "cached lookups/s: on PostgreSQL $mpc, on SQLite $msc: $(ratio "$mpc" "$msc")x (target >= 0.9x)"
echo "uncached lookups/s: on PostgreSQL $mpu, pgbench primary-key select $mps: $(ratio "$mpu" "$mps")x (target >= 0.8x)"

# --- 3. Cross-broker staleness ----------------------------------------------
broker_start "$DB"
B_ADDR=$BROKER_ADDR
BROKER_ADDR=$A_ADDR
"$BIN/onecard-bench" --broker "$A_ADDR" --ca "$WORK/certs/ca.pem" \
	--cert "$WORK/certs/BENCH.pem" --key "$WORK/certs/BENCH.key" --quiet --json \
	--op enroll -c 50 --rate "$RATE" -d 3600 >"$WORK/load.json" 2>&1 &
LOAD_PID=$!
BENCH_PIDS+=("$LOAD_PID")
sleep 2
st=$(ONECARD_CERT="$WORK/certs/BENCH.pem" ONECARD_KEY="$WORK/certs/BENCH.key" \
	ONECARD_CA="$WORK/certs/ca.pem" "$BIN/stale-bench" --writer "$A_ADDR" \
	--reader "$B_ADDR" --samples "$SAMPLES") || die "stale-bench failed: $st"
kill -TERM "$LOAD_PID" 2>/dev/null || true
wait "$LOAD_PID" 2>/dev/null || true
load=$(json_get throughput <"$WORK/load.json" || echo "?")
echo "cross-broker staleness of a cached lookup, $SAMPLES changes, writes at $RATE/s (offered; ${load:-?}/s taken): p50 $(echo "$st" | json_get p50_ms) ms, p99 $(echo "$st" | json_get p99_ms) ms, max $(echo "$st" | json_get max_ms) ms (target p99 <= 50 ms)"
