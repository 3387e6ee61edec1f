#!/bin/sh
# Installs the Debian packages onecard needs to build, test and run, and does
# nothing (quietly) when all are there. Run as root, or with sudo available.
#   scripts/deps.sh          build + run + test dependencies
set -eu
pkgs="build-essential cmake pkg-config openssl ca-certificates git
libevent-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev libsqlite3-dev
libcmocka-dev libinih-dev libpq-dev postgresql clang-format protobuf-compiler python3-protobuf
prometheus clang libclang-rt-14-dev sslscan sqlite3 e2fsprogs
scdoc unicode-data libbz2-dev libjansson-dev curl"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
	    missing="$missing $p"
done
# Node and npm for tests/fhir-node (a FHIR client and the R4 schema
# validator, installed by npm): Debian's, only where there is no node at
# all, so a node installed otherwise is never replaced.
if ! command -v node >/dev/null; then
	missing="$missing nodejs npm"
elif ! command -v npm >/dev/null; then
	echo "deps: node is here but npm is not; tests/fhir-node needs it" >&2
fi
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
