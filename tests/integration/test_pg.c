/*
 * test_pg.c: onecardd with its registry in PostgreSQL (--db
 * postgresql://...), on the throwaway cluster of ctest's pg fixture, each
 * test in a schema of its own. The contract's writes and reads through two
 * brokers, a write on one broker seen by a lookup on the other at once, a
 * subscriber on each broker served both brokers' events in order, and a
 * revocation on one closing the hospital's connection on the other; then
 * two brokers on one
 * database, many connections racing to enroll the same cn-ids, to add two
 * cn-ids to one patient and to merge two patients into each other, with the
 * registry's invariants checked in SQL afterwards.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "harness.h"
#include "onecard.h"

#define CODE(c) ONECARD__V1__CODE__##c

#define RACE_CNIDS   120 /* cn-ids every enrolling connection enrolls */
#define RACE_CONNS   6   /* enrolling connections, half on each broker */
#define RACE_PAIRS   40  /* patients raced for by two links, two merges */
#define RACE_TIMEOUT 120 /* seconds a race may take */

static char pg_base[320]; /* the cluster's URL */

/* The cluster's URL: ONECARD_TEST_PG, or the file the pg fixture wrote. */
static void
pg_find_url(void)
{
	const char *env = getenv("ONECARD_TEST_PG");
	const char *file = getenv("ONECARD_TEST_PG_URLFILE");
	FILE *f = NULL;

	if (env != NULL && env[0] != '\0') {
		snprintf(pg_base, sizeof(pg_base), "%s", env);
		return;
	}
	if (file == NULL || (f = fopen(file, "r")) == NULL)
		fail_msg(
		    "no PostgreSQL server: set ONECARD_TEST_PG to a libpq "
		    "URL, or run through ctest (its pg fixture starts one)");
	if (fgets(pg_base, sizeof(pg_base), f) == NULL)
		pg_base[0] = '\0';
	fclose(f);
	pg_base[strcspn(pg_base, "\n")] = '\0';
	if (pg_base[0] == '\0')
		fail_msg("%s is empty: the pg fixture did not start", file);
}

/* A connection to the cluster, to schema (NULL: the default). */
static PGconn *
pg_connect(const char *schema)
{
	char url[512];
	PGconn *c;

	if (schema == NULL)
		snprintf(url, sizeof(url), "%s", pg_base);
	else
		snprintf(url, sizeof(url), "%s%coptions=-csearch_path%%3D%s",
		    pg_base, strchr(pg_base, '?') ? '&' : '?', schema);
	c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("PostgreSQL at %s: %s", url, PQerrorMessage(c));
	return c;
}

/* Run sql; fail the test on error. */
static void
pg_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

