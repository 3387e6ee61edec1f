#!/bin/sh
# Every test: install what is missing, build, run the whole suite through ctest.
#   scripts/test.sh              (README quick start, command 2)
#   scripts/test.sh --sanitize   the same suite built with AddressSanitizer + UBSan
#   scripts/test.sh --fuzz       build with clang and run each libFuzzer harness
#                                for a bounded time (30 s) from its seed corpus
# Under CI (CI=true) warnings are errors.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/deps.sh
dir=build
opts="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
if [ "${1:-}" = "--sanitize" ]; then
	dir=build-asan
	opts="-DCMAKE_BUILD_TYPE=Debug -DONECARD_SANITIZE=ON -DONECARD_BIN_DIR=$root/build-asan/bin"
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
tests=""
if [ "${1:-}" = "--fuzz" ]; then
	dir=build-fuzz
	opts="-DCMAKE_C_COMPILER=clang -DONECARD_FUZZ=ON -DONECARD_BIN_DIR=$root/build-fuzz/bin"
	tests="^fuzz/"
fi
[ "${CI:-}" = "true" ] && opts="$opts -DONECARD_WERROR=ON"
# shellcheck disable=SC2086
cmake -S . -B "$dir" $opts >/dev/null
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" --output-on-failure ${tests:+-R "$tests"}
