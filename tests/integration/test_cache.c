/*
 * test_cache.c: the workers' lookup caches never answer with a record as it
 * was before an acknowledged write.
 *
 * The broker runs two workers; the test holds several connections (spread
 * over both by SO_REUSEPORT), looks a patient up on every one so that each
 * worker caches it, changes the patient on one connection, and then expects
 * every connection to see the change at once: update, link, unlink, merge
 * (the duplicate's cards and pid answer with the survivor) and unmerge. The
 * metrics show the lookups were in fact answered from the caches, and with
 * --lookup-cache 0 none is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define NCONN 8
#define CN_ID "11010519491231002X"

static const char *const codes[] = {"XC001", NULL};
static const char *const with_metrics[] = {
    "--metrics-listen", "127.0.0.1:0", NULL};

struct fixture {
	struct harness h;
	struct onecard_conn *c[NCONN];
	struct onecard_conn *admin;
	char pid[48];
};

/* Send req on conn; the reply (freed by the caller) with code checked. */
static Onecard__V1__Reply *
call(struct onecard_conn *conn, Onecard__V1__Request *req, int want)
{
	Onecard__V1__Reply *reply = NULL;

	assert_int_equal(onecard_call(conn, req, &reply), ONECARD_OK);
	assert_non_null(reply);
	if ((int)reply->code != want)
		fprintf(stderr, "code %d (%s), want %d\n", reply->code,
		    reply->message, want);
	assert_int_equal(reply->code, want);
	return reply;
}

/* Look up domain=value on conn; the reply, code checked against want. */
static Onecard__V1__Reply *
lookup(
    struct onecard_conn *conn, const char *domain, const char *value, int want)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;

	id.domain = (char *)domain;
	id.value = (char *)value;
	l.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &l;
	return call(conn, &req, want);
}

/* Does patient p hold domain=value? */
static int
holds(const Onecard__V1__Patient *p, const char *domain, const char *value)
{
	for (size_t i = 0; i < p->n_identifiers; i++)
		if (strcmp(p->identifiers[i]->domain, domain) == 0 &&
		    strcmp(p->identifiers[i]->value, value) == 0)
			return 1;
	return 0;
}

/* Look domain=value up on every connection, twice (the second from the
 * caches): each answers OK with patient pid and the given name, version
 * and number of identifiers (0: not checked). */
static void
expect_everywhere(struct fixture *f, const char *domain, const char *value,
    const char *pid, const char *name, uint64_t version, size_t nids)
{
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < NCONN; i++) {
			Onecard__V1__Reply *r = lookup(
			    f->c[i], domain, value, ONECARD__V1__CODE__OK);

			assert_int_equal(
			    r->result_case, ONECARD__V1__REPLY__RESULT_PATIENT);
			assert_string_equal(r->patient->patient_id, pid);
			if (name != NULL)
				assert_string_equal(
				    r->patient->demographics->name, name);
			if (version != 0)
				assert_int_equal(r->patient->version, version);
			if (nids != 0)
				assert_int_equal(
				    r->patient->n_identifiers, nids);
			onecard_reply_free(r);
		}
}

/* Every connection answers NOT_FOUND for domain=value. */
static void
expect_nowhere(struct fixture *f, const char *domain, const char *value)
{
	for (int i = 0; i < NCONN; i++)
		onecard_reply_free(lookup(
		    f->c[i], domain, value, ONECARD__V1__CODE__NOT_FOUND));
}

/* Enroll with one or two identifiers as the hospital; the patient id. */
static void
enroll(struct fixture *f, const char *name, const char *d1, const char *v1,
    const char *d2, const char *v2, char *pid)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier a = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier b = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier *ids[2] = {&a, &b};
	Onecard__V1__Reply *r;

	d.name = (char *)name;
	a.domain = (char *)d1;
	a.value = (char *)v1;
	b.domain = (char *)d2;
	b.value = (char *)v2;
	e.demographics = &d;
	e.identifiers = ids;
	e.n_identifiers = d2 != NULL ? 2 : 1;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &e;
	r = call(f->c[0], &req, ONECARD__V1__CODE__OK);
	assert_true(r->enrolled->created);
	snprintf(pid, 48, "%s", r->enrolled->patient->patient_id);
	onecard_reply_free(r);
}

