# bench/lib.sh: what the side-by-side benchmark scripts share (sourced).
#
# Finds the binaries (ONECARD_BIN_DIR, else build/bin), makes a throwaway
# folder with the dev PKI, starts and stops onecardd on a loopback port,
# reads flat keys out of onecard-bench --json, and takes medians. Every
# process started here is remembered and killed on exit, by its own pid.

set -euo pipefail

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${ONECARD_BIN_DIR:-$BENCH_ROOT/build/bin}
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
BROKER_THREADS=${BROKER_THREADS:-$(nproc)}
BENCH_THREADS=${BENCH_THREADS:-1}

BENCH_PIDS=()
WORK=""

die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

note() {
	echo "== $*" >&2
}

# Kill what we started, remove the folder.
bench_cleanup() {
	local p
	for p in "${BENCH_PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	for p in "${BENCH_PIDS[@]:-}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null || true
	done
	if [ -n "$WORK" ] && [ -z "${KEEP:-}" ]; then
		rm -rf "$WORK"
	fi
}

# A fresh folder with the dev PKI for admin, BENCH and any extra CNs.
bench_setup() {
	for b in onecardd onecard-bench onecardctl; do
		[ -x "$BIN/$b" ] || die "$BIN/$b not found: build first or set ONECARD_BIN_DIR"
	done
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/onecard-bench.XXXXXX")
	chmod 755 "$WORK"
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	"$BENCH_ROOT/certs/mkcerts.sh" -d "$WORK/certs" BENCH "$@" >/dev/null
	chmod -R a+rX "$WORK/certs"
}

# Wait until a log file holds a line matching a pattern; print the line.
wait_for_line() {
	local file=$1 pattern=$2 secs=${3:-30} i
	for ((i = 0; i < secs * 10; i++)); do
		if grep -qE "$pattern" "$file" 2>/dev/null; then
			grep -E "$pattern" "$file" | head -1
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# Start onecardd on a fresh port with registry DB and extra flags; sets
# BROKER_PID and BROKER_ADDR and registers hospital BENCH.
broker_start() {
	local db=$1 line
	shift
	local log="$WORK/onecardd.$RANDOM.log"
	"$BIN/onecardd" --listen 127.0.0.1:0 --db "$db" \
		--cert "$WORK/certs/broker.pem" --key "$WORK/certs/broker.key" \
		--ca "$WORK/certs/ca.pem" --admins admin \
		--threads "$BROKER_THREADS" --log-level warn "$@" 2>"$log" &
	BROKER_PID=$!
	BENCH_PIDS+=("$BROKER_PID")
	line=$(wait_for_line "$log" 'listening on 127\.0\.0\.1:[0-9]+' 30) ||
		{ cat "$log" >&2; die "onecardd did not start"; }
	BROKER_ADDR=$(echo "$line" | grep -oE '127\.0\.0\.1:[0-9]+' | head -1)
	BROKER_LOG=$log
	ctl hospital add BENCH --name "Bench hospital" >/dev/null 2>&1 || true
}

# Stop the broker started last.
broker_stop() {
	kill "$BROKER_PID" 2>/dev/null || true
	wait "$BROKER_PID" 2>/dev/null || true
}

# onecardctl as admin against the broker.
ctl() {
	"$BIN/onecardctl" --broker "$BROKER_ADDR" --ca "$WORK/certs/ca.pem" \
		--cert "$WORK/certs/admin.pem" --key "$WORK/certs/admin.key" "$@"
}

# onecard-bench as hospital BENCH against the broker; --json appended.
bench() {
	"$BIN/onecard-bench" --broker "$BROKER_ADDR" --ca "$WORK/certs/ca.pem" \
		--cert "$WORK/certs/BENCH.pem" --key "$WORK/certs/BENCH.key" \
		--threads "$BENCH_THREADS" --quiet --json "$@"
}

# The value of a flat key in a JSON object on stdin.
json_get() {
	grep -oE "\"$1\":[-0-9.]+" | head -1 | cut -d: -f2
}

# The median of numbers, one per argument.
median() {
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# a / b to two decimals.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.2f\n", a / b }'
}

# Resident memory of a process in KiB.
rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# What machine this is, for the record.
machine_line() {
	echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -r)"
}

