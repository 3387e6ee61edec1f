#!/bin/sh
# build/out-of-tree: configure and build onecardd in a fresh folder outside
# the source tree; its binary must land in <that folder>/bin, and nothing in
# the source tree's build/bin may change.
#   tests/build/out-of-tree.sh SOURCE_DIR
set -eu
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stamp() { ls -l --time-style=+%s.%N "$src/build/bin" 2>/dev/null || true; }
before=$(stamp)
cmake -S "$src" -B "$tmp/b" -DONECARD_TESTS=OFF >/dev/null
cmake --build "$tmp/b" --target onecardd -j2 >/dev/null
if [ ! -x "$tmp/b/bin/onecardd" ]; then
	echo "out-of-tree: $tmp/b/bin/onecardd was not built" >&2
	exit 1
fi
if [ "$(stamp)" != "$before" ]; then
	echo "out-of-tree: the build wrote into $src/build/bin" >&2
	exit 1
fi
grep -q "^ONECARD_BIN_DIR:PATH=$tmp/b/bin\$" "$tmp/b/CMakeCache.txt" || {
	echo "out-of-tree: ONECARD_BIN_DIR is not $tmp/b/bin" >&2
	exit 1
}
echo "out-of-tree: ok ($tmp/b/bin)"
