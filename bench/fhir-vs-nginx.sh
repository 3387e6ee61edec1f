#!/usr/bin/env bash
# bench/fhir-vs-nginx.sh: the FHIR door's PIXm queries against nginx serving
# a static JSON file of the same size over the same mutual TLS (issue 20's
# target: FHIR >= 0.5x nginx, "the practical limit of HTTPS here"), and
# against the same broker's binary-protocol lookups of the same patients.
#
# One registry of PATIENTS patients, each with a cn-id and a visit card of
# hospital BENCH (imported from a CSV this script writes). The broker serves
# the FHIR door on a loopback port; nginx (Debian's, worker_processes = the
# number of cores, the CPUs the broker may use too) runs on another with the
# broker's certificate, key and CA, ssl_verify_client on, the broker's TLS
# versions and TLS 1.2 ciphers (broker/tls.c; TLS 1.3 suites and curves are
# OpenSSL's defaults on both), keep-alive without a request cap, and one file
# the size of a real PIXm answer as application/fhir+json for any query.
#
# The client is wrk, the same for both HTTPS sides: neither wrk nor h2load
# can present a client certificate, so the script compiles
# bench/wrk-client-cert.c, an LD_PRELOAD shim that loads BENCH's certificate
# into wrk's SSL_CTX. bench/fhir-pix.lua cycles over every patient's PIXm
# URL (sourceIdentifier = the patient's BENCH card); nginx gets the same
# URLs. The binary side is onecard-bench --op lookup by the same patients'
# cn-ids. Both clients keep CONNS connections, one request outstanding each,
# over CLIENT_THREADS threads. Each run measures nginx, FHIR and binary in
# turn, the order reversed every other run; medians and ratios are printed,
# with each server's CPU per request (user + system, all threads).
#
#   bench/fhir-vs-nginx.sh [PATIENTS]     (default 10000)
#   env: RUNS (3), SECONDS_PER_RUN (10), CONNS (50), CLIENT_THREADS (2:
#        wrk -t and onecard-bench --threads), BROKER_THREADS (cores),
#        BROKER_FLAGS (more onecardd flags, e.g. "--fhir-threads 1"),
#        NGINX_WORKERS (cores), ONECARD_BIN_DIR (build/bin),
#        KEEP=1 to keep the work folder (certs, configs, logs),
#        PERF=FILE to record onecardd with perf record -g into FILE during
#        the first FHIR run (then: perf report -i FILE --no-children),
#        PERF_FLAGS (its options; "-F 999 -g", or "-F 499 --call-graph dwarf"
#        for call chains through code built without frame pointers)

source "$(dirname "$0")/lib.sh"

PATIENTS=${1:-10000}
CONNS=${CONNS:-50}
CLIENT_THREADS=${CLIENT_THREADS:-2}
NGINX_WORKERS=${NGINX_WORKERS:-$(nproc)}
read -r -a EXTRA <<<"${BROKER_FLAGS:-}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if ! command -v wrk >/dev/null || [ ! -x "$NGINX" ]; then
	note "installing wrk and nginx (bench/deps.sh)"
	"$BENCH_ROOT/bench/deps.sh" >/dev/null 2>&1 || die "bench/deps.sh failed: run it as root"
	NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
command -v wrk >/dev/null || die "wrk not found: run bench/deps.sh"
[ -x "$NGINX" ] || die "nginx not found: run bench/deps.sh"
command -v curl >/dev/null || die "curl not found: run scripts/deps.sh"

bench_setup
CERTS=$WORK/certs

# --- the wrk shim ------------------------------------------------------------
cc -O2 -Wall -Wextra -shared -fPIC -o "$WORK/wrk-client-cert.so" \
	"$BENCH_ROOT/bench/wrk-client-cert.c" -ldl -lssl ||
	die "cannot build the wrk shim (needs cc and libssl-dev: scripts/deps.sh)"
