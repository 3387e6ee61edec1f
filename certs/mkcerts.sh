#!/bin/sh
# Makes a development PKI for onecard: an ECDSA P-256 CA, a broker certificate
# (SAN localhost, 127.0.0.1), an admin client certificate (CN "admin") and one
# client certificate per hospital CODE given (CN = CODE).
#
#   certs/mkcerts.sh [-d DIR] [-a ADMIN_CN] [CODE...]     DIR defaults to certs/dev
#
# Idempotent: a file that exists is kept; an existing CA is never overwritten.
# Private keys are mode 0600. DIR is git-ignored: nothing here is committed.
# Development only; certs/README.md says how a real deployment issues and
# revokes certificates.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir="$here/dev"
admin=admin
days=825
while getopts d:a: opt; do
	case $opt in
	d) dir=$OPTARG ;;
	a) admin=$OPTARG ;;
	*) echo "usage: $0 [-d DIR] [-a ADMIN_CN] [CODE...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
command -v openssl >/dev/null || { echo "mkcerts: needs openssl (apt-get install openssl)" >&2; exit 1; }
umask 077
mkdir -p "$dir"
cd "$dir"

for code in "$@"; do
	case $code in
	*[!A-Za-z0-9_-]* | "") echo "mkcerts: bad code '$code': letters, digits, - and _ only" >&2; exit 2 ;;
	esac
done

# quiet CMD...: run an openssl command, showing its output only if it fails.
quiet() {
	if ! out=$("$@" 2>&1); then
		printf 'mkcerts: %s failed:\n%s\n' "$*" "$out" >&2
		return 1
	fi
}

newkey() { quiet openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" && chmod 600 "$1"; }

if [ ! -f ca.pem ]; then
	[ -f ca.key ] || newkey ca.key
	quiet openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/O=onecard dev/CN=onecard dev CA" \
	    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
	    -out ca.pem
	chmod 644 ca.pem
	echo "mkcerts: made CA $dir/ca.pem"
fi

# issue NAME CN EXT: a key and a certificate signed by the CA, unless there.
issue() {
	[ -f "$1.pem" ] && return 0
	[ -f "$1.key" ] || newkey "$1.key"
	quiet openssl req -new -key "$1.key" -subj "/O=onecard dev/CN=$2" -out "$1.csr"
	printf '%s\n' "$3" > "$1.ext"
	quiet openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days $days -sha256 \
	    -extfile "$1.ext" -out "$1.pem"
	rm -f "$1.csr" "$1.ext"
	chmod 644 "$1.pem"
	echo "mkcerts: made $dir/$1.pem (CN=$2)"
}

issue broker localhost "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
issue "$admin" "$admin" "$client_ext"
for code in "$@"; do
	issue "$code" "$code" "$client_ext"
done
