#!/bin/sh
# run.sh SOURCE_DIR BIN_DIR WORK_DIR: the FHIR door against a real FHIR
# client (test.mjs). Installs package-lock.json's packages into WORK_DIR
# (again only when the lock changed, so a rerun needs no network), starts
# onecardd on port 0 with --fhir-listen and certificates of its own,
# registers hospitals XC001 and XC002, enrolls and merges a few patients
# through the CLIs, runs test.mjs with the port and certificate paths in its
# environment, and stops the broker (which must exit 0).
set -eu
src=$1 bin=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
for tool in node npm; do
	command -v $tool >/dev/null ||
	    { echo "run.sh: $tool is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done

mkdir -p "$work"
if [ ! -d "$work/node_modules" ] || ! cmp -s "$here/package-lock.json" "$work/.installed"; then
	cp "$here/package.json" "$here/package-lock.json" "$work/"
	(cd "$work" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null)
	cp "$here/package-lock.json" "$work/.installed"
fi
cp "$here/test.mjs" "$work/"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/onecard-fhir-node.XXXXXX")
pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup()
{
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$src/certs/mkcerts.sh" -d "$tmp/certs" XC001 XC002 >/dev/null 2>&1
c=$tmp/certs
"$bin/onecardd" --listen 127.0.0.1:0 --fhir-listen 127.0.0.1:0 \
    --db "$tmp/registry.db" --cert "$c/broker.pem" --key "$c/broker.key" \
    --ca "$c/ca.pem" --admins admin --threads 2 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do
	grep -q "fhir on 127.0.0.1:" "$tmp/log" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/log" | head -1)
fport=$(sed -n 's/.*fhir on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/log" | head -1)
if [ -z "$port" ] || [ -z "$fport" ]; then
	echo "run.sh: onecardd did not start:" >&2
	cat "$tmp/log" >&2
	exit 1
fi

export ONECARD_BROKER="127.0.0.1:$port" ONECARD_CA="$c/ca.pem"
# as CN ARGS...: run a CLI with CN's certificate.
as()
{
	cn=$1
	shift
	ONECARD_CERT="$c/$cn.pem" ONECARD_KEY="$c/$cn.key" "$@"
}
# pid_of: the patient id in `onecard --json enroll`'s answer on stdin.
pid_of()
{
	node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
		const o = JSON.parse(s);
		console.log(o.patient_id || o.patient.patient_id);
	});'
}
as admin "$bin/onecardctl" hospital add XC001 --name "Xicheng 1" >/dev/null
as admin "$bin/onecardctl" hospital add XC002 --name "Xicheng 2" >/dev/null
SURVIVOR=$(as XC001 "$bin/onecard" --json enroll --name 'Li Si' --sex male \
    --birth 1980-01-02 cn-ssc=PIX001 hosp:XC001=MRN-1 | pid_of)
MERGED=$(as XC002 "$bin/onecard" --json enroll hosp:XC002=OLD-7 | pid_of)
as admin "$bin/onecardctl" merge hosp:XC001=MRN-1 hosp:XC002=OLD-7 >/dev/null
OUYANG=$(as XC001 "$bin/onecard" --json enroll --name '欧阳娜娜' --sex female \
    hosp:XC001=MRN-OY | pid_of)
export SURVIVOR MERGED OUYANG

rc=0
FHIR_BASE="https://127.0.0.1:$fport/fhir" FHIR_CA="$c/ca.pem" \
    FHIR_CERT="$c/XC001.pem" FHIR_KEY="$c/XC001.key" \
    node "$work/test.mjs" || rc=$?
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
if [ "$status" -ne 0 ]; then
	echo "run.sh: onecardd exited $status:" >&2
	tail -20 "$tmp/log" >&2
	rc=1
fi
exit $rc