/* The one number sql returns. */
static long long
pg_number(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	long long v;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

/* A new empty schema; url gets the broker's --db for it. */
static void
pg_schema(const char *schema, char *url, size_t urllen)
{
	char sql[256];
	PGconn *c = pg_connect(NULL);

	snprintf(sql, sizeof(sql),
	    "SET client_min_messages = warning;"
	    " DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s",
	    schema, schema);
	pg_exec(c, sql);
	PQfinish(c);
	snprintf(url, urllen, "%s%soptions=-csearch_path%%3D%s", pg_base,
	    strchr(pg_base, '?') ? "&" : "?", schema);
}

/* A valid cn-id of someone born 1980-01-01, number n (0..999). */
static void
cn_id(char *out, int n)
{
	static const int w[17] = {
	    7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	int sum = 0;

	snprintf(out, 19, "11010519800101%03d", n % 1000);
	for (int i = 0; i < 17; i++)
		sum += (out[i] - '0') * w[i];
	out[17] = "10X98765432"[sum % 11];
	out[18] = '\0';
}

/* Start a second broker on h's folder, certificates and --db. */
static void
second_broker(struct harness *h, struct harness *h2, const char *const *args)
{
	*h2 = *h;
	h2->pid = 0;
	snprintf(
	    h2->log_path, sizeof(h2->log_path), "%s/onecardd2.log", h->dir);
	assert_int_equal(harness_restart(h2, args), 0);
}

/* Send a request on conn; the reply's code, and the patient id it names
 * into pid (may be NULL). */
static int
call(struct onecard_conn *conn, Onecard__V1__Request *req, char *pid)
{
	Onecard__V1__Reply *r = NULL;
	int code;

	if (onecard_call(conn, req, &r) != ONECARD_OK)
		return -1;
	code = r->code;
	if (pid != NULL) {
		pid[0] = '\0';
		if (r->result_case == ONECARD__V1__REPLY__RESULT_PATIENT)
			snprintf(pid, 48, "%s", r->patient->patient_id);
		else if (r->result_case == ONECARD__V1__REPLY__RESULT_ENROLLED)
			snprintf(
			    pid, 48, "%s", r->enrolled->patient->patient_id);
	}
	onecard_reply_free(r);
	return code;
}

/* Enroll hosp:XC001=card, with a cn-id when cnid is not NULL. */
static int
enroll(struct onecard_conn *conn, const char *cnid, const char *card, char *pid)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier ids[2], *idp[2];
	size_t n = 0;

	onecard__v1__identifier__init(&ids[0]);
	onecard__v1__identifier__init(&ids[1]);
	ids[n].domain = (char *)"hosp:XC001";
	ids[n].value = (char *)card;
	idp[n] = &ids[n];
	n++;
	if (cnid != NULL) {
		ids[n].domain = (char *)"cn-id";
		ids[n].value = (char *)cnid;
		idp[n] = &ids[n];
		n++;
	}
	d.name = (char *)"";
	e.demographics = &d;
	e.identifiers = idp;
	e.n_identifiers = n;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &e;
	return call(conn, &req, pid);
}

/* Link cn-id cnid to the holder of hosp:XC001=card. */
static int
link_cn_id(struct onecard_conn *conn, const char *card, const char *cnid)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Link l = ONECARD__V1__LINK__INIT;
	Onecard__V1__Identifier known = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier added = ONECARD__V1__IDENTIFIER__INIT;

	known.domain = (char *)"hosp:XC001";
	known.value = (char *)card;
	added.domain = (char *)"cn-id";
	added.value = (char *)cnid;
	l.known = &known;
	l.added = &added;
	req.op_case = ONECARD__V1__REQUEST__OP_LINK;
	req.link = &l;
	return call(conn, &req, NULL);
}

/* Merge the holder of hosp:XC001=dup into that of hosp:XC001=surv. */
static int
merge(struct onecard_conn *conn, const char *surv, const char *dup)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Merge m = ONECARD__V1__MERGE__INIT;
	Onecard__V1__Identifier s = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier d = ONECARD__V1__IDENTIFIER__INIT;

	s.domain = d.domain = (char *)"hosp:XC001";
	s.value = (char *)surv;
	d.value = (char *)dup;
	m.survivor = &s;
	m.duplicate = &d;
	req.op_case = ONECARD__V1__REQUEST__OP_MERGE;
	req.merge = &m;
	return call(conn, &req, NULL);
}

/* Undo the merge of patient pid. */
static int
unmerge(struct onecard_conn *conn, const char *pid)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Unmerge u = ONECARD__V1__UNMERGE__INIT;

	u.patient_id = (char *)pid;
	req.op_case = ONECARD__V1__REQUEST__OP_UNMERGE;
	req.unmerge = &u;
	return call(conn, &req, NULL);
}

/* Revoke hospital code (admin). */
static int
revoke_hospital(struct onecard_conn *conn, const char *code)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__HospitalRevoke r = ONECARD__V1__HOSPITAL_REVOKE__INIT;

	r.code = (char *)code;
	req.op_case = ONECARD__V1__REQUEST__OP_HOSPITAL_REVOKE;
	req.hospital_revoke = &r;
	return call(conn, &req, NULL);
}

/* Look up domain=value: the code, the patient id into pid. */
static int
lookup(
    struct onecard_conn *conn, const char *domain, const char *value, char *pid)
{
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *r = NULL;
	int code;

	id.domain = (char *)domain;
	id.value = (char *)value;
	if (onecard_lookup(conn, &id, NULL, 0, &r) != ONECARD_OK)
		return -1;
	code = r->code;
	pid[0] = '\0';
	if (r->result_case == ONECARD__V1__REPLY__RESULT_PATIENT)
		snprintf(pid, 48, "%s", r->patient->patient_id);
	onecard_reply_free(r);
	return code;
}