/* The cache hits counted so far. */
static double
cache_hits(struct fixture *f)
{
	static char expo[1 << 20];
	int port = harness_metrics_port(&f->h);

	assert_true(port > 0);
	assert_int_equal(
	    harness_http_get(port, "/metrics", expo, sizeof(expo), NULL, 0),
	    200);
	return harness_metric(
	    expo, "onecard_lookup_cache_requests_total{result=\"hit\"}");
}

static int
connect_all(struct fixture *f)
{
	for (int i = 0; i < NCONN; i++)
		if (harness_connect(&f->h, "XC001", &f->c[i]) != ONECARD_OK)
			return -1;
	return harness_connect(&f->h, "admin", &f->admin) == ONECARD_OK ? 0
									: -1;
}

static void
close_all(struct fixture *f)
{
	for (int i = 0; i < NCONN; i++)
		if (f->c[i] != NULL) {
			onecard_close(f->c[i]);
			f->c[i] = NULL;
		}
	if (f->admin != NULL) {
		onecard_close(f->admin);
		f->admin = NULL;
	}
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL || harness_start(&f->h, codes, with_metrics) == -1 ||
	    connect_all(f) == -1) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	close_all(f);
	harness_cleanup(&f->h);
	free(f);
	return 0;
}

static void
update_is_seen_by_every_worker(void **state)
{
	struct fixture *f = *state;
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Update u = ONECARD__V1__UPDATE__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	double hits;

	enroll(f, "张三", "cn-id", CN_ID, "hosp:XC001", "V1", f->pid);
	expect_everywhere(f, "cn-id", CN_ID, f->pid, "张三", 1, 2);
	expect_everywhere(f, "pid", f->pid, f->pid, "张三", 1, 2);
	hits = cache_hits(f);
	/* Each worker misses a key once; the rest were hits. */
	assert_true(hits >= 2 * NCONN * 2 - 4);

	id.domain = "hosp:XC001";
	id.value = "V1";
	d.name = "张三丰";
	u.identifier = &id;
	u.demographics = &d;
	req.op_case = ONECARD__V1__REQUEST__OP_UPDATE;
	req.update = &u;
	onecard_reply_free(call(f->c[NCONN - 1], &req, ONECARD__V1__CODE__OK));
	expect_everywhere(f, "cn-id", CN_ID, f->pid, "张三丰", 2, 2);
	expect_everywhere(f, "pid", f->pid, f->pid, "张三丰", 2, 2);
	expect_everywhere(f, "hosp:XC001", "V1", f->pid, "张三丰", 2, 2);
	assert_true(cache_hits(f) > hits);
}

static void
link_and_unlink_are_seen_by_every_worker(void **state)
{
	struct fixture *f = *state;
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Link l = ONECARD__V1__LINK__INIT;
	Onecard__V1__Unlink u = ONECARD__V1__UNLINK__INIT;
	Onecard__V1__Identifier known = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier added = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *r;

	enroll(f, "李四", "cn-id", CN_ID, "hosp:XC001", "V1", f->pid);
	expect_everywhere(f, "cn-id", CN_ID, f->pid, NULL, 1, 2);
	expect_nowhere(f, "hosp:XC001", "V2");

	known.domain = "cn-id";
	known.value = CN_ID;
	added.domain = "hosp:XC001";
	added.value = "V2";
	l.known = &known;
	l.added = &added;
	req.op_case = ONECARD__V1__REQUEST__OP_LINK;
	req.link = &l;
	onecard_reply_free(call(f->c[3], &req, ONECARD__V1__CODE__OK));
	expect_everywhere(f, "cn-id", CN_ID, f->pid, NULL, 2, 3);
	expect_everywhere(f, "hosp:XC001", "V2", f->pid, NULL, 2, 3);
	expect_everywhere(f, "hosp:XC001", "V1", f->pid, NULL, 2, 3);

	u.identifier = &added;
	req.op_case = ONECARD__V1__REQUEST__OP_UNLINK;
	req.unlink = &u;
	onecard_reply_free(call(f->c[5], &req, ONECARD__V1__CODE__OK));
	expect_nowhere(f, "hosp:XC001", "V2");
	expect_everywhere(f, "cn-id", CN_ID, f->pid, NULL, 3, 2);
	r = lookup(f->c[1], "hosp:XC001", "V1", ONECARD__V1__CODE__OK);
	assert_false(holds(r->patient, "hosp:XC001", "V2"));
	onecard_reply_free(r);
}

