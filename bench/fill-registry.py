#!/usr/bin/env python3
# bench/fill-registry.py DB N SEED: fill an empty onecardd registry (the
# broker has made its schema: start and stop onecardd on DB once) with N
# patients straight through SQLite, one cn-id each, the same cn-ids that
# `onecard-bench --populate --keys N --seed SEED` enrolls, so lookups can
# run with --assume-populated. For measuring lookups on a large registry
# without waiting for an import; it bypasses the broker's rules (no events,
# no audit), so never use it on a real registry.
import sqlite3, sys, random, datetime
db, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
W = [7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; C = "10X98765432"
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
base = datetime.date(1950,1,1)
rnd = random.Random(seed)
con = sqlite3.connect(db)
con.execute("PRAGMA synchronous=OFF")
def rows():
    for k in range(n):
        d = base + datetime.timedelta(days=(k//1000) % 20000)
        s17 = "%06d%04d%02d%02d%03d" % (400000 + seed % 100000, d.year, d.month, d.day, k % 1000)
        cn = s17 + C[sum(int(c)*w for c,w in zip(s17, W)) % 11]
        pid = "P" + "".join(rnd.choice(B32) for _ in range(26))
        yield pid, cn, d.isoformat(), 1 if k % 2 else 2
with con:
    for pid, cn, bd, sex in rows():
        con.execute("INSERT INTO patients (id,name,sex,birth_date,phone,address,version,merged_into,created_ms) VALUES (?,?,?,?,?,?,1,'',0)", (pid, "王伟明", sex, bd, "13800000000", "河南省许昌市魏都区建设路1号"))
        con.execute("INSERT INTO identifiers (domain,value,patient_id) VALUES ('cn-id',?,?)", (cn, pid))
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