/*
 * What the store does not do is refused, not ignored: event retention
 * with a registry on PostgreSQL, naming the flag (--check-config, and
 * the same at start).
 */
static void
retention_on_postgresql_is_refused_naming_the_flag(void **state)
{
	static const char *const codes[] = {"XC001", NULL};
	struct harness h;
	char cmd[2048], out[512], err[2048];

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	snprintf(cmd, sizeof(cmd),
	    "onecardd --check-config --listen 127.0.0.1:0"
	    " --db postgresql://onecard@127.0.0.1:1/x --cert '%s/broker.pem'"
	    " --key '%s/broker.key' --ca '%s/ca.pem' --event-retention 30d",
	    h.certs, h.certs, h.certs);
	assert_int_equal(
	    harness_run2(&h, NULL, out, sizeof(out), err, sizeof(err), cmd), 1);
	assert_non_null(strstr(err,
	    "--event-retention: the registry on "
	    "PostgreSQL keeps every event"));
	/* The same flag on SQLite is taken. */
	snprintf(cmd, sizeof(cmd),
	    "onecardd --check-config --listen 127.0.0.1:0 --db '%s/x.db'"
	    " --cert '%s/broker.pem' --key '%s/broker.key' --ca '%s/ca.pem'"
	    " --event-retention 30d",
	    h.dir, h.certs, h.certs, h.certs);
	assert_int_equal(
	    harness_run2(&h, NULL, out, sizeof(out), err, sizeof(err), cmd), 0);
	harness_cleanup(&h);
}

