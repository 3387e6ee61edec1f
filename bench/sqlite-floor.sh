#!/usr/bin/env bash
# bench/sqlite-floor.sh: how fast SQLite alone can take enrollments in the
# registry's own schema, with no broker, no network, no rule checks and no
# redo log: the floor under bench/writes-vs-postgres.sh and the import in
# bench/large-registry.sh. The schema is taken from a registry that onecardd
# creates; then N patients (each with a cn-id, a cn-ssc and an enroll event,
# random opaque ids, as the broker makes them) are inserted by SQLite's own
# engine (INSERT ... SELECT over a generated series), TX patients per
# transaction, with the broker's settings (WAL, synchronous=NORMAL, its
# writer's page cache and checkpoint size). Prints seconds and patients/s.
#
#   bench/sqlite-floor.sh [N [TX]]     (defaults 1000000 and 10000)
#   env: FLOOR_DIR (where the database goes; default the bench's work
#        directory, on the same disk as a registry would be)

source "$(dirname "$0")/lib.sh"

N=${1:-1000000}
TX=${2:-10000}

command -v sqlite3 >/dev/null || die "sqlite3 (Debian package sqlite3) not found"
bench_setup
DIR=${FLOOR_DIR:-$WORK}
SCHEMA_DB=$WORK/schema.db
DB=$DIR/floor.db

# onecardd makes the schema; keep its tables and indexes, not its rows.
broker_start "$SCHEMA_DB"
broker_stop
rm -f "$DB" "$DB-wal" "$DB-shm"
{
	echo "PRAGMA journal_mode=WAL;"
	sqlite3 "$SCHEMA_DB" .schema | grep -v '^CREATE TABLE sqlite_sequence'
} | sqlite3 "$DB" >/dev/null || die "cannot make $DB"

sql() {
	local start end
	echo "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-262144; PRAGMA temp_store=MEMORY;"
	echo "PRAGMA wal_autocheckpoint=16384; PRAGMA foreign_keys=OFF;"
	for ((start = 1; start <= N; start += TX)); do
		end=$((start + TX - 1))
		((end > N)) && end=$N
		cat <<EOF
BEGIN;
CREATE TEMP TABLE b AS
 WITH RECURSIVE c(i) AS (SELECT $start UNION ALL SELECT i + 1 FROM c WHERE i < $end)
 SELECT i, 'P' || lower(hex(randomblob(10))) AS pid,
  printf('%04d-%02d-%02d', 1930 + abs(random()) % 90, 1 + abs(random()) % 12,
   1 + abs(random()) % 28) AS birth,
  char(0x738b, 0x4f1f + abs(random()) % 2000) AS name FROM c;
INSERT INTO patients (id, name, sex, birth_date, phone, address, version,
  merged_into, created_ms)
 SELECT pid, name, 1 + i % 2, birth, '1380000' || printf('%04d', i % 10000),
  '河南省许昌市魏都区' || (i % 500) || '号', 1, '', 1700000000000 FROM b;
INSERT INTO identifiers (domain, value, patient_id)
 SELECT 'cn-id', printf('4110%02d%s%04d', abs(random()) % 100,
  replace(birth, '-', ''), i % 10000) || (i / 10000), pid FROM b;
INSERT INTO identifiers (domain, value, patient_id)
 SELECT 'cn-ssc', 'S' || lower(hex(randomblob(8))), pid FROM b;
INSERT INTO events (op, patient_id, actor, time_ms, detail)
 SELECT 'enroll', pid, 'IMPORT', 1700000000000 + i,
  '{"identifiers":["cn-id","cn-ssc"],"name":"' || name || '"}' FROM b;
DROP TABLE b;
COMMIT;
EOF
	done
}

note "inserting $N patients, $TX per transaction, into $DB"
t0=$(date +%s.%N)
sql | sqlite3 "$DB" >/dev/null || die "sqlite3 failed"
t1=$(date +%s.%N)
echo "# SQLite alone, the registry's schema: $N patients, $TX per transaction"
machine_line
awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.1f s, %.0f patients/s, %.1f us per patient\n", b - a, n / (b - a), (b - a) * 1e6 / n }'
echo "database: $(du -h "$DB" | cut -f1)"
[ -n "${FLOOR_DIR:-}" ] && rm -f "$DB" "$DB-wal" "$DB-shm"
exit 0
