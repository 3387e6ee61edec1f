#!/bin/sh
# tests/pg/ha.sh: a broker on a PostgreSQL primary with a synchronous
# streaming standby (made with pg_basebackup) carries on, without a
# restart, when the primary is killed and the standby promoted, and loses
# no acknowledged write (issue 19, item 7).
#
#   ha.sh BIN_DIR SOURCE_DIR      (KEEP=1 keeps the work folder and logs)
#
# Both servers run on loopback as the postgres user when root (PG_USER),
# else as you, each in a temp folder, fsync on. The broker's --db is a
# multi-host libpq URI with target_session_attrs=read-write, so libpq finds
# whichever of the two takes writes. onecard-bench enrolls through the
# broker the whole time (--acked lists what was answered OK); the primary
# is stopped with -m immediate (a crash) and the standby promoted; the
# broker answers UNAVAILABLE meanwhile, then writes again; every
# acknowledged cn-id must then be in the new primary. First, the primary is
# restarted (pg_ctl restart -m fast) under the same broker. Prints the time
# from each to the first write answered OK after it.
set -eu
bin=${1:?bin dir}
src=${2:?source dir}
PG_USER=${PG_USER:-postgres}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "${PG_BIN:-/nonexistent}/pg_basebackup" ] ||
	{ echo "ha.sh: PostgreSQL server not found: run scripts/deps.sh" >&2; exit 1; }

