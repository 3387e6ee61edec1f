#!/bin/sh
# man.sh SCDOC MANDIR BINDIR: every man page builds without an error or a
# warning, and names every command and global option the program's --help
# lists, so the pages cannot fall behind the CLIs unnoticed.
set -u
scdoc=$1 mandir=$2 bin=$3
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for src in "$mandir"/*.scd; do
	page=$(basename "$src" .scd)
	if ! "$scdoc" <"$src" >"$tmp/$page" 2>"$tmp/err"; then
		echo "FAIL: $src: $(cat "$tmp/err")" >&2
		fail=1
	elif command -v man >/dev/null &&
	    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$tmp/$page" 2>&1 >/dev/null |
	    grep . >"$tmp/warn"; then
		echo "FAIL: $page: $(cat "$tmp/warn")" >&2
		fail=1
	fi
done
# check PROG PAGE: the commands and options of PROG --help are in PAGE.
check()
{
	prog=$1 page=$2
	[ -f "$tmp/$page" ] || { echo "FAIL: no $page" >&2; fail=1; return; }
	help=$("$bin/$prog" --help) || { echo "FAIL: $prog --help" >&2; fail=1; return; }
	words=$(printf '%s\n' "$help" | sed -n '/^commands:/,/^$/s/^  \([a-z]*\).*/\1/p')
	opts=$(printf '%s\n' "$help" | grep -o -- '--[a-z]*' | sort -u)
	[ -n "$words" ] || { echo "FAIL: no commands in $prog --help" >&2; fail=1; }
	for w in $words $opts; do
		[ "$w" = help ] && continue
		grep -q -- "$w" "$mandir/$page.scd" || {
			echo "FAIL: $page does not mention $w ($prog --help does)" >&2
			fail=1
		}
	done
}
# check_opts PROG PAGE: the options of PROG --help are in PAGE (a program
# without commands).
check_opts()
{
	prog=$1 page=$2
	[ -f "$tmp/$page" ] || { echo "FAIL: no $page" >&2; fail=1; return; }
	help=$("$bin/$prog" --help 2>&1)
	opts=$(printf '%s\n' "$help" | grep -o -- '--[a-z-]*[a-z]' | sort -u)
	[ -n "$opts" ] || { echo "FAIL: no options in $prog --help" >&2; fail=1; }
	for w in $opts; do
		case $w in --help | --version) continue ;; esac
		grep -q -- "$w" "$mandir/$page.scd" || {
			echo "FAIL: $page does not mention $w ($prog --help does)" >&2
			fail=1
		}
	done
}
check onecard onecard.1
check onecardctl onecardctl.8
check_opts onecardd onecardd.8
check_opts onecard-bench onecard-bench.1
[ -f "$tmp/onecardd.conf.5" ] || { echo "FAIL: no onecardd.conf.5" >&2; fail=1; }
exit $fail
