#!/usr/bin/env bash
# bench/lookups-vs-redis.sh: onecardd lookups against redis-server GETs on
# this machine, both over mutual TLS with the same dev certificates, the same
# number of keys (Redis values are 200 bytes), 50 connections, pipeline
# depth 1 and 16. Each side runs RUNS times, interleaved; medians and the
# ratio broker/redis are printed. Loopback only.
#
# The broker runs one worker (--threads 1) unless BROKER_THREADS says
# otherwise: Redis answers from one thread, and on a small machine the
# load generators need the other cores. With the broker's default (one
# worker per core) its workers and the load generator contend for the
# cores, which shows in the p99 (BENCHMARKS.md has both).
#
# Each run ends with the broker again, capped at the rate Redis just
# reached (onecard-bench --rate): p99_eq is the broker's p99 at Redis's
# load, since a server run faster than another has the longer queues.
# PACED=0 leaves that out.
#
#   bench/lookups-vs-redis.sh [KEYS]     (default 10000)
#   env: RUNS (3), SECONDS_PER_RUN (10), CONNS (50), DEPTHS ("1 16"),
#        BROKER_THREADS (1), BENCH_THREADS (1), AUDIT=1 to run the
#        broker with --audit-log, CLIENT_CPU=1 to add the load
#        generators' CPU per request (onecard-bench, redis-benchmark) as two
#        more columns, ONECARD_BIN_DIR (build/bin)

BROKER_THREADS=${BROKER_THREADS:-1}
source "$(dirname "$0")/lib.sh"

KEYS=${1:-10000}
CONNS=${CONNS:-50}
DEPTHS=${DEPTHS:-1 16}

command -v redis-server >/dev/null || die "redis-server not found: run bench/deps.sh"
command -v redis-benchmark >/dev/null || die "redis-benchmark not found: run bench/deps.sh"

bench_setup
CERTS=$WORK/certs

# --- onecardd, populated with KEYS patients --------------------------------
extra=()
[ -n "${AUDIT:-}" ] && extra+=(--audit-log "$WORK/audit.log")
broker_start "$WORK/registry.db" "${extra[@]}"
note "onecardd at $BROKER_ADDR (threads $BROKER_THREADS${AUDIT:+, audit log on}); enrolling $KEYS patients"
bench --op lookup --populate --keys "$KEYS" -c 8 -P 64 -n 1 >/dev/null ||
	die "populate failed"

# --- redis-server with TLS, KEYS keys of 200 bytes --------------------------
RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)))
redis-server --port 0 --bind 127.0.0.1 --tls-port "$RPORT" \
	--tls-cert-file "$CERTS/broker.pem" --tls-key-file "$CERTS/broker.key" \
	--tls-ca-cert-file "$CERTS/ca.pem" --tls-auth-clients yes \
	--save '' --appendonly no --dir "$WORK" --logfile "$WORK/redis.log" &
REDIS_PID=$!
BENCH_PIDS+=("$REDIS_PID")
REDIS_TLS=(--tls --cacert "$CERTS/ca.pem" --cert "$CERTS/BENCH.pem" --key "$CERTS/BENCH.key")
for i in $(seq 50); do
	redis-cli -p "$RPORT" "${REDIS_TLS[@]}" ping >/dev/null 2>&1 && break
	sleep 0.1
done
note "redis-server $(redis-server --version | grep -oE 'v=[0-9.]+') at 127.0.0.1:$RPORT; SET $KEYS keys"
# redis-benchmark -r N picks keys "key:%012d" below N: SET exactly those.
awk -v n="$KEYS" 'BEGIN {
	v = sprintf("%200s", ""); gsub(/ /, "x", v)
	for (i = 0; i < n; i++) {
		k = sprintf("key:%012d", i)
		printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$200\r\n%s\r\n", length(k), k, v
	}
}' | redis-cli -p "$RPORT" "${REDIS_TLS[@]}" --pipe >/dev/null
[ "$(redis-cli -p "$RPORT" "${REDIS_TLS[@]}" dbsize)" = "$KEYS" ] || die "redis holds the wrong number of keys"

# --- runs -------------------------------------------------------------------
echo "# lookups vs Redis GET: $KEYS keys, $CONNS connections, ${SECONDS_PER_RUN}s x $RUNS runs, medians; onecardd --threads $BROKER_THREADS"
machine_line
fmt="%-6s %14s %10s %14s %10s %8s %8s %10s %10s"
cols=(depth broker_req/s p99_ms redis_req/s p99_ms rate_x p99_x broker_cpu redis_cpu)
if [ -n "${CLIENT_CPU:-}" ]; then
	fmt="$fmt %10s %10s"
	cols+=(bench_cpu rbench_cpu)
