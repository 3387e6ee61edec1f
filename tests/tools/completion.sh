#!/bin/bash
# completion.sh SCRIPT: the bash completion of onecard and onecardctl
# completes commands, subcommands, options and values where it should.
set -u
# shellcheck disable=SC1090
. "$1" || exit 1
fail=0

# complete WORDS...: COMPREPLY for the line, the last word being completed.
complete_line()
{
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	case $1 in
	onecard) _onecard ;;
	onecardctl) _onecardctl ;;
	esac
	echo "${COMPREPLY[*]}"
}

# expect WANT WORDS...: every word of WANT is offered.
expect()
{
	local want=$1 got w
	shift
	got=" $(complete_line "$@") "
	for w in $want; do
		case $got in
		*" $w "*) ;;
		*)
			echo "FAIL: '$*' offers '$got', not '$w'" >&2
			fail=1
			;;
		esac
	done
}

# expect_none WORDS...: nothing is offered.
expect_none()
{
	local got
	got=$(complete_line "$@")
	if [ -n "$got" ]; then
		echo "FAIL: '$*' offers '$got', expected nothing" >&2
		fail=1
	fi
}

complete -p onecard >/dev/null || { echo "FAIL: onecard not registered" >&2; fail=1; }
complete -p onecardctl >/dev/null || { echo "FAIL: onecardctl not registered" >&2; fail=1; }
expect "ping lookup enroll link unlink update search watch" onecard ""
expect "lookup" onecard lo
expect "watch" onecard wa
expect "--from --state --exec --json" onecard watch --
expect_none onecard watch --from ""
expect_none onecard watch --exec ""
expect "--json --version --profile --broker" onecard lookup --
expect "--target" onecard lookup --
expect_none onecard lookup --target ""
expect "--name --sex --birth --expect-version" onecard update cn-id=1 --
expect "male female" onecard enroll --sex ""
expect "cn-id= cn-ssc= hosp: pid=" onecard --json lookup ""
expect "cn-id=" onecard --broker h:1 lookup cn
expect_none onecard --broker ""
expect "hospital patient merge unmerge duplicates stats import export gen audit" onecardctl ""
expect "scan list show merge dismiss" onecardctl duplicates ""
expect "--limit --all" onecardctl duplicates list --
expect "--keep-b" onecardctl duplicates merge 3 --
expect "add list revoke" onecardctl hospital ""
expect "add" onecardctl --json hospital a
expect "verify search patient hospital" onecardctl audit ""
expect "--since --until --no-merges --allow-broken" onecardctl audit patient P1 --
expect "--since --until --allow-broken" onecardctl audit hospital XC001 --
expect_none onecardctl audit hospital XC001 --until ""
expect "--name --admin --json" onecardctl hospital add X --
expect "--reject --connections --depth" onecardctl import f.csv --
expect "--patients --seed --out --duplicates --truth" onecardctl gen --
expect "--head" onecardctl audit verify --
# Profile names come from the profile file.
tmp=$(mktemp -d)
printf '[default]\nbroker = a:1\n[night-desk]\nbroker = b:2\n' >"$tmp/p"
ONECARD_PROFILE_FILE=$tmp/p expect "default night-desk" onecard --profile ""
ONECARD_PROFILE_FILE=$tmp/p expect "night-desk" onecardctl stats --profile n
# File names after the options that take a file.
touch "$tmp/desk.pem" "$tmp/xc001.seq"
expect "$tmp/desk.pem" onecard --cert "$tmp/de"
expect "$tmp/xc001.seq" onecard watch --state "$tmp/xc"
rm -rf "$tmp"
exit $fail
