#!/bin/sh
# install.sh CMAKE BUILDDIR: cmake --install puts the CLIs, their bash
# completion and their man pages where a Debian system looks for them, and
# the broker's unit with the sysusers.d entry for the user it runs as.
# Everything goes under DESTDIR (a temporary folder): some destinations,
# such as /etc/onecard, are absolute. Where systemd's tools are installed
# they check the unit and the entry; nothing here needs systemd running.
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
	share/man/man1/onecard.1 share/man/man8/onecardctl.8 \
	lib/systemd/system/onecardd.service lib/sysusers.d/onecard.conf; do
	[ -s "$prefix/$f" ] || { echo "FAIL: $f not installed" >&2; fail=1; }
done
grep -q '^complete -F _onecardctl onecardctl' \
    "$prefix/share/bash-completion/completions/onecardctl" || fail=1
grep -q '^\.TH "onecard" "1"' "$prefix/share/man/man1/onecard.1" || {
	echo "FAIL: onecard.1 is not a man page" >&2
	fail=1
}

# The unit runs as the static user onecard and reads the key where the
# configuration says on every reload (no LoadCredential= copy made at
# start), and checks a reload before signalling the broker.
unit=$prefix/lib/systemd/system/onecardd.service
if [ -s "$unit" ]; then
	grep -q '^User=onecard$' "$unit" || { echo "FAIL: the unit does not run as onecard" >&2; fail=1; }
	if grep -q -e '^LoadCredential' -e '^DynamicUser' "$unit"; then
		echo "FAIL: the unit copies credentials or makes a dynamic user" >&2
		fail=1
	fi
	grep -A1 -e '--check-config$' "$unit" | grep -q '^ExecReload=/bin/kill -HUP' || {
		echo "FAIL: the unit's ExecReload does not run --check-config before kill -HUP" >&2
		fail=1
	}
fi
# systemd-analyze finds unknown keys and bad values; the binary it points
# at is under DESTDIR, not where the unit says, so that complaint is dropped.
if command -v systemd-analyze >/dev/null 2>&1 && [ -s "$unit" ]; then
	out=$(systemd-analyze verify "$unit" 2>&1 | grep -v ' is not executable: ')
	[ -z "$out" ] || { printf 'FAIL: systemd-analyze verify:\n%s\n' "$out" >&2; fail=1; }
fi
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers --dry-run --root="$dest" 2>&1 | grep -q "Creating user 'onecard'" || {
		echo "FAIL: systemd-sysusers would not create the user onecard" >&2
		fail=1
	}
fi
exit $fail
