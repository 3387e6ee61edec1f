#!/usr/bin/env bash
# bench/match-quality.sh [N] [RATE]: how well matching finds duplicates.
#
# Generates N patients of which RATE are corrupted copies (onecardctl gen
# --duplicates, with its truth file), imports them into a fresh broker,
# runs the whole-registry scan (timed), and scores the steward's worklist
# against the truth: precision, recall and F1 for the pairs graded
# MATCH_CERTAIN and MATCH_PROBABLE or better. As the baseline, the exact
# rule the registry used before matching (same name and birth date) on the
# same data. Then SEARCHES (1000) searches, each built from a corrupted
# copy's own fields: how often the true patient is the best hit after the
# copy itself (top-1).
#
# Targets (issue 17, N = 100000, RATE = 0.1): PROBABLE or better precision
# >= 0.98 and recall >= 0.95; CERTAIN precision >= 0.999; top-1 >= 97%;
# the scan of 1,000,000 patients < 5 min.
#   bench/match-quality.sh 100000 0.1
source "$(dirname "$0")/lib.sh"

N=${1:-100000}
RATE=${2:-0.1}
SEARCHES=${SEARCHES:-1000}
command -v python3 >/dev/null || die "python3 is needed to score the pairs"

bench_setup
machine_line
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
"$BIN/onecardctl" gen --patients "$N" --duplicates "$RATE" --seed 7 \
	--out "$WORK/pop.csv" --truth "$WORK/truth.csv" >/dev/null
note "generated $N rows ($(($(wc -l <"$WORK/truth.csv") - 1)) truth lines) in $(secs "$t0" "$(now)") s"
# MODEL=1: print every weight the model learnt (a debug log).
broker_start "$WORK/reg.db" --log-level "$([ -n "${MODEL:-}" ] && echo debug || echo info)"
for h in H001 H002 H003 H004 H005 H006 H007 H008 H009 H010; do
	ctl hospital add "$h" --name "Hospital $h" >/dev/null 2>&1 || true
done
t0=$(now)
ctl import "$WORK/pop.csv" >"$WORK/import.out" 2>&1 ||
	{ tail -5 "$WORK/import.out" >&2; die "import failed"; }
note "imported in $(secs "$t0" "$(now)") s: $(tail -1 "$WORK/import.out")"
t0=$(now)
ctl --json duplicates scan >"$WORK/scan.json" 2>/dev/null || die "scan failed"
SCAN_SECS=$(secs "$t0" "$(now)")
note "scan: $(cat "$WORK/scan.json") in $SCAN_SECS s"
note "$(grep -h "match model learnt" "$WORK"/onecardd.*.log | tail -1 | sed 's/^.*match model/match model/')"
[ -n "${MODEL:-}" ] && grep -h "match model: " "$WORK"/onecardd.*.log |
	tail -17 | sed 's/^.*match model: /  /' >&2
# Every pair, a page of 1000 at a time.
after=() : >"$WORK/pairs.jsonl"
while :; do
	ctl --json duplicates list --all --limit 1000 "${after[@]}" >"$WORK/page.json" ||
		die "list failed"
	cat "$WORK/page.json" >>"$WORK/pairs.jsonl"
	last=$(grep -oE '"pair_id":[0-9]+' "$WORK/page.json" | tail -1 | cut -d: -f2)
	[ "$(grep -oE '"pair_id":[0-9]+' "$WORK/page.json" | wc -l)" -lt 1000 ] && break
	after=(--after "$last")
done
ctl --json export >"$WORK/export.jsonl" || die "export failed"

# Search from each corrupted copy's own fields, for top-1.
python3 - "$WORK" "$SEARCHES" >"$WORK/queries.tsv" <<'EOF'
import csv, random, sys
work, n = sys.argv[1], int(sys.argv[2])
rows = {}
with open(f"{work}/pop.csv", newline="") as f:
    for r in csv.DictReader(f):
        for ident in r["identifiers"].split(";"):
            rows[ident] = r
copies = []
with open(f"{work}/truth.csv", newline="") as f:
    orig = {}
    for r in csv.DictReader(f):
        if r["errors"] == "":
            orig[r["cluster"]] = r["identifier"]
        else:
            copies.append((orig[r["cluster"]], r["identifier"]))
random.seed(7)
for o, c in random.sample(copies, min(n, len(copies))):
    r = rows[c]
    print("\x1f".join([o, c, r["name"], r["birth_date"], r["phone"], r["sex"]]))