fi
if [ "${PACED:-1}" != 0 ]; then
	fmt="$fmt %10s %10s"
	cols+=(p99_eq_ms p99_eq_x)
fi
# shellcheck disable=SC2059
printf "$fmt\n" "${cols[@]}"
for depth in $DEPTHS; do
	b_rate=() b_p99=() r_rate=() r_p99=() b_cpu=() r_cpu=() bc_cpu=() rc_cpu=() e_p99=()
	for run in $(seq "$RUNS"); do
		t0=$(cpu_ticks "$BROKER_PID")
		c0=$(child_ticks)
		out=$(bench --op lookup --assume-populated --keys "$KEYS" \
			-c "$CONNS" -P "$depth" -d "$SECONDS_PER_RUN") || die "onecard-bench failed: $out"
		c1=$(child_ticks)
		b_cpu+=("$(cpu_us_per_req $(($(cpu_ticks "$BROKER_PID") - t0)) "$(echo "$out" | json_get requests)")")
		bc_cpu+=("$(cpu_us_per_req $((c1 - c0)) "$(echo "$out" | json_get requests)")")
		rate=$(echo "$out" | json_get throughput)
		b_rate+=("$rate")
		b_p99+=("$(echo "$out" | json_get p99_ms)")
		[ "$(echo "$out" | json_get not_ok)" = 0 ] || note "broker answered some lookups other than OK: $out"
		# As many GETs as the broker answered in the same time.
		n=$(awk -v r="$rate" -v s="$SECONDS_PER_RUN" 'BEGIN { n = int(r * s); print n < 20000 ? 20000 : n }')
		t0=$(cpu_ticks "$REDIS_PID")
		c0=$(child_ticks)
		csv=$(redis-benchmark -p "$RPORT" "${REDIS_TLS[@]}" -c "$CONNS" -P "$depth" \
			-n "$n" -r "$KEYS" -t get --csv 2>/dev/null | grep '^"GET"')
		c1=$(child_ticks)
		r_cpu+=("$(cpu_us_per_req $(($(cpu_ticks "$REDIS_PID") - t0)) "$n")")
		rc_cpu+=("$(cpu_us_per_req $((c1 - c0)) "$n")")
		r_rate+=("$(echo "$csv" | cut -d, -f2 | tr -d '"')")
		r_p99+=("$(echo "$csv" | cut -d, -f7 | tr -d '"')")
		paced=""
		if [ "${PACED:-1}" != 0 ]; then
			out=$(bench --op lookup --assume-populated --keys "$KEYS" \
				-c "$CONNS" -P "$depth" -d "$SECONDS_PER_RUN" --rate "${r_rate[-1]}") ||
				die "onecard-bench --rate failed: $out"
			e_p99+=("$(echo "$out" | json_get p99_ms)")
			paced="; broker at redis's rate $(echo "$out" | json_get throughput)/s p99 ${e_p99[-1]} ms"
		fi
		note "depth $depth run $run: broker ${b_rate[-1]}/s p99 ${b_p99[-1]} ms ${b_cpu[-1]} us CPU/req; redis ${r_rate[-1]}/s p99 ${r_p99[-1]} ms ${r_cpu[-1]} us CPU/req${CLIENT_CPU:+; clients ${bc_cpu[-1]} / ${rc_cpu[-1]} us CPU/req}$paced"
	done
	mb=$(median "${b_rate[@]}") mbp=$(median "${b_p99[@]}")
	mr=$(median "${r_rate[@]}") mrp=$(median "${r_p99[@]}")
	row=("$depth" "$mb" "$mbp" "$mr" "$mrp" "$(ratio "$mb" "$mr")" "$(ratio "$mbp" "$mrp")"
		"$(median "${b_cpu[@]}")" "$(median "${r_cpu[@]}")")
	[ -n "${CLIENT_CPU:-}" ] && row+=("$(median "${bc_cpu[@]}")" "$(median "${rc_cpu[@]}")")
	if [ "${PACED:-1}" != 0 ]; then
		me=$(median "${e_p99[@]}")
		row+=("$me" "$(ratio "$me" "$mrp")")
	fi
	# shellcheck disable=SC2059
	printf "$fmt\n" "${row[@]}"
done
echo "(rate_x = broker/redis, higher is better; p99_x = broker/redis, lower is better;"
echo " *_cpu = server CPU microseconds per request, all threads, user + system)"
[ "${PACED:-1}" != 0 ] && echo "(p99_eq = the broker's p99 capped at Redis's rate in the same run; p99_eq_x = that / Redis's p99)"
if [ -n "${CLIENT_CPU:-}" ]; then
	echo "(bench_cpu = onecard-bench, rbench_cpu = redis-benchmark: the load"
	echo " generator's CPU microseconds per request, connects included)"
fi
