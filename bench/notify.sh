#!/usr/bin/env bash
# bench/notify.sh: notifications, against the targets of issue 18.
#
#   1. latency: SUBS (100) subscribers while writers enroll at RATE (5000)
#      a second; p99 from a write's acknowledgement to its event reaching
#      every subscriber (target: <= 10 ms).
#   2. write throughput with SUBS subscribers reading, against none: the
#      same onecard-bench enroll run side by side (target: >= 0.9x). The
#      subscribers decrypt and count what they are sent, decoding nothing
#      (notify-bench --raw): on this one machine their CPU is the broker's.
#   3. catching up a backlog of BACKLOG (1,000,000) events to one
#      subscriber (target: >= 200,000 events/s).
#   4. memory per idle subscriber: the broker's resident memory before and
#      with IDLE (1000) subscriptions open.
#
# Each figure is the median of RUNS (3) runs of SECONDS_PER_RUN (10) s.
#   bench/notify.sh                 everything
#   STEPS="1 3" bench/notify.sh     some steps
source "$(dirname "$0")/lib.sh"

SUBS=${SUBS:-100}
RATE=${RATE:-5000}
WRITERS=${WRITERS:-16}
CONNS=${CONNS:-50}
BACKLOG=${BACKLOG:-1000000}
IDLE=${IDLE:-1000}
STEPS=${STEPS:-1 2 3 4}

[ -x "$BIN/notify-bench" ] || die "$BIN/notify-bench not found: build first"
bench_setup
machine_line

# notify-bench as hospital BENCH against the broker.
nbench() {
	ONECARD_BROKER=$BROKER_ADDR ONECARD_CA=$WORK/certs/ca.pem \
		ONECARD_CERT=$WORK/certs/BENCH.pem ONECARD_KEY=$WORK/certs/BENCH.key \
		"$BIN/notify-bench" "$@"
}

has_step() {
	case " $STEPS " in *" $1 "*) return 0 ;; esac
	return 1
}

if has_step 1; then
	note "1. latency: $SUBS subscribers, $RATE writes/s from $WRITERS connections"
	broker_start "$WORK/lat.db"
	p50=() p99=() max=() wps=()
	for ((r = 1; r <= RUNS; r++)); do
		out=$(nbench --subscribers "$SUBS" --writers "$WRITERS" \
			--rate "$RATE" --duration "$SECONDS_PER_RUN") ||
			die "notify-bench failed: $out"
		echo "   run $r: $out" >&2
		p50+=("$(json_get p50_ms <<<"$out")")
		p99+=("$(json_get p99_ms <<<"$out")")
		max+=("$(json_get max_ms <<<"$out")")
		wps+=("$(json_get writes_per_s <<<"$out")")
	done
	broker_stop
	echo "latency: writes/s $(median "${wps[@]}"), ack -> every subscriber p50 $(median "${p50[@]}") ms, p99 $(median "${p99[@]}") ms, max $(median "${max[@]}") ms (target p99 <= 10 ms)"
fi

if has_step 2; then
	note "2. write throughput: onecard-bench enroll -c $CONNS, without and with $SUBS subscribers"
	without=() with=() cpu0=() cpu1=()
	for ((r = 1; r <= RUNS; r++)); do
		broker_start "$WORK/tp$r-a.db"
		t0=$(cpu_ticks "$BROKER_PID")
		out=$(bench --op enroll -c "$CONNS" -d "$SECONDS_PER_RUN")
		w0=$(json_get throughput <<<"$out")
		cpu0+=("$(cpu_us_per_req $(($(cpu_ticks "$BROKER_PID") - t0)) "$(json_get requests <<<"$out")")")
		broker_stop
		broker_start "$WORK/tp$r-b.db"
		nbench --subscribers "$SUBS" --writers 0 --raw \
			--duration $((SECONDS_PER_RUN + 30)) >/dev/null 2>&1 &
		NB=$!
		BENCH_PIDS+=("$NB")
		sleep 3
		t0=$(cpu_ticks "$BROKER_PID")
		out=$(bench --op enroll -c "$CONNS" -d "$SECONDS_PER_RUN")
		w1=$(json_get throughput <<<"$out")
		cpu1+=("$(cpu_us_per_req $(($(cpu_ticks "$BROKER_PID") - t0)) "$(json_get requests <<<"$out")")")
		kill "$NB" 2>/dev/null || true
		wait "$NB" 2>/dev/null || true
		broker_stop
		echo "   run $r: without $w0/s, with $SUBS subscribers $w1/s" >&2
		without+=("$w0")
		with+=("$w1")
	done
	a=$(median "${without[@]}")
	b=$(median "${with[@]}")
	echo "writes: $a/s without subscribers, $b/s with $SUBS: $(ratio "$b" "$a")x (target >= 0.9x)"
	echo "broker CPU per write: $(median "${cpu0[@]}") us without subscribers, $(median "${cpu1[@]}") us with $SUBS (each write's event sent $SUBS times)"
fi

if has_step 3; then
	note "3. backlog: $BACKLOG events caught up by one subscriber"
	broker_start "$WORK/backlog.db"
	bench --op enroll -c "$CONNS" -n "$BACKLOG" >/dev/null
	rates=()
	for ((r = 1; r <= RUNS; r++)); do
		out=$(nbench --backlog) || die "notify-bench --backlog failed: $out"
		echo "   run $r: $out" >&2
		rates+=("$(json_get events_per_s <<<"$out")")
	done
	broker_stop
	echo "backlog: $(median "${rates[@]}") events/s to one subscriber (target >= 200000)"
fi

if has_step 4; then
	note "4. memory: $IDLE idle subscribers"
	broker_start "$WORK/idle.db"
	bench --op enroll -c 4 -n 1000 >/dev/null
	per=()
	for ((r = 1; r <= RUNS; r++)); do
		before=$(rss_kib "$BROKER_PID")
		nbench --subscribers "$IDLE" --idle --duration 30 >/dev/null 2>&1 &
		NB=$!
		BENCH_PIDS+=("$NB")
		for ((i = 0; i < 300; i++)); do
			grep -c "subscribe id=" "$BROKER_LOG" >/dev/null 2>&1 || true
			sleep 0.1
			n=$(ls /proc/"$BROKER_PID"/fd | wc -l)
			[ "$n" -ge "$IDLE" ] && break
		done
		sleep 2
		after=$(rss_kib "$BROKER_PID")
		kill "$NB" 2>/dev/null || true
		wait "$NB" 2>/dev/null || true
		sleep 1
		per+=("$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.1f", (a - b) / n }')")
		echo "   run $r: rss $before KiB -> $after KiB with $IDLE subscribers" >&2
	done
	broker_stop
	echo "memory: $(median "${per[@]}") KiB per idle subscriber (connection, TLS session and subscription)"
fi