wrk_run() { # URL: one wrk run as BENCH over the PIXm paths
	WRK_CLIENT_CERT=$CERTS/BENCH.pem WRK_CLIENT_KEY=$CERTS/BENCH.key \
		LD_PRELOAD=$WORK/wrk-client-cert.so \
		wrk -t "$CLIENT_THREADS" -c "$CONNS" -d "${SECONDS_PER_RUN}s" --timeout 10s \
		-s "$BENCH_ROOT/bench/fhir-pix.lua" "$1" -- "$WORK/paths.txt" 2>&1
}
wrk_get() { # KEY: its value in the WRK line on stdin
	grep -m1 '^WRK ' | grep -oE "(^| )$1=[-0-9.]+" | cut -d= -f2
}

# --- onecardd with the FHIR door, PATIENTS patients with a BENCH card ------
# cn-id: region, birth date, sequence (odd: male), check character; the
# row's sex and birth date agree with it. The card: MZ and ten digits.
awk -v n="$PATIENTS" 'BEGIN {
	split("7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2", w, " "); chk = "10X98765432"
	print "name,sex,birth_date,phone,address,identifiers"
	for (k = 0; k < n; k++) {
		d = int(k / 1000)
		y = 1950 + d % 50; m = 1 + int(d / 50) % 12; dd = 1 + int(d / 600) % 28
		s17 = sprintf("411002%04d%02d%02d%03d", y, m, dd, k % 1000)
		sum = 0
		for (i = 1; i <= 17; i++) sum += substr(s17, i, 1) * w[i]
		printf "测试%d,%s,%04d-%02d-%02d,,,cn-id=%s%s;hosp:BENCH=MZ%010d\n", k,
			(k % 1000) % 2 ? "M" : "F", y, m, dd, s17, substr(chk, sum % 11 + 1, 1), k
	}
}' >"$WORK/patients.csv"
awk -F'hosp:BENCH=' 'NR > 1 { print "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:onecard:hosp:BENCH%7C" $2 }' \
	"$WORK/patients.csv" >"$WORK/paths.txt"

broker_start "$WORK/registry.db" --fhir-listen 127.0.0.1:0 "${EXTRA[@]}"
FHIR_ADDR=$(wait_for_line "$BROKER_LOG" 'fhir on 127\.0\.0\.1:[0-9]+' 10 | grep -oE '127\.0\.0\.1:[0-9]+') ||
	{ cat "$BROKER_LOG" >&2; die "no \"fhir on\" line from onecardd"; }
note "onecardd at $BROKER_ADDR, FHIR at $FHIR_ADDR (threads $BROKER_THREADS${EXTRA[*]:+, ${EXTRA[*]}}); importing $PATIENTS patients"
ctl import "$WORK/patients.csv" --connections 4 --depth 256 >/dev/null ||
	die "import failed"

# A real PIXm answer: the static file's content and size.
FHIR_URL=https://$FHIR_ADDR
curl -sS --fail --cacert "$CERTS/ca.pem" --cert "$CERTS/BENCH.pem" --key "$CERTS/BENCH.key" \
	-H 'Accept: application/fhir+json' -o "$WORK/answer.json" "$FHIR_URL$(head -1 "$WORK/paths.txt")" ||
	die "the broker did not answer a PIXm query"
grep -q '"resourceType":"Parameters"' "$WORK/answer.json" || die "not a PIXm answer: $(cat "$WORK/answer.json")"
SIZE=$(stat -c %s "$WORK/answer.json")