# CPU time a process has used, in clock ticks (user + system, all its
# threads; with a second argument, plus its waited-for children's).
cpu_ticks() {
	awk -v kids="${2:-}" '{ t = $14 + $15; if (kids != "") t += $16 + $17; print t }' "/proc/$1/stat"
}

# CPU time of this script's waited-for children so far, in clock ticks: read
# before and after a command substitution, the difference is what the command
# (and its helpers, such as a grep it pipes into) used.
child_ticks() {
	awk '{ print $16 + $17 }' "/proc/$$/stat"
}

# Microseconds of CPU per request: ticks used, requests answered.
cpu_us_per_req() {
	awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n + 0 == 0) print "nan"; else printf "%.1f\n", t * 1e6 / hz / n }'
}

# A free loopback TCP port.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The value of one series of the broker's /metrics (started with
# --metrics-listen 127.0.0.1:$METRICS_PORT); empty when it is not there.
metric() {
	curl -s "127.0.0.1:$METRICS_PORT/metrics" | awk -v k="$1" '$1 == k { print $2 }'
}

# Wait until the fold has caught up (no unfolded entries); the seconds it
# took, or "never" after a timeout (default 600 s).
fold_catch_up() {
	local t0 u secs=${1:-600}
	t0=$(date +%s.%N)
	while :; do
		u=$(metric onecard_registry_unfolded_entries)
		[ "$u" = 0 ] && break
		if awk -v a="$(date +%s.%N)" -v b="$t0" -v s="$secs" 'BEGIN { exit !(a - b > s) }'; then
			echo never
			return
		fi
		sleep 0.1
	done
	awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f\n", a - b }'
}

# PostgreSQL's side of the durable-enrollment comparison, in the database
# "${PSQL[@]}" reaches: a patient table and an identifier table keyed as
# the registry's, and $WORK/enroll.sql, pgbench's transaction: a patient
# row and its cn-id and visit-card rows.
pg_enroll_tables() {
	"${PSQL[@]}" <<'EOF'
CREATE TABLE patient (
	id bigserial PRIMARY KEY,
	name text NOT NULL,
	sex smallint NOT NULL,
	birth_date date NOT NULL,
	version bigint NOT NULL DEFAULT 1,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE identifier (
	domain text NOT NULL,
	value text NOT NULL,
	patient_id bigint NOT NULL REFERENCES patient (id),
	PRIMARY KEY (domain, value)
);
CREATE INDEX identifier_patient ON identifier (patient_id);
EOF
	cat >"$WORK/enroll.sql" <<'EOF'
BEGIN;
WITH p AS (INSERT INTO patient (name, sex, birth_date) VALUES ('王伟明', 1, '1980-02-29') RETURNING id)
INSERT INTO identifier (domain, value, patient_id)
SELECT 'cn-id', lpad(CAST(id AS text), 18, '0'), id FROM p UNION ALL SELECT 'hosp' || chr(58) || 'BENCH', 'W' || id, id FROM p; -- chr(58): pgbench reads a colon as a variable
END;
EOF
	chmod a+r "$WORK/enroll.sql"
}

# A throwaway cluster (tests/pg/cluster.sh, fsync on) for this run, stopped
# at exit; its libpq URL in DB. Settings from the environment
# (PG_SHARED_BUFFERS, PG_MAX_CONNECTIONS).
pg_cluster_start() {
	PG_STATE="$WORK/pg"
	trap 'pg_cluster_stop' EXIT
	"$BENCH_ROOT/tests/pg/cluster.sh" start "$PG_STATE" >/dev/null ||
		die "the PostgreSQL cluster did not start (bench/deps.sh installs it)"
	DB=$(cat "$PG_STATE/url")
}

pg_cluster_stop() {
	"$BENCH_ROOT/tests/pg/cluster.sh" stop "$PG_STATE" >/dev/null 2>&1 || true
	bench_cleanup
}