static void
contract_ops_run_through_brokers_on_postgresql(void **state)
{
	static const char *const codes[] = {"XC001", NULL};
	struct harness h, h2;
	struct onecard_conn *c1, *c2, *adm, *sub, *sub2;
	Onecard__V1__Reply *ev;
	char url[512], cn[19], cn2[19], p1[48], p2[48], got[48];
	const char *args[] = {"--db", url, NULL};
	const char *want[] = {"enroll", "enroll", "link", "enroll", "link",
	    "enroll", "merge", "unmerge"};
	uint64_t last = 0;
	PGconn *pg;

	pg_find_url();
	pg_schema("it_contract", url, sizeof(url));
	assert_int_equal(harness_start(&h, codes, args), 0);
	second_broker(&h, &h2, args);
	assert_int_equal(harness_connect(&h, "XC001", &c1), ONECARD_OK);
	assert_int_equal(harness_connect(&h2, "XC001", &c2), ONECARD_OK);
	assert_int_equal(harness_connect(&h, "admin", &adm), ONECARD_OK);
	/* One subscriber on each broker: broker 2's hears broker 1's
	 * commits through LISTEN/NOTIFY (registry_pgfeed.c), the last ones
	 * (the merge and unmerge) only that way. */
	assert_int_equal(harness_connect(&h, "admin", &sub), ONECARD_OK);
	assert_int_equal(onecard_subscribe(sub, 0, 1, &last), ONECARD_OK);
	assert_int_equal(harness_connect(&h2, "admin", &sub2), ONECARD_OK);
	assert_int_equal(onecard_subscribe(sub2, 0, 1, &last), ONECARD_OK);
	cn_id(cn, 1);
	cn_id(cn2, 2);

	/* Written on one broker, read on the other at once. */
	assert_int_equal(enroll(c1, cn, "A1", p1), CODE(OK));
	assert_int_equal(lookup(c2, "cn-id", cn, got), CODE(OK));
	assert_string_equal(got, p1);
	assert_int_equal(lookup(c2, "hosp:XC001", "A1", got), CODE(OK));
	assert_string_equal(got, p1);
	/* A miss is never cached: once enrolled on broker 1, broker 2
	 * finds it at once. */
	assert_int_equal(
	    lookup(c2, "hosp:XC001", "NOPE", got), CODE(NOT_FOUND));
	assert_int_equal(enroll(c1, NULL, "NOPE", p2), CODE(OK));
	assert_int_equal(lookup(c2, "hosp:XC001", "NOPE", got), CODE(OK));
	assert_string_equal(got, p2);
	/* The same cn-id again, on the other broker: the same patient. */
	assert_int_equal(enroll(c2, cn, "A2", got), CODE(OK));
	assert_string_equal(got, p1);
	assert_int_equal(enroll(c2, NULL, "B1", p2), CODE(OK));
	assert_int_equal(link_cn_id(c1, "B1", cn2), CODE(OK));
	assert_int_equal(link_cn_id(c1, "B1", cn), CODE(CONFLICT));
	/* Two cn-ids never merge; a patient without one does. */
	assert_int_equal(merge(adm, "A1", "B1"), CODE(CONFLICT));
	assert_int_equal(enroll(c2, NULL, "C1", p2), CODE(OK));
	assert_int_equal(merge(adm, "A1", "C1"), CODE(OK));
	assert_int_equal(lookup(c2, "hosp:XC001", "C1", got), CODE(OK));
	assert_string_equal(got, p1);
	/* Broker 2 cached C1's lookup (twice: the second from its cache);
	 * the unmerge through broker 1 reaches it through the feed, which
	 * drops the cached reply: C1 names p2 again within the feed's
	 * delay (measured by bench/pg-store.sh). */
	assert_int_equal(lookup(c2, "hosp:XC001", "C1", got), CODE(OK));
	assert_string_equal(got, p1);
	assert_int_equal(unmerge(adm, p2), CODE(OK));
	for (int i = 0;; i++) {
		assert_int_equal(lookup(c2, "hosp:XC001", "C1", got), CODE(OK));
		if (strcmp(got, p2) == 0)
			break;
		assert_true(i < 100);
		usleep(50000);
	}

	/* Each subscriber hears every event, both brokers', in order (the
	 * merge's and unmerge's quiet halves are not an admin's). */
	for (int k = 0; k < 2; k++)
		for (uint64_t seq = 0, i = 0;
		     i < sizeof(want) / sizeof(want[0]); i++) {
			assert_int_equal(
			    onecard_next_event(k ? sub2 : sub, 10000, &ev),
			    ONECARD_OK);
			assert_true(ev->event->seq > seq);
			seq = ev->event->seq;
			assert_string_equal(ev->event->op, want[i]);
			onecard_reply_free(ev);
		}

	/* The events are numbered 1..n without a gap: undone ops (the
	 * conflicts) gave their numbers back. */
	pg = pg_connect("it_contract");
	assert_true(pg_number(pg, "SELECT count(*) FROM events") >= 9);
	assert_int_equal(
	    pg_number(pg, "SELECT max(seq) - count(*) FROM events"), 0);
	PQfinish(pg);
	/* A revocation through broker 1 closes the hospital's connection
	 * on broker 2 as well. */
	assert_int_equal(revoke_hospital(adm, "XC001"), CODE(OK));
	for (int i = 0; i < 100; i++) {
		int rc = lookup(c2, "hosp:XC001", "A1", got);

		if (rc != CODE(OK))
			break;
		assert_true(i < 99);
		usleep(50000);
	}
	onecard_close(c1);
	onecard_close(c2);
	onecard_close(adm);
	onecard_close(sub);
	onecard_close(sub2);
	harness_stop(&h2, SIGTERM);
	harness_cleanup(&h);
}

/* --- Two brokers racing ----------------------------------------------- */

struct racer {
	struct harness *h;
	int n;         /* this connection's number */
	int failed;    /* replies not OK, or calls that failed */
	char why[160]; /* the first failure */
};

/* Enroll every cn-id of the race with a card of this connection's own. */
static void *
racer_enroll(void *arg)
{
	struct racer *r = arg;
	struct onecard_conn *c;
	char cn[19], card[32], pid[48];
	int code;

	if (harness_connect(r->h, "XC001", &c) != ONECARD_OK) {
		r->failed++;
		snprintf(r->why, sizeof(r->why), "cannot connect");
		return NULL;
	}
	for (int i = 0; i < RACE_CNIDS; i++) {
		cn_id(cn, 100 + i);
		snprintf(card, sizeof(card), "E%d-%d", r->n, i);
		if ((code = enroll(c, cn, card, pid)) != CODE(OK) &&
		    r->failed++ == 0)
			snprintf(r->why, sizeof(r->why),
			    "enroll %d on connection %d: code %d", i, r->n,
			    code);
	}
	onecard_close(c);
	return NULL;
}