work=$(mktemp -d /tmp/onecard-ha.XXXXXX)
chmod 755 "$work"
broker_pid=""
cleanup() {
	if [ -n "$broker_pid" ]; then
		kill "$broker_pid" 2>/dev/null || true
	fi
	for d in primary standby; do
		if [ -d "$work/$d" ]; then
			as_pg "$PG_BIN/pg_ctl" -D "$work/$d" -m immediate stop >/dev/null 2>&1 || true
		fi
	done
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
fail() {
	echo "ha.sh: $*" >&2
	for f in "$work"/*.log; do
		[ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }
	done
	exit 1
}
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u "$PG_USER" -- "$@")
	else
		"$@"
	fi
}
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
psql_at() {
	"$PG_BIN/psql" -h 127.0.0.1 -p "$1" -U onecard -d postgres -qAt -c "$2"
}

p1=$(free_port)
p2=$(free_port)
[ "$(id -u)" = 0 ] && chown "$PG_USER" "$work"
as_pg "$PG_BIN/initdb" -D "$work/primary" -U onecard --auth=trust -E UTF8 \
	--no-locale --no-sync >"$work/initdb.log" 2>&1 || fail "initdb failed"
cat >>"$work/primary/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $p1
unix_socket_directories = '$work'
fsync = on
synchronous_commit = on
synchronous_standby_names = 'standby1'
wal_level = replica
max_wal_senders = 4
shared_buffers = 32MB
EOF
as_pg "$PG_BIN/pg_ctl" -D "$work/primary" -l "$work/primary.log" -w start >/dev/null ||
	fail "the primary did not start"
as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$p1" -U onecard -D "$work/standby" -R \
	>"$work/basebackup.log" 2>&1 || fail "pg_basebackup failed"
# postgresql.auto.conf, where -R wrote its own primary_conninfo: this one,
# later in the file, names the standby for synchronous_standby_names.
# With synchronous replication a commit waits for the standby, which
# reconnects to a restarted primary after wal_retrieve_retry_interval (5 s
# by default; 1 s here, as an operator would set it).
as_pg sh -c "cat >>'$work/standby/postgresql.auto.conf'" <<EOF
port = $p2
primary_conninfo = 'host=127.0.0.1 port=$p1 user=onecard application_name=standby1'
wal_retrieve_retry_interval = 1s
EOF
as_pg "$PG_BIN/pg_ctl" -D "$work/standby" -l "$work/standby.log" -w start >/dev/null ||
	fail "the standby did not start"
for i in $(seq 100); do
	[ "$(psql_at "$p1" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'")" = sync ] && break
	[ "$i" = 100 ] && fail "the standby never became synchronous"
	sleep 0.1
done

"$src/certs/mkcerts.sh" -d "$work/certs" BENCH >/dev/null
db="postgresql://onecard@127.0.0.1:$p1,127.0.0.1:$p2/postgres?target_session_attrs=read-write&connect_timeout=2"
"$bin/onecardd" --listen 127.0.0.1:0 --db "$db" --cert "$work/certs/broker.pem" \
	--key "$work/certs/broker.key" --ca "$work/certs/ca.pem" --admins admin \
	--threads 2 2>"$work/broker.log" &
broker_pid=$!
for i in $(seq 100); do
	addr=$(grep -oE 'listening on 127\.0\.0\.1:[0-9]+' "$work/broker.log" | grep -oE '127\.0\.0\.1:[0-9]+' || true)
	[ -n "$addr" ] && break
	[ "$i" = 100 ] && fail "the broker did not start"
	sleep 0.1
done
as() {
	cn=$1
	shift
	ONECARD_BROKER=$addr ONECARD_CA="$work/certs/ca.pem" \
		ONECARD_CERT="$work/certs/$cn.pem" ONECARD_KEY="$work/certs/$cn.key" "$@"
}
as admin "$bin/onecardctl" hospital add BENCH --name Bench >/dev/null ||
	fail "hospital add failed"

# The first write answered OK through the broker, trying every 0.1 s; the
# seconds since t0 (a date +%s.%N).
write_again() {
	n=0
	until as BENCH "$bin/onecard" enroll "hosp:BENCH=$1-$n" >/dev/null 2>&1; do
		n=$((n + 1))
		[ "$n" -gt 300 ] && fail "no write answered OK 30 s after $1"
		sleep 0.1
	done
	awk -v a="$(date +%s.%N)" -v b="$2" 'BEGIN { printf "%.2f", a - b }'
}

# A restart of the primary: the broker carries on by itself.
t0=$(date +%s.%N)
as_pg "$PG_BIN/pg_ctl" -D "$work/primary" -m fast -w restart \
	-l "$work/primary.log" >/dev/null || fail "the primary did not restart"
pg_up=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')
restart=$(write_again restart "$t0")

# Enroll the whole time; crash the primary 2 s in, promote the standby.
as BENCH "$bin/onecard-bench" --op enroll -c 8 -d 10 --acked "$work/acked" \
	--quiet --json >"$work/bench.json" 2>"$work/bench.log" &
bench_pid=$!
sleep 2
as_pg "$PG_BIN/pg_ctl" -D "$work/primary" -m immediate stop >/dev/null
t0=$(date +%s.%N)
as_pg "$PG_BIN/pg_ctl" -D "$work/standby" -w promote >/dev/null ||
	fail "the standby was not promoted"
# The new primary has no standby of its own yet: waiting for one would hold
# every commit for ever. Patroni's synchronous_mode (not strict) does the
# same on a promotion; an operator does it by hand.
psql_at "$p2" "ALTER SYSTEM SET synchronous_standby_names = ''" >/dev/null &&
	psql_at "$p2" "SELECT pg_reload_conf()" >/dev/null ||
	fail "cannot make the new primary asynchronous"
# The first write answered OK after the crash, through the same broker.
promotion=$(write_again promotion "$t0")
wait "$bench_pid" || true
kill -0 "$broker_pid" || fail "the broker did not survive the failover"

acked=$(wc -l <"$work/acked")
[ "$acked" -gt 0 ] || fail "no enrollment was acknowledged"
# Every acknowledged cn-id on the new primary, compared in one query.
psql_at "$p2" "SELECT value FROM identifiers WHERE domain = 'cn-id'" |
	sort -u >"$work/held" || fail "cannot read the new primary"
missing=$(sort -u "$work/acked" | comm -23 - "$work/held" | wc -l)
[ "$missing" = 0 ] || fail "$missing of $acked acknowledged enrollments lost"
grep -q UNAVAILABLE "$work/bench.json" ||
	echo "ha.sh: note: no write was answered UNAVAILABLE during the gap" >&2
echo "ha.sh: the broker, never restarted, wrote again ${restart} s after a restart of the primary began (the server was up again at ${pg_up} s), and ${promotion} s after the primary crashed and the standby was promoted; $acked enrollments acknowledged across the crash, none lost"
