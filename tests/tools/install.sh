#!/bin/sh
# install.sh CMAKE BUILDDIR: cmake --install puts the CLIs, their bash
# completion and their man pages where a Debian system looks for them.
# Everything goes under DESTDIR (a temporary folder): some destinations,
# such as /etc/onecard, are absolute.
set -u
cmake=$1 build=$2
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
DESTDIR=$dest "$cmake" --install "$build" --prefix /usr >/dev/null || exit 1
prefix=$dest/usr
fail=0
for f in bin/onecard bin/onecardctl \
	share/bash-completion/completions/onecard \
	share/bash-completion/completions/onecardctl \
	share/man/man1/onecard.1 share/man/man8/onecardctl.8; do
	[ -s "$prefix/$f" ] || { echo "FAIL: $f not installed" >&2; fail=1; }
done
grep -q '^complete -F _onecardctl onecardctl' \
    "$prefix/share/bash-completion/completions/onecardctl" || fail=1
grep -q '^\.TH "onecard" "1"' "$prefix/share/man/man1/onecard.1" || {
	echo "FAIL: onecard.1 is not a man page" >&2
	fail=1
}
exit $fail