/* Two connections, one on each broker, racing op by op. */
struct duel {
	struct harness *h[2];
	pthread_barrier_t go;
	int codes[2][RACE_PAIRS];
	int merging; /* 0: link two cn-ids to one patient; 1: merge */
};

struct duelist {
	struct duel *d;
	int side;
};

static void *
duelist_main(void *arg)
{
	struct duelist *me = arg;
	struct duel *d = me->d;
	struct onecard_conn *c = NULL;
	char cn[19], a[16], b[16];
	int ok = harness_connect(d->h[me->side], d->merging ? "admin" : "XC001",
		     &c) == ONECARD_OK;

	for (int j = 0; j < RACE_PAIRS; j++) {
		pthread_barrier_wait(&d->go);
		if (!ok) {
			d->codes[me->side][j] = -1;
			continue;
		}
		if (d->merging) {
			/* Each side merges the other way round. */
			snprintf(a, sizeof(a), "M%d-%d", j, me->side);
			snprintf(b, sizeof(b), "M%d-%d", j, !me->side);
			d->codes[me->side][j] = merge(c, a, b);
		} else {
			snprintf(a, sizeof(a), "L%d", j);
			cn_id(cn, 500 + 2 * j + me->side);
			d->codes[me->side][j] = link_cn_id(c, a, cn);
		}
	}
	if (c != NULL)
		onecard_close(c);
	return NULL;
}

/* The broker's warnings, to stderr: why a race went wrong. */
static void
dump_warnings(struct harness *h)
{
	static char buf[1 << 20];
	char *line, *save = NULL;

	if (harness_log(h, buf, sizeof(buf)) == -1)
		return;
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		if (strstr(line, "[warn]") != NULL)
			fprintf(stderr, "%s\n", line);
}

/* Run a duel; each pair must end with exactly one side answered OK. */
static void
duel_run(struct harness *h, struct harness *h2, int merging)
{
	struct duel d = {.h = {h, h2}, .merging = merging};
	struct duelist me[2] = {{&d, 0}, {&d, 1}};
	pthread_t t[2];
	int wins = 0;

	pthread_barrier_init(&d.go, NULL, 2);
	for (int s = 0; s < 2; s++)
		assert_int_equal(
		    pthread_create(&t[s], NULL, duelist_main, &me[s]), 0);
	for (int s = 0; s < 2; s++)
		pthread_join(t[s], NULL);
	pthread_barrier_destroy(&d.go);
	for (int j = 0; j < RACE_PAIRS; j++) {
		int ok0 = d.codes[0][j] == CODE(OK);
		int ok1 = d.codes[1][j] == CODE(OK);

		if (d.codes[0][j] < 0 || d.codes[1][j] < 0)
			fail_msg("%s %d: a connection failed",
			    merging ? "merge" : "link", j);
		if (ok0 + ok1 != 1)
			fail_msg("%s %d: codes %d and %d, want one OK",
			    merging ? "merge" : "link", j, d.codes[0][j],
			    d.codes[1][j]);
		wins += ok0;
	}
	fprintf(stderr, "%s race: broker 1 won %d of %d\n",
	    merging ? "merge" : "link", wins, RACE_PAIRS);
}

