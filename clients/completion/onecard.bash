# Bash completion for onecard (the desk CLI) and onecardctl (the
# administrator's). Installed as
# /usr/share/bash-completion/completions/{onecard,onecardctl}; bash-completion
# loads it the first time either command is completed. It completes commands,
# subcommands and options, and file names where an option takes a file.

# The options every command of both CLIs takes, anywhere on the line.
_onecard_globals="--profile --broker --cert --key --ca --json --timeout --help --version"

# The profile names in the profile file (docs/cli.md, "Profiles").
_onecard_profiles()
{
	local f=${ONECARD_PROFILE_FILE:-${XDG_CONFIG_HOME:-$HOME/.config}/onecard/profiles}
	[ -r "$f" ] && sed -n 's/^[[:space:]]*\[\([^]]*\)\].*/\1/p' "$f"
}

# Complete the value of option $1; 0 when it was one that takes a value.
_onecard_value()
{
	local cur=$2
	case $1 in
	--cert | --key | --ca | --reject | --out | --head | --state | --truth)
		_filedir 2>/dev/null || COMPREPLY=($(compgen -f -- "$cur"))
		return 0
		;;
	--profile)
		COMPREPLY=($(compgen -W "$(_onecard_profiles)" -- "$cur"))
		return 0
		;;
	--sex)
		COMPREPLY=($(compgen -W "male female" -- "$cur"))
		return 0
		;;
	--broker | --timeout | --name | --birth | --phone | --address | \
		--expect-version | --limit | --connections | --depth | \
		--patients | --hospitals | --seed | --hospital-codes | --duplicates | \
		--patient | --actor | --since | --until | --from | --exec | --target)
		return 0
		;;
	esac
	return 1
}

# The words after the program that are not options or their values.
_onecard_operands()
{
	local i w skip=0
	_onecard_words=()
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if ((skip)); then
			skip=0
			continue
		fi
		case $w in
		--*=*) ;;
		--json | --help | --version | --admin | --all | --keep-b | \
			--no-merges | --allow-broken) ;;
		--*) skip=1 ;;
		*) _onecard_words+=("$w") ;;
		esac
	done
}

_onecard()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local cmds="ping lookup enroll link unlink update search watch help"
	local demo="--name --sex --birth --phone --address"
	local opts=""
	COMPREPLY=()
	_onecard_value "$prev" "$cur" && return
	_onecard_operands
	if [[ $cur == -* ]]; then
		case ${_onecard_words[0]-} in
		lookup) opts="--target" ;;
		enroll) opts=$demo ;;
		update) opts="$demo --expect-version" ;;
		search) opts="--name --birth --sex --phone --id --limit --exact" ;;
		watch) opts="--from --state --exec" ;;
		esac
		COMPREPLY=($(compgen -W "$_onecard_globals $opts" -- "$cur"))
		return
	fi
	if ((${#_onecard_words[@]} == 0)); then
		COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
		return
	fi
	case ${_onecard_words[0]-} in
	lookup | enroll | link | unlink | update)
		compopt -o nospace 2>/dev/null
		COMPREPLY=($(compgen -W "cn-id= cn-ssc= hosp: pid=" -- "$cur"))
		;;
	esac
}

_onecardctl()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local cmds="hospital patient merge unmerge duplicates stats import export backup gen audit help"
	local opts=""
	COMPREPLY=()
	_onecard_value "$prev" "$cur" && return
	_onecard_operands
	case "${_onecard_words[0]-} ${_onecard_words[1]-}" in
	"hospital add"*) opts="--name --admin" ;;
	"patient history"*) opts="--limit" ;;
	"duplicates list"*) opts="--limit --all --after" ;;
	"duplicates merge"*) opts="--keep-b" ;;
	import*) opts="--reject --connections --depth" ;;
	export*) opts="--out" ;;
	backup*) opts="--db" ;;
	gen*) opts="--patients --hospitals --seed --hospital-codes --out --duplicates --truth" ;;
	"audit verify"*) opts="--head" ;;
	"audit search"*) opts="--patient --actor --since" ;;
	"audit patient"*) opts="--since --until --no-merges --head --allow-broken" ;;
	"audit hospital"*) opts="--since --until --head --allow-broken" ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$_onecard_globals $opts" -- "$cur"))
		return
	fi
	case ${#_onecard_words[@]} in
	0)
		COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
		return
		;;
	1)
		case ${_onecard_words[0]-} in
		hospital) opts="add list revoke" ;;
		patient) opts="show history" ;;
		duplicates) opts="scan list show merge dismiss" ;;
		audit) opts="verify search patient hospital" ;;
		import) opts="" ;;
		*) opts="-" ;;
		esac
		if [ -z "$opts" ]; then
			_filedir csv 2>/dev/null || COMPREPLY=($(compgen -f -- "$cur"))
		elif [ "$opts" != "-" ]; then
			COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		fi
		return
		;;
	esac
	case ${_onecard_words[0]-} in
	audit) _filedir 2>/dev/null || COMPREPLY=($(compgen -f -- "$cur")) ;;
	esac
}

complete -F _onecard onecard
complete -F _onecardctl onecardctl
