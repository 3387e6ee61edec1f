#!/bin/sh
# Every test: install what is missing, build, run the whole suite through ctest
# (the tests of the registry on PostgreSQL included: ctest starts a throwaway
# cluster for them, tests/pg/cluster.sh, or uses ONECARD_TEST_PG if set).
#   scripts/test.sh              (README quick start, command 2)
#   scripts/test.sh --sanitize   the same suite built with AddressSanitizer + UBSan
#   scripts/test.sh --tsan       the same suite built with ThreadSanitizer
#   scripts/test.sh --fuzz       build with clang and run each libFuzzer harness
#                                for a bounded time (30 s) from its seed corpus
# Under CI (CI=true, which .ci/run sets) warnings are errors.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/deps.sh
dir=build
opts="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
if [ "${1:-}" = "--sanitize" ]; then
	dir=build-asan
	opts="-DCMAKE_BUILD_TYPE=Debug -DONECARD_SANITIZE=ON"
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
if [ "${1:-}" = "--tsan" ]; then
	dir=build-tsan
	opts="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DONECARD_TSAN=ON"
	# halt_on_error: a race fails the test that hit it (the broker exits
	# 66, which the harness reports), instead of scrolling past in a log.
	# Every report also goes to build-tsan/tsan-reports/, checked below, so a
	# race in a process whose exit status no test reads still fails the run.
	rm -rf "$root/build-tsan/tsan-reports"
	mkdir -p "$root/build-tsan/tsan-reports"
	export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp log_path=$root/build-tsan/tsan-reports/race"
fi
tests=""
if [ "${1:-}" = "--fuzz" ]; then
	dir=build-fuzz
	opts="-DCMAKE_C_COMPILER=clang -DONECARD_FUZZ=ON"
	tests="^fuzz/"
fi
[ "${CI:-}" = "true" ] && opts="$opts -DONECARD_WERROR=ON"
# shellcheck disable=SC2086
cmake -S . -B "$dir" $opts >/dev/null
cmake --build "$dir" -j"$(nproc)"
rc=0
ctest --test-dir "$dir" --output-on-failure ${tests:+-R "$tests"} || rc=$?
if [ "$dir" = build-tsan ] && [ -n "$(ls "$dir/tsan-reports")" ]; then
	cat "$dir"/tsan-reports/* >&2
	echo "test.sh: ThreadSanitizer reports above (also in $dir/tsan-reports/)" >&2
	rc=1
fi
exit $rc