# --- nginx: the same TLS, the same certificates, one file of SIZE bytes -----
NG=$WORK/nginx
mkdir -p "$NG/www/fhir/Patient" "$NG/tmp"
cp "$WORK/answer.json" "$NG/www/fhir/Patient/\$ihe-pix"
chmod -R a+rX "$NG"
NPORT=$(free_port)
cat >"$NG/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $NG/tmp/body;
	proxy_temp_path $NG/tmp/proxy;
	fastcgi_temp_path $NG/tmp/fastcgi;
	uwsgi_temp_path $NG/tmp/uwsgi;
	scgi_temp_path $NG/tmp/scgi;
	keepalive_timeout 65;
	keepalive_requests 100000000;
	server {
		listen 127.0.0.1:$NPORT ssl;
		ssl_certificate $CERTS/broker.pem;
		ssl_certificate_key $CERTS/broker.key;
		ssl_client_certificate $CERTS/ca.pem;
		ssl_verify_client on;
		ssl_verify_depth 4;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
		ssl_prefer_server_ciphers on;
		ssl_session_cache builtin:20000;
		ssl_session_timeout 1h;
		root $NG/www;
		location / {
			types { }
			default_type "application/fhir+json; charset=utf-8";
		}
	}
}
EOF
"$NGINX" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" 2>"$NG/stderr.log" &
NGINX_PID=$!
BENCH_PIDS+=("$NGINX_PID")
NGINX_URL=https://127.0.0.1:$NPORT
for _ in $(seq 50); do
	curl -s --cacert "$CERTS/ca.pem" --cert "$CERTS/BENCH.pem" --key "$CERTS/BENCH.key" \
		-o "$WORK/nginx.json" "$NGINX_URL$(head -1 "$WORK/paths.txt")" 2>/dev/null && break
	sleep 0.1
done
cmp -s "$WORK/nginx.json" "$WORK/answer.json" || { cat "$NG/error.log" "$NG/stderr.log" >&2; die "nginx did not serve the answer"; }

# What each side negotiates with the same client settings.
tls_line() { # HOST:PORT
	openssl s_client -connect "$1" -CAfile "$CERTS/ca.pem" -cert "$CERTS/BENCH.pem" \
		-key "$CERTS/BENCH.key" -brief </dev/null 2>&1 |
		awk -F': ' '/^Protocol version/ { p = $2 } /^Ciphersuite/ { c = $2 } /^Server Temp Key/ { k = $2 }
			END { print p ", " c ", " k }'
}

