#!/bin/sh
# bench/deps.sh: the Debian packages the benchmark scripts need on top of
# the build's (scripts/deps.sh): the other side of each comparison and the
# profilers BENCHMARKS.md names. Run as root; the benchmarks themselves are
# never run by CI.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	redis-server redis-tools \
	nginx-light wrk \
	postgresql postgresql-contrib \
	python3 procps util-linux curl \
	linux-perf valgrind
# apt starts a system redis-server, PostgreSQL cluster and nginx on their
# default ports; the scripts start their own on free loopback ports and leave
# those alone.
