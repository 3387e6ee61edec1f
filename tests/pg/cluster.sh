#!/bin/sh
# tests/pg/cluster.sh: a throwaway PostgreSQL cluster for the tests that run
# the registry on PostgreSQL (ctest's pg fixture runs it around them).
#   cluster.sh start STATE   initdb + pg_ctl start in a new temp folder, on
#                            127.0.0.1 at a free port, fsync on; writes the
#                            libpq URL to STATE/url
#   cluster.sh stop STATE    stops it and removes the folder
# As root the server runs as the postgres user (PG_USER), else as you.
# PG_BIN: the server's binaries (default: the newest /usr/lib/postgresql/*).
# PG_SHARED_BUFFERS (32MB), PG_MAX_CONNECTIONS (100): the server's settings.
# Fails loudly, never skips: a test that needs the server must not pass
# without one.
set -eu
cmd=${1:?start or stop}
state=${2:?state folder}
PG_USER=${PG_USER:-postgres}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

# Run a command as the server's user.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u "$PG_USER" -- "$@")
	else
		"$@"
	fi
}

stop() {
	[ -f "$state/data" ] || return 0
	data=$(cat "$state/data")
	as_pg "$PG_BIN/pg_ctl" -D "$data/db" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$data" "$state/data" "$state/url"
}

case $cmd in
stop)
	stop
	exit 0
	;;
start) ;;
*) die "unknown command $cmd" ;;
esac

[ -x "${PG_BIN:-/nonexistent}/initdb" ] ||
	die "PostgreSQL server not found (/usr/lib/postgresql/*/bin/initdb): run scripts/deps.sh (Debian package postgresql)"
if [ "$(id -u)" = 0 ]; then
	id "$PG_USER" >/dev/null 2>&1 || die "user $PG_USER does not exist (set PG_USER)"
fi
mkdir -p "$state"
stop # a cluster left by an interrupted run
data=$(mktemp -d /tmp/onecard-pg.XXXXXX)
echo "$data" >"$state/data"
[ "$(id -u)" = 0 ] && chown "$PG_USER" "$data"
as_pg "$PG_BIN/initdb" -D "$data/db" -U onecard --auth=trust -E UTF8 \
	--no-locale --no-sync >"$state/initdb.log" 2>&1 ||
	{ cat "$state/initdb.log" >&2; die "initdb failed"; }
# A free port: try a few at random; the server says when one is taken.
for try in 1 2 3 4 5 6 7 8; do
	port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000))
	if as_pg "$PG_BIN/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 60 \
		-o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=${PG_MAX_CONNECTIONS:-100} -c shared_buffers=${PG_SHARED_BUFFERS:-32MB}" \
		start >/dev/null 2>&1; then
		echo "postgresql://onecard@127.0.0.1:$port/postgres" >"$state/url"
		cp "$data/server.log" "$state/server.log" 2>/dev/null || true
		exit 0
	fi
	grep -q "could not bind\|already in use" "$data/server.log" 2>/dev/null || break
done
cat "$data/server.log" >&2 2>/dev/null || true
die "the PostgreSQL server did not start"