# Server CPU ticks: onecardd's threads, or nginx's master and workers.
server_ticks() { # PID
	local t p
	t=$(cpu_ticks "$1")
	for p in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		t=$((t + $(cpu_ticks "$p" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# --- runs ---------------------------------------------------------------------
echo "# FHIR PIXm vs nginx static file vs binary lookups: $PATIENTS patients, $CONNS connections, ${SECONDS_PER_RUN}s x $RUNS runs, medians"
machine_line
echo "onecardd --threads $BROKER_THREADS${EXTRA[*]:+ ${EXTRA[*]}}; nginx $("$NGINX" -v 2>&1 | grep -oE '[0-9.]+$') worker_processes $NGINX_WORKERS; wrk -t $CLIENT_THREADS, onecard-bench --threads $CLIENT_THREADS"
echo "answer: $SIZE bytes; TLS broker: $(tls_line "$FHIR_ADDR"); nginx: $(tls_line "127.0.0.1:$NPORT")"

n_rate=() n_p50=() n_p99=() n_cpu=()
f_rate=() f_p50=() f_p99=() f_cpu=()
b_rate=() b_p50=() b_p99=() b_cpu=()
side_nginx() {
	local t0 out
	t0=$(server_ticks "$NGINX_PID")
	out=$(wrk_run "$NGINX_URL") || die "wrk against nginx failed: $out"
	[ "$(echo "$out" | wrk_get non2xx)" = 0 ] && [ "$(echo "$out" | wrk_get errors)" = 0 ] ||
		note "nginx: some answers were errors: $(echo "$out" | grep '^WRK')"
	n_rate+=("$(echo "$out" | wrk_get rate)")
	n_p50+=("$(echo "$out" | wrk_get p50_ms)")
	n_p99+=("$(echo "$out" | wrk_get p99_ms)")
	n_cpu+=("$(cpu_us_per_req $(($(server_ticks "$NGINX_PID") - t0)) "$(echo "$out" | wrk_get requests)")")
}
side_fhir() {
	local t0 out perf="" pf
	if [ -n "${PERF:-}" ] && [ ${#f_rate[@]} = 0 ]; then
		read -r -a pf <<<"${PERF_FLAGS:--F 999 -g}"
		perf record -q "${pf[@]}" -p "$BROKER_PID" -o "$PERF" -- sleep "$SECONDS_PER_RUN" 2>"$WORK/perf.log" &
		perf=$!
	fi
	t0=$(cpu_ticks "$BROKER_PID")
	out=$(wrk_run "$FHIR_URL") || die "wrk against the FHIR door failed: $out"
	[ -z "$perf" ] || wait "$perf" || note "perf record failed: $(cat "$WORK/perf.log")"
	[ "$(echo "$out" | wrk_get non2xx)" = 0 ] && [ "$(echo "$out" | wrk_get errors)" = 0 ] ||
		note "fhir: some answers were errors: $(echo "$out" | grep '^WRK')"
	f_rate+=("$(echo "$out" | wrk_get rate)")
	f_p50+=("$(echo "$out" | wrk_get p50_ms)")
	f_p99+=("$(echo "$out" | wrk_get p99_ms)")
	f_cpu+=("$(cpu_us_per_req $(($(cpu_ticks "$BROKER_PID") - t0)) "$(echo "$out" | wrk_get requests)")")
}
side_binary() {
	local t0 out
	t0=$(cpu_ticks "$BROKER_PID")
	out=$(BENCH_THREADS=$CLIENT_THREADS bench --op lookup --keys-from "$WORK/patients.csv" \
		-c "$CONNS" -P 1 -d "$SECONDS_PER_RUN") || die "onecard-bench failed: $out"
	[ "$(echo "$out" | json_get not_ok)" = 0 ] || note "binary: some lookups were not OK: $out"
	b_rate+=("$(echo "$out" | json_get throughput)")
	b_p50+=("$(echo "$out" | json_get p50_ms)")
	b_p99+=("$(echo "$out" | json_get p99_ms)")
	b_cpu+=("$(cpu_us_per_req $(($(cpu_ticks "$BROKER_PID") - t0)) "$(echo "$out" | json_get requests)")")
}
for run in $(seq "$RUNS"); do
	if ((run % 2)); then
		side_nginx
		side_fhir
		side_binary
	else
		side_binary
		side_fhir
		side_nginx
	fi
	note "run $run: fhir/nginx $(ratio "${f_rate[-1]}" "${n_rate[-1]}"), fhir/binary $(ratio "${f_rate[-1]}" "${b_rate[-1]}"):" \
		"nginx ${n_rate[-1]}/s p99 ${n_p99[-1]} ms ${n_cpu[-1]} us CPU/req;" \
		"fhir ${f_rate[-1]}/s p99 ${f_p99[-1]} ms ${f_cpu[-1]} us CPU/req;" \
		"binary ${b_rate[-1]}/s p99 ${b_p99[-1]} ms ${b_cpu[-1]} us CPU/req"
done

mn=$(median "${n_rate[@]}") mf=$(median "${f_rate[@]}") mb=$(median "${b_rate[@]}")
fmt="%-8s %12s %8s %8s %10s\n"
# shellcheck disable=SC2059
printf "$fmt" side req/s p50_ms p99_ms cpu_us/req
# shellcheck disable=SC2059
printf "$fmt" nginx "$mn" "$(median "${n_p50[@]}")" "$(median "${n_p99[@]}")" "$(median "${n_cpu[@]}")"
# shellcheck disable=SC2059
printf "$fmt" fhir "$mf" "$(median "${f_p50[@]}")" "$(median "${f_p99[@]}")" "$(median "${f_cpu[@]}")"
# shellcheck disable=SC2059
printf "$fmt" binary "$mb" "$(median "${b_p50[@]}")" "$(median "${b_p99[@]}")" "$(median "${b_cpu[@]}")"
echo "fhir/nginx $(ratio "$mf" "$mn") (target >= 0.5); fhir/binary $(ratio "$mf" "$mb")"
echo "(nginx and fhir: wrk over HTTPS keep-alive; binary: onecard-bench --op lookup over the"
echo " binary protocol; cpu_us/req = the server's CPU microseconds per request, all threads)"