static void
merge_and_unmerge_are_seen_by_every_worker(void **state)
{
	struct fixture *f = *state;
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Merge m = ONECARD__V1__MERGE__INIT;
	Onecard__V1__Unmerge um = ONECARD__V1__UNMERGE__INIT;
	Onecard__V1__Identifier s = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier d = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *r;
	char dup[48];

	enroll(f, "王五", "cn-id", CN_ID, NULL, NULL, f->pid);
	enroll(f, "王五", "hosp:XC001", "D1", "hosp:XC001", "D2", dup);
	expect_everywhere(f, "hosp:XC001", "D1", dup, NULL, 1, 2);
	expect_everywhere(f, "pid", dup, dup, NULL, 1, 2);
	expect_everywhere(f, "cn-id", CN_ID, f->pid, NULL, 1, 1);

	s.domain = "cn-id";
	s.value = CN_ID;
	d.domain = "hosp:XC001";
	d.value = "D2";
	m.survivor = &s;
	m.duplicate = &d;
	req.op_case = ONECARD__V1__REQUEST__OP_MERGE;
	req.merge = &m;
	onecard_reply_free(call(f->admin, &req, ONECARD__V1__CODE__OK));
	/* The duplicate's cards and its pid answer with the survivor. */
	expect_everywhere(f, "hosp:XC001", "D1", f->pid, NULL, 2, 3);
	expect_everywhere(f, "pid", dup, f->pid, NULL, 2, 3);
	expect_everywhere(f, "cn-id", CN_ID, f->pid, NULL, 2, 3);

	um.patient_id = dup;
	req.op_case = ONECARD__V1__REQUEST__OP_UNMERGE;
	req.unmerge = &um;
	onecard_reply_free(call(f->admin, &req, ONECARD__V1__CODE__OK));
	expect_everywhere(f, "hosp:XC001", "D1", dup, NULL, 3, 2);
	expect_everywhere(f, "pid", dup, dup, NULL, 3, 2);
	expect_everywhere(f, "cn-id", CN_ID, f->pid, NULL, 3, 1);
	r = lookup(f->c[2], "cn-id", CN_ID, ONECARD__V1__CODE__OK);
	assert_false(holds(r->patient, "hosp:XC001", "D1"));
	onecard_reply_free(r);
}

static void
lookup_cache_zero_turns_the_cache_off(void **state)
{
	struct fixture *f = *state;
	const char *const off[] = {
	    "--metrics-listen", "127.0.0.1:0", "--lookup-cache", "0", NULL};

	enroll(f, "赵六", "cn-id", CN_ID, NULL, NULL, f->pid);
	close_all(f);
	assert_int_equal(harness_stop(&f->h, 15), 0);
	assert_int_equal(harness_restart(&f->h, off), 0);
	assert_int_equal(connect_all(f), 0);
	expect_everywhere(f, "cn-id", CN_ID, f->pid, "赵六", 1, 1);
	assert_true(cache_hits(f) == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		update_is_seen_by_every_worker, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		link_and_unlink_are_seen_by_every_worker, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		merge_and_unmerge_are_seen_by_every_worker, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		lookup_cache_zero_turns_the_cache_off, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