static void
two_brokers_racing_keep_every_invariant(void **state)
{
	static const char *const codes[] = {"XC001", NULL};
	struct harness h, h2;
	struct racer r[RACE_CONNS];
	pthread_t t[RACE_CONNS];
	struct onecard_conn *c;
	char url[512], card[16], pid[48];
	const char *args[] = {"--db", url, NULL};
	long long t0;
	PGconn *pg;

	pg_find_url();
	pg_schema("it_race", url, sizeof(url));
	assert_int_equal(harness_start(&h, codes, args), 0);
	second_broker(&h, &h2, args);

	/* Every connection enrolls the same cn-ids in the same order, half
	 * through each broker: each is enrolled once, the rest are linked. */
	t0 = harness_now_ms();
	for (int i = 0; i < RACE_CONNS; i++) {
		r[i] = (struct racer){.h = i % 2 ? &h2 : &h, .n = i};
		assert_int_equal(
		    pthread_create(&t[i], NULL, racer_enroll, &r[i]), 0);
	}
	for (int i = 0; i < RACE_CONNS; i++)
		pthread_join(t[i], NULL);
	fprintf(stderr, "enroll race: %d enrollments in %lld ms\n",
	    RACE_CONNS * RACE_CNIDS, harness_now_ms() - t0);
	for (int i = 0; i < RACE_CONNS; i++)
		if (r[i].failed > 0) {
			dump_warnings(&h);
			dump_warnings(&h2);
			fail_msg("%d enrollments not OK; first: %s",
			    r[i].failed, r[i].why);
		}

	/* Patients with a card only, then two links of different cn-ids to
	 * each at once, one through each broker: one wins, one CONFLICT. */
	assert_int_equal(harness_connect(&h, "XC001", &c), ONECARD_OK);
	for (int j = 0; j < RACE_PAIRS; j++) {
		snprintf(card, sizeof(card), "L%d", j);
		assert_int_equal(enroll(c, NULL, card, pid), CODE(OK));
		for (int s = 0; s < 2; s++) {
			snprintf(card, sizeof(card), "M%d-%d", j, s);
			assert_int_equal(enroll(c, NULL, card, pid), CODE(OK));
		}
	}
	onecard_close(c);
	duel_run(&h, &h2, 0);
	/* Pairs merged into each other at once: one merge, never a loop. */
	duel_run(&h, &h2, 1);

	pg = pg_connect("it_race");
	/* One patient per cn-id, holding every card enrolled with it. */
	assert_int_equal(
	    pg_number(pg,
		"SELECT count(DISTINCT patient_id) FROM identifiers"
		" WHERE domain = 'cn-id' AND value LIKE "
		"'11010519800101%' AND value < '110105198001013'"),
	    RACE_CNIDS);
	assert_int_equal(
	    pg_number(pg,
		"SELECT count(*) FROM identifiers i"
		" JOIN identifiers c ON c.patient_id = i.patient_id"
		" AND c.domain = 'cn-id'"
		" WHERE i.domain = 'hosp:XC001' AND i.value LIKE 'E%'"),
	    RACE_CONNS * RACE_CNIDS);
	/* One owner per identifier. */
	assert_int_equal(pg_number(pg,
			     "SELECT count(*) FROM (SELECT domain, value"
			     " FROM identifiers GROUP BY domain, value"
			     " HAVING count(DISTINCT patient_id) > 1) x"),
	    0);
	/* At most one cn-id per live patient. */
	assert_int_equal(pg_number(pg,
			     "SELECT count(*) FROM (SELECT i.patient_id"
			     " FROM identifiers i JOIN patients p"
			     " ON p.id = i.patient_id AND p.merged_into = ''"
			     " WHERE i.domain = 'cn-id' GROUP BY i.patient_id"
			     " HAVING count(*) > 1) x"),
	    0);
	/* Every merge chain ends at a live patient (and no loop). */
	assert_int_equal(
	    pg_number(pg,
		"WITH RECURSIVE chain (start, at, hops) AS ("
		" SELECT id, merged_into, 1 FROM patients"
		" WHERE merged_into <> ''"
		" UNION ALL SELECT c.start, p.merged_into, c.hops + 1"
		" FROM chain c JOIN patients p ON p.id = c.at"
		" WHERE p.merged_into <> '' AND c.hops < 64)"
		" SELECT count(*) FROM patients p WHERE"
		" p.merged_into <> '' AND NOT EXISTS (SELECT 1"
		" FROM chain c JOIN patients l ON l.id = c.at"
		" AND l.merged_into = '' WHERE c.start = p.id)"),
	    0);
	assert_int_equal(pg_number(pg,
			     "SELECT count(*) FROM patients WHERE merged_into"
			     " <> ''"),
	    RACE_PAIRS);
	/* Event numbers: no gap, none twice (the key). */
	assert_int_equal(
	    pg_number(pg, "SELECT max(seq) - count(*) FROM events"), 0);
	PQfinish(pg);
	harness_stop(&h2, SIGTERM);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		retention_on_postgresql_is_refused_naming_the_flag),
	    cmocka_unit_test(contract_ops_run_through_brokers_on_postgresql),
	    cmocka_unit_test(two_brokers_racing_keep_every_invariant),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
