#!/bin/sh
# The main job: install what is missing, build, make the development PKI,
# start onecardd on 127.0.0.1:7443 (and its FHIR door on 127.0.0.1:8443)
# with its SQLite registry under var/,
# register three demo hospitals and a small synthetic population, then keep
# the broker in the foreground until Ctrl-C (which stops it cleanly).
#   scripts/run-demo.sh            (README quick start, command 1)
# Environment: ONECARD_DEMO_PATIENTS (default 1000), ONECARD_DEMO_PORT (7443),
# ONECARD_DEMO_FHIR_PORT (8443).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
patients=${ONECARD_DEMO_PATIENTS:-1000}
port=${ONECARD_DEMO_PORT:-7443}
fhir_port=${ONECARD_DEMO_FHIR_PORT:-8443}
hospitals="XC001 XC002 ZZ003"

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
certs/mkcerts.sh $hospitals >/dev/null
mkdir -p -m 700 var  # the registry and audit trail: owner-only

bin=build/bin
export ONECARD_BROKER=127.0.0.1:$port ONECARD_CA=certs/dev/ca.pem
export ONECARD_CERT=certs/dev/admin.pem ONECARD_KEY=certs/dev/admin.key

"$bin/onecardd" --listen "127.0.0.1:$port" --db var/registry.db \
    --cert certs/dev/broker.pem --key certs/dev/broker.key --ca certs/dev/ca.pem \
    --admins admin --audit-log var/audit.log --metrics-listen 127.0.0.1:9464 \
    --fhir-listen "127.0.0.1:$fhir_port" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' INT TERM

tries=0
until "$bin/onecard" ping >/dev/null 2>&1; do
	tries=$((tries + 1))
	if [ $tries -gt 100 ] || ! kill -0 $pid 2>/dev/null; then
		echo "run-demo: onecardd did not come up" >&2
		kill -TERM $pid 2>/dev/null || true
		exit 1
	fi
	sleep 0.1
done

"$bin/onecardctl" hospital add XC001 --name "许昌市中心医院" >/dev/null
"$bin/onecardctl" hospital add XC002 --name "许昌市人民医院" >/dev/null
"$bin/onecardctl" hospital add ZZ003 --name "郑州大学第一附属医院" >/dev/null
if [ ! -f var/demo.csv ]; then
	"$bin/onecardctl" gen --patients "$patients" --hospitals 3 --seed 1 \
	    --hospital-codes XC001,XC002,ZZ003 --out var/demo.csv
fi
"$bin/onecardctl" import var/demo.csv --reject var/demo.rejects.csv >/dev/null
sample=$(sed -n 2p var/demo.csv | grep -o 'cn-id=[0-9X]*' | head -n 1)

cat <<MSG

onecardd is serving on 127.0.0.1:$port (registry var/registry.db, audit var/audit.log,
metrics http://127.0.0.1:9464/metrics). Hospitals: $hospitals; $patients demo patients.
From another terminal, as hospital XC001:

  export ONECARD_BROKER=127.0.0.1:$port ONECARD_CA=certs/dev/ca.pem
  export ONECARD_CERT=certs/dev/XC001.pem ONECARD_KEY=certs/dev/XC001.key
  build/bin/onecard ping
  build/bin/onecard lookup $sample

FHIR (docs/fhir.md) on https://127.0.0.1:$fhir_port/fhir, with the same certificates:

  curl --cert certs/dev/XC001.pem --key certs/dev/XC001.key --cacert certs/dev/ca.pem \
       'https://127.0.0.1:$fhir_port/fhir/Patient?identifier=urn:onecard:$(echo "$sample" | sed 's/=/|/')'

Ctrl-C here stops the broker.
MSG
wait $pid