EOF
: >"$WORK/search.out"
while IFS=$'\x1f' read -r orig copy name birth phone sex; do
	args=(--limit 3)
	[ -n "$name" ] && args+=(--name "$name")
	[ -n "$birth" ] && args+=(--birth "$birth")
	[ -n "$phone" ] && args+=(--phone "$phone")
	[ "$sex" = M ] && args+=(--sex male)
	[ "$sex" = F ] && args+=(--sex female)
	printf '%s\t%s\t' "$orig" "$copy" >>"$WORK/search.out"
	"$BIN/onecard" --broker "$BROKER_ADDR" --ca "$WORK/certs/ca.pem" \
		--cert "$WORK/certs/admin.pem" --key "$WORK/certs/admin.key" \
		--json search "${args[@]}" >>"$WORK/search.out" 2>/dev/null || true
done <"$WORK/queries.tsv"
broker_stop

python3 - "$WORK" "$N" "$RATE" "$SCAN_SECS" <<'EOF'
import csv, itertools, json, sys
work, n, rate, scan_secs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
pid_of, rec = {}, {}
with open(f"{work}/export.jsonl") as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        p = json.loads(line)
        rec[p["patient_id"]] = p
        for i in p.get("identifiers", []):
            pid_of[f'{i["domain"]}={i["value"]}'] = p["patient_id"]
clusters = {}
with open(f"{work}/truth.csv", newline="") as f:
    for r in csv.DictReader(f):
        clusters.setdefault(r["cluster"], []).append(r["identifier"])
truth = set()
for ids in clusters.values():
    pids = sorted({pid_of[i] for i in ids if i in pid_of})
    for a, b in itertools.combinations(pids, 2):
        truth.add((a, b))
pairs = []
for line in open(f"{work}/pairs.jsonl"):
    if line.strip():
        pairs += json.loads(line)["pairs"]
def score(pred):
    tp = len(pred & truth)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(truth) if truth else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return len(pred), tp, p, r, f
def key(x):
    return tuple(sorted((x["a"], x["b"])))
certain = {key(x) for x in pairs if x["grade"] == "certain"}
probable = {key(x) for x in pairs if x["grade"] in ("certain", "probable")}
by_nb = {}
for pid, p in rec.items():
    if p.get("merged_into"):
        continue
    if p.get("name") and p.get("birth_date"):
        by_nb.setdefault((p["name"], p["birth_date"]), []).append(pid)
exact = set()
for v in by_nb.values():
    for a, b in itertools.combinations(sorted(v), 2):
        exact.add((a, b))
print(f"population: {n} rows at duplicate rate {rate}: {len(rec)} patients, {len(truth)} true pairs; scan {scan_secs} s")
for name, pred in (("MATCH_CERTAIN", certain), ("MATCH_PROBABLE or better", probable), ("exact name + birth date (baseline)", exact)):
    k, tp, p, r, f = score(pred)
    print(f"{name}: {k} pairs, {tp} true: precision {p:.4f}, recall {r:.4f}, F1 {f:.4f}")
import os
if os.environ.get("MISSED"):
    errs = {}
    with open(f"{work}/truth.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["identifier"] in pid_of:
                errs[pid_of[r["identifier"]]] = r["errors"]
    hist = {}
    for a, b in sorted(truth - probable):
        e = errs.get(a) or errs.get(b)
        hist[e] = hist.get(e, 0) + 1
    print("missed pairs by the copy's errors:", sorted(hist.items(), key=lambda x: -x[1])[:30])
    reason = {key(x): (x["grade"], x.get("score"), x.get("reason")) for x in pairs}
    for a, b in sorted(certain - truth)[: int(os.environ["MISSED"])]:
        print("  false certain:", reason.get((a, b)))
        for x in (a, b):
            p = rec[x]
            print(f"  {x} {p.get('name')} {p.get('sex')} {p.get('birth_date')} {p.get('phone')} {p.get('address')} [{errs.get(x)}]")
        print()
    for a, b in sorted(truth - probable)[: int(os.environ["MISSED"])]:
        for x in (a, b):
            p = rec[x]
            print(f"  {x} {p.get('name')} {p.get('sex')} {p.get('birth_date')} {p.get('phone')} {p.get('address')} [{errs.get(x)}]")
        print()
top1 = total = 0
with open(f"{work}/search.out") as f:
    for line in f:
        parts = line.rstrip("\n").split("\t", 2)
        if len(parts) < 3:
            continue
        orig, copy, out = parts
        total += 1
        try:
            hits = [m["patient_id"] for m in json.loads(out)["matches"]]
        except Exception:
            continue
        hits = [h for h in hits if h != pid_of.get(copy)]
        if hits and hits[0] == pid_of.get(orig):
            top1 += 1
if total:
    print(f"search from a corrupted copy: the true patient is top-1 (after the copy itself) in {top1} of {total}: {100 * top1 / total:.1f}%")
EOF
