/*
 * test_registry.c: the registry's rules against a real SQLite file in a
 * temporary folder, through registry.h only. Each test opens a fresh
 * registry, sends requests as an admin or a hospital, and decodes the reply
 * frames the registry appended: every code of the contract, merges undone
 * exactly, group commits with a failing write, durability across reopen.
 * Run with --pg, the same cases run against a real PostgreSQL server
 * (ONECARD_TEST_PG, or the URL the pg fixture wrote to the file
 * ONECARD_TEST_PG_URLFILE names), each on an empty schema; the few that
 * test a SQLite file's own workings are left out there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <libpq-fe.h>

#include "registry.h"
#include "wire.h"

#define CODE(x) ONECARD__V1__CODE__##x

static const struct actor admin = {"admin", ONECARD__V1__ROLE__ROLE_ADMIN};
static const struct actor xc1 = {"XC001", ONECARD__V1__ROLE__ROLE_HOSPITAL};
static const struct actor xc2 = {"XC002", ONECARD__V1__ROLE__ROLE_HOSPITAL};

/* Valid cn-ids: two women born 1949-12-31 and 1985-06-15, a man 1985-06-15. */
#define CNID_F49 "11010519491231002X"
#define CNID_F85 "320102198506150022"
#define CNID_M85 "320102198506150030"

static char dir[256];
static char path[320];
static char pg_url[320]; /* --pg: the server's URL; "" for SQLite */
static struct registry *reg;
static Onecard__V1__Reply *replies[256];
static size_t nreplies;
static struct op_result last;
static uint64_t next_id = 1;

/* --pg: drop every table, so the registry starts empty. */
static int
pg_empty_schema(void)
{
	PGconn *c = PQconnectdb(pg_url);
	PGresult *r;
	int ok;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(
		    stderr, "PostgreSQL at %s: %s", pg_url, PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	r = PQexec(c,
	    "SET client_min_messages = warning;"
	    " DROP SCHEMA public CASCADE; CREATE SCHEMA public");
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "emptying the schema: %s", PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

/* A fresh registry in a new temporary folder. */
static int
setup(void **state)
{
	char err[256];

	snprintf(dir, sizeof(dir), "/tmp/onecard-test-registry-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/registry.db", dir);
	if (pg_url[0] != '\0') {
		if (pg_empty_schema() == -1)
			return -1;
		snprintf(path, sizeof(path), "%s", pg_url);
	}
	reg = registry_open(path, 1, NULL, err, sizeof(err));
	if (reg == NULL) {
		fprintf(stderr, "registry_open: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	registry_close(reg);
	reg = NULL;
	for (size_t i = 0; i < nreplies; i++)
		wire_reply_free(replies[i]);
	nreplies = 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Decode the one frame in out; the reply is freed at teardown. */
static Onecard__V1__Reply *
take_reply(struct evbuffer *out)
{
	size_t len;
	uint8_t *buf;
	Onecard__V1__Reply *r;

	assert_int_equal(wire_peek_evbuffer(out, 1 << 24, &len), WIRE_FRAME);
	assert_int_equal(evbuffer_get_length(out), len + WIRE_HEADER_LEN);
	buf = evbuffer_pullup(out, -1);
	r = wire_reply_unpack(buf + WIRE_HEADER_LEN, len, 1 << 26, NULL);
	assert_non_null(r);
	evbuffer_drain(out, evbuffer_get_length(out));
	assert_true(nreplies < sizeof(replies) / sizeof(replies[0]));
	replies[nreplies++] = r;
	return r;
}

/* Send req on handle h as who; returns the decoded reply. */
static Onecard__V1__Reply *
call_on(struct registry *h, const struct actor *who, Onecard__V1__Request *req)
{
	struct evbuffer *out = evbuffer_new();
	Onecard__V1__Reply *r;

	req->id = next_id++;
	if (registry_op_is_write(req->op_case))
		registry_write(h, who, req, out, &last);
	else
		registry_read(h, who, req, out, &last);
	r = take_reply(out);
	evbuffer_free(out);
	assert_int_equal(r->id, req->id);
	assert_int_equal(r->code, last.code);
	if (r->code != CODE(OK))
		assert_true(r->message[0] != '\0');
	return r;
}

static Onecard__V1__Reply *
call(const struct actor *who, Onecard__V1__Request *req)
{
	return call_on(reg, who, req);
}

/* Identifiers given as domain, value, ..., NULL (dom the first domain,
 * the rest from ap) into ids, pointed at by idp; how many. */
static size_t
idents_from(va_list *ap, const char *dom, Onecard__V1__Identifier *ids,
    Onecard__V1__Identifier **idp, size_t max)
{
	size_t n = 0;

	for (; dom != NULL; dom = va_arg(*ap, const char *)) {
		assert_true(n < max);
		onecard__v1__identifier__init(&ids[n]);
		ids[n].domain = (char *)dom;
		ids[n].value = va_arg(*ap, char *);
		idp[n] = &ids[n];
		n++;
	}
	return n;
}

/* Enroll with demographics and identifiers given as domain, value, ...,
 * NULL. */
static Onecard__V1__Reply *
enroll(
    const struct actor *who, const char *name, const char *birth, int sex, ...)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier ids[40], *idp[40];
	va_list ap;
	const char *dom;
	size_t n;

	d.name = (char *)(name ? name : "");
	d.birth_date = (char *)(birth ? birth : "");
	d.sex = sex;
	va_start(ap, sex);
	dom = va_arg(ap, const char *);
	n = idents_from(&ap, dom, ids, idp, 40);
	va_end(ap);
	e.demographics = &d;
	e.identifiers = idp;
	e.n_identifiers = n;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &e;
	return call(who, &req);
}

static Onecard__V1__Reply *
lookup_on(struct registry *h, const char *dom, const char *val)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;

	id.domain = (char *)dom;
	id.value = (char *)val;
	l.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &l;
	return call_on(h, &xc1, &req);
}

static Onecard__V1__Reply *
lookup(const char *dom, const char *val)
{
	return lookup_on(reg, dom, val);
}

static Onecard__V1__Reply *
link_id(const struct actor *who, const char *kd, const char *kv, const char *ad,
    const char *av)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Link l = ONECARD__V1__LINK__INIT;
	Onecard__V1__Identifier k = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier a = ONECARD__V1__IDENTIFIER__INIT;

	k.domain = (char *)kd;
	k.value = (char *)kv;
	a.domain = (char *)ad;
	a.value = (char *)av;
	l.known = &k;
	l.added = &a;
	req.op_case = ONECARD__V1__REQUEST__OP_LINK;
	req.link = &l;
	return call(who, &req);
}

static Onecard__V1__Reply *
unlink_id(const struct actor *who, const char *dom, const char *val)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Unlink u = ONECARD__V1__UNLINK__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;

	id.domain = (char *)dom;
	id.value = (char *)val;
	u.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_UNLINK;
	req.unlink = &u;
	return call(who, &req);
}

static Onecard__V1__Reply *
update(const struct actor *who, const char *dom, const char *val,
    const char *name, const char *phone, const char *birth, uint64_t expect)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Update u = ONECARD__V1__UPDATE__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;

	id.domain = (char *)dom;
	id.value = (char *)val;
	d.name = (char *)(name ? name : "");
	d.phone = (char *)(phone ? phone : "");
	d.birth_date = (char *)(birth ? birth : "");
	u.identifier = &id;
	u.demographics = &d;
	u.expected_version = expect;
	req.op_case = ONECARD__V1__REQUEST__OP_UPDATE;
	req.update = &u;
	return call(who, &req);
}

static Onecard__V1__Reply *
merge(const struct actor *who, const char *sd, const char *sv, const char *dd,
    const char *dv)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Merge m = ONECARD__V1__MERGE__INIT;
	Onecard__V1__Identifier s = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier d = ONECARD__V1__IDENTIFIER__INIT;

	s.domain = (char *)sd;
	s.value = (char *)sv;
	d.domain = (char *)dd;
	d.value = (char *)dv;
	m.survivor = &s;
	m.duplicate = &d;
	req.op_case = ONECARD__V1__REQUEST__OP_MERGE;
	req.merge = &m;
	return call(who, &req);
}

static Onecard__V1__Reply *
unmerge(const struct actor *who, const char *pid)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Unmerge u = ONECARD__V1__UNMERGE__INIT;

	u.patient_id = (char *)pid;
	req.op_case = ONECARD__V1__REQUEST__OP_UNMERGE;
	req.unmerge = &u;
	return call(who, &req);
}

static Onecard__V1__Reply *
history(const struct actor *who, const char *dom, const char *val)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__History h = ONECARD__V1__HISTORY__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;

	id.domain = (char *)dom;
	id.value = (char *)val;
	h.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_HISTORY;
	req.history = &h;
	return call(who, &req);
}

static Onecard__V1__Reply *
hospital_add(
    const struct actor *who, const char *code, const char *name, int role)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__HospitalAdd h = ONECARD__V1__HOSPITAL_ADD__INIT;

	h.code = (char *)code;
	h.name = (char *)name;
	h.role = role;
	req.op_case = ONECARD__V1__REQUEST__OP_HOSPITAL_ADD;
	req.hospital_add = &h;
	return call(who, &req);
}

static Onecard__V1__Reply *
hospital_revoke(const struct actor *who, const char *code)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__HospitalRevoke h = ONECARD__V1__HOSPITAL_REVOKE__INIT;

	h.code = (char *)code;
	req.op_case = ONECARD__V1__REQUEST__OP_HOSPITAL_REVOKE;
	req.hospital_revoke = &h;
	return call(who, &req);
}

static Onecard__V1__Reply *
hospital_list(const struct actor *who)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__HospitalList h = ONECARD__V1__HOSPITAL_LIST__INIT;

	req.op_case = ONECARD__V1__REQUEST__OP_HOSPITAL_LIST;
	req.hospital_list = &h;
	return call(who, &req);
}

static Onecard__V1__Reply *
stats(void)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Stats s = ONECARD__V1__STATS__INIT;

	req.op_case = ONECARD__V1__REQUEST__OP_STATS;
	req.stats = &s;
	return call(&xc1, &req);
}

/* An exact search (Search.exact), the only kind before matching. */
static Onecard__V1__Reply *
search(const char *name, const char *birth, int sex, unsigned limit)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Search s = ONECARD__V1__SEARCH__INIT;

	s.name = (char *)(name ? name : "");
	s.birth_date = (char *)(birth ? birth : "");
	s.sex = sex;
	s.limit = limit;
	s.exact = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_SEARCH;
	req.search = &s;
	return call(&xc1, &req);
}

/* A ranked search (the default), with an identifier when dom is given. */
static Onecard__V1__Reply *
search_ranked(const char *name, const char *birth, int sex, const char *phone,
    const char *dom, const char *val, unsigned limit)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Search s = ONECARD__V1__SEARCH__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;

	s.name = (char *)(name ? name : "");
	s.birth_date = (char *)(birth ? birth : "");
	s.sex = sex;
	s.phone = (char *)(phone ? phone : "");
	s.limit = limit;
	if (dom != NULL) {
		id.domain = (char *)dom;
		id.value = (char *)val;
		s.identifier = &id;
	}
	req.op_case = ONECARD__V1__REQUEST__OP_SEARCH;
	req.search = &s;
	return call(&xc1, &req);
}

/* The patient of an OK reply (patient or enrolled). */
static const Onecard__V1__Patient *
patient_of(const Onecard__V1__Reply *r)
{
	assert_int_equal(r->code, CODE(OK));
	if (r->result_case == ONECARD__V1__REPLY__RESULT_ENROLLED)
		return r->enrolled->patient;
	assert_int_equal(r->result_case, ONECARD__V1__REPLY__RESULT_PATIENT);
	return r->patient;
}

/* Does p hold domain=value? */
static int
holds(const Onecard__V1__Patient *p, const char *dom, const char *val)
{
	for (size_t i = 0; i < p->n_identifiers; i++)
		if (strcmp(p->identifiers[i]->domain, dom) == 0 &&
		    strcmp(p->identifiers[i]->value, val) == 0)
			return 1;
	return 0;
}

/* Records equal in everything but version. */
static void
assert_same_record(const Onecard__V1__Patient *a, const Onecard__V1__Patient *b)
{
	assert_string_equal(a->patient_id, b->patient_id);
	assert_string_equal(a->merged_into, b->merged_into);
	assert_string_equal(a->demographics->name, b->demographics->name);
	assert_int_equal(a->demographics->sex, b->demographics->sex);
	assert_string_equal(
	    a->demographics->birth_date, b->demographics->birth_date);
	assert_string_equal(a->demographics->phone, b->demographics->phone);
	assert_string_equal(a->demographics->address, b->demographics->address);
	assert_int_equal(a->n_identifiers, b->n_identifiers);
	for (size_t i = 0; i < a->n_identifiers; i++) {
		assert_string_equal(
		    a->identifiers[i]->domain, b->identifiers[i]->domain);
		assert_string_equal(
		    a->identifiers[i]->value, b->identifiers[i]->value);
	}
}

static uint64_t
event_count(void)
{
	return stats()->stats->events;
}

static void
enroll_creates_a_patient_with_an_opaque_id(void **state)
{
	Onecard__V1__Reply *r = enroll(&xc1, "Zhang San", NULL, 0, "cn-id",
	    "11010519491231002x", "hosp:XC001", "MRN-1", NULL);
	const Onecard__V1__Patient *p = patient_of(r);

	assert_true(r->enrolled->created);
	assert_int_equal(strlen(p->patient_id), 27);
	assert_int_equal(p->patient_id[0], 'P');
	assert_int_equal(p->version, 1);
	assert_string_equal(p->merged_into, "");
	assert_true(holds(p, "cn-id", CNID_F49)); /* x stored as X */
	assert_true(holds(p, "hosp:XC001", "MRN-1"));
	/* birth date and sex filled from the cn-id */
	assert_string_equal(p->demographics->birth_date, "1949-12-31");
	assert_int_equal(p->demographics->sex, ONECARD__V1__SEX__SEX_FEMALE);
	assert_string_equal(last.patient_id, p->patient_id);
	assert_string_equal(last.target, "cn-id=110105********002X");
	assert_int_equal(event_count(), 1);
}

static void
enroll_twice_is_harmless(void **state)
{
	const Onecard__V1__Patient *a, *b;
	Onecard__V1__Reply *r;

	a = patient_of(enroll(&xc1, "Li Si", NULL, 0, "cn-id", CNID_F85,
	    "cn-ssc", "ab1234", NULL));
	r = enroll(&xc1, "Li Si", NULL, 0, "cn-id", CNID_F85, "cn-ssc",
	    "AB1234", NULL);
	b = patient_of(r);
	assert_false(r->enrolled->created);
	assert_string_equal(a->patient_id, b->patient_id);
	assert_int_equal(b->version, 1);
	assert_int_equal(event_count(), 1);
}

static void
enroll_links_the_rest_to_the_one_existing_patient(void **state)
{
	const Onecard__V1__Patient *a, *b;
	Onecard__V1__Reply *r;

	a = patient_of(enroll(&xc1, "Wang", NULL, 0, "hosp:XC001", "M1", NULL));
	r = enroll(&xc2, "", NULL, 0, "hosp:XC001", "M1", "hosp:XC002", "N9",
	    "cn-ssc", "SSC777", NULL);
	b = patient_of(r);
	assert_false(r->enrolled->created);
	assert_string_equal(a->patient_id, b->patient_id);
	assert_int_equal(b->n_identifiers, 3);
	assert_int_equal(b->version, 2);
	assert_string_equal(
	    patient_of(lookup("hosp:XC002", "N9"))->patient_id, a->patient_id);
}

static void
enroll_spanning_two_patients_conflicts_and_changes_nothing(void **state)
{
	uint64_t before;
	Onecard__V1__Reply *r;

	patient_of(enroll(&xc1, "A", NULL, 0, "hosp:XC001", "A1", NULL));
	patient_of(enroll(&xc1, "B", NULL, 0, "hosp:XC001", "B1", NULL));
	before = event_count();
	r = enroll(&xc1, "", NULL, 0, "cn-ssc", "NEW1", "hosp:XC001", "A1",
	    "hosp:XC001", "B1", NULL);
	assert_int_equal(r->code, CODE(CONFLICT));
	assert_non_null(strstr(r->message, "identifiers[2]"));
	assert_int_equal(lookup("cn-ssc", "NEW1")->code, CODE(NOT_FOUND));
	assert_int_equal(patient_of(lookup("hosp:XC001", "A1"))->version, 1);
	assert_int_equal(event_count(), before);
}

static void
enroll_with_a_second_cn_id_conflicts(void **state)
{
	Onecard__V1__Reply *r;

	patient_of(enroll(
	    &xc1, "", NULL, 0, "cn-id", CNID_F85, "hosp:XC001", "K1", NULL));
	r = enroll(
	    &xc1, "", NULL, 0, "hosp:XC001", "K1", "cn-id", CNID_M85, NULL);
	assert_int_equal(r->code, CODE(CONFLICT));
	assert_int_equal(lookup("cn-id", CNID_M85)->code, CODE(NOT_FOUND));
	/* Two different cn-ids in one request. */
	r = enroll(
	    &xc1, "", NULL, 0, "cn-id", CNID_M85, "cn-id", CNID_F49, NULL);
	assert_int_equal(r->code, CODE(CONFLICT));
	assert_int_equal(lookup("cn-id", CNID_M85)->code, CODE(NOT_FOUND));
}

static void
enroll_demographics_must_agree_with_the_cn_id(void **state)
{
	Onecard__V1__Reply *r;

	r = enroll(&xc1, "", "1985-06-16", 0, "cn-id", CNID_F85, NULL);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "demographics.birth_date"));
	r = enroll(&xc1, "", NULL, ONECARD__V1__SEX__SEX_MALE, "cn-id",
	    CNID_F85, NULL);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "demographics.sex"));
	r = enroll(&xc1, "", "1985-06-15", ONECARD__V1__SEX__SEX_FEMALE,
	    "cn-id", CNID_F85, NULL);
	assert_int_equal(r->code, CODE(OK));
}

static void
enroll_without_cn_id_names_possible_duplicates(void **state)
{
	const Onecard__V1__Patient *a;
	Onecard__V1__Reply *r;

	a = patient_of(enroll(
	    &xc1, "Zhao Liu", "1990-01-01", 1, "hosp:XC001", "D1", NULL));
	r = enroll(&xc2, "Zhao Liu", "1990-01-01", 0, "hosp:XC002", "D2", NULL);
	assert_true(patient_of(r) != NULL && r->enrolled->created);
	assert_int_equal(r->enrolled->n_possible_duplicates, 1);
	assert_string_equal(
	    r->enrolled->possible_duplicates[0]->patient_id, a->patient_id);
	r = enroll(&xc2, "Zhao Liu", "1990-01-02", 0, "hosp:XC002", "D3", NULL);
	assert_int_equal(r->enrolled->n_possible_duplicates, 0);
}

static void
enroll_refuses_malformed_input_naming_the_field(void **state)
{
	Onecard__V1__Reply *r;
	char vals[17][8];

	r = enroll(&xc1, "", NULL, 0, NULL);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	r = enroll(
	    &xc1, "", NULL, 0, "hosp:XC001", "ok", "passport", "1", NULL);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "identifiers[1].domain"));
	r = enroll(&xc1, "", NULL, 0, "cn-id", "110105194912310021", NULL);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_string_equal(r->message,
	    "identifiers[0].value: cn-id check character should be X");
	r = enroll(
	    &admin, "", NULL, 0, "pid", "PABCDEFGHIJKLMNOPQRSTUVWXYZ", NULL);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	r = enroll(&xc1, "", "2999-01-01", 0, "hosp:XC001", "F", NULL);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "demographics.birth_date"));
	for (int i = 0; i < 17; i++)
		snprintf(vals[i], sizeof(vals[i]), "V%d", i);
#define V16                                                                    \
	"hosp:XC001", vals[0], "hosp:XC001", vals[1], "hosp:XC001", vals[2],   \
	    "hosp:XC001", vals[3], "hosp:XC001", vals[4], "hosp:XC001",        \
	    vals[5], "hosp:XC001", vals[6], "hosp:XC001", vals[7],             \
	    "hosp:XC001", vals[8], "hosp:XC001", vals[9], "hosp:XC001",        \
	    vals[10], "hosp:XC001", vals[11], "hosp:XC001", vals[12],          \
	    "hosp:XC001", vals[13], "hosp:XC001", vals[14], "hosp:XC001",      \
	    vals[15]
	r = enroll(&xc1, "", NULL, 0, V16, "hosp:XC001", vals[16], NULL);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "over the limit of 16"));
	r = enroll(&xc1, "", NULL, 0, V16, NULL);
	assert_int_equal(r->code, CODE(OK));
	assert_int_equal(patient_of(r)->n_identifiers, 16);
#undef V16
}

static void
hospital_writes_only_its_own_domain(void **state)
{
	Onecard__V1__Reply *r;

	r = enroll(&xc1, "", NULL, 0, "hosp:XC002", "X", NULL);
	assert_int_equal(r->code, CODE(PERMISSION_DENIED));
	assert_non_null(strstr(r->message, "identifiers[0]"));
	assert_int_equal(lookup("hosp:XC002", "X")->code, CODE(NOT_FOUND));
	patient_of(enroll(
	    &xc1, "", NULL, 0, "hosp:XC001", "H1", "cn-ssc", "SSC1", NULL));
	r = link_id(&xc1, "hosp:XC001", "H1", "hosp:XC002", "H2");
	assert_int_equal(r->code, CODE(PERMISSION_DENIED));
	patient_of(link_id(&xc2, "hosp:XC001", "H1", "hosp:XC002", "H2"));
	/* removal: only its own hosp domain */
	assert_int_equal(
	    unlink_id(&xc1, "cn-ssc", "SSC1")->code, CODE(PERMISSION_DENIED));
	assert_int_equal(
	    unlink_id(&xc1, "hosp:XC002", "H2")->code, CODE(PERMISSION_DENIED));
	patient_of(unlink_id(&xc2, "hosp:XC002", "H2"));
	patient_of(unlink_id(&admin, "cn-ssc", "SSC1"));
	/* a hospital may look up anything */
	assert_int_equal(lookup("hosp:XC001", "H1")->code, CODE(OK));
}

static void
link_cases(void **state)
{
	const Onecard__V1__Patient *a, *p;
	Onecard__V1__Reply *r;

	a = patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "L1", NULL));
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "L2", NULL));
	r = link_id(&xc1, "hosp:XC001", "nobody", "cn-ssc", "SS99");
	assert_int_equal(r->code, CODE(NOT_FOUND));
	r = link_id(&xc1, "hosp:XC001", "L1", "hosp:XC001", "L2");
	assert_int_equal(r->code, CODE(CONFLICT));
	p = patient_of(link_id(&xc1, "hosp:XC001", "L1", "cn-ssc", "SS99"));
	assert_int_equal(p->version, 2);
	assert_true(holds(p, "cn-ssc", "SS99"));
	/* already there: OK, no change */
	p = patient_of(link_id(&xc1, "pid", a->patient_id, "cn-ssc", "ss99"));
	assert_int_equal(p->version, 2);
	/* a cn-id that disagrees with the stored birth date */
	update(&xc1, "hosp:XC001", "L1", NULL, NULL, "1970-01-01", 0);
	r = link_id(&xc1, "hosp:XC001", "L1", "cn-id", CNID_F49);
	assert_int_equal(r->code, CODE(CONFLICT));
	p = patient_of(link_id(&xc1, "hosp:XC001", "L2", "cn-id", CNID_F49));
	r = link_id(&xc1, "hosp:XC001", "L2", "cn-id", CNID_F85);
	assert_int_equal(r->code, CODE(CONFLICT));
	r = link_id(&admin, "hosp:XC001", "L2", "pid", a->patient_id);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
}

static void
unlink_cases(void **state)
{
	Onecard__V1__Reply *r;
	const Onecard__V1__Patient *p;

	patient_of(enroll(
	    &xc1, "", NULL, 0, "hosp:XC001", "U1", "hosp:XC001", "U2", NULL));
	r = unlink_id(&xc1, "hosp:XC001", "nope");
	assert_int_equal(r->code, CODE(NOT_FOUND));
	p = patient_of(unlink_id(&xc1, "hosp:XC001", "U1"));
	assert_int_equal(p->n_identifiers, 1);
	assert_int_equal(p->version, 2);
	r = unlink_id(&xc1, "hosp:XC001", "U2");
	assert_int_equal(r->code, CODE(CONFLICT));
	assert_non_null(strstr(r->message, "at least one identifier"));
	r = unlink_id(&admin, "pid", p->patient_id);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_int_equal(lookup("hosp:XC001", "U1")->code, CODE(NOT_FOUND));
}

static void
update_sets_given_fields_and_checks_the_version(void **state)
{
	const Onecard__V1__Patient *p;
	Onecard__V1__Reply *r;

	p = patient_of(
	    enroll(&xc1, "Old", "1980-05-05", 1, "hosp:XC001", "P1", NULL));
	p = patient_of(update(&xc1, "hosp:XC001", "P1", NULL, "123", NULL, 1));
	assert_int_equal(p->version, 2);
	assert_string_equal(p->demographics->name, "Old");
	assert_string_equal(p->demographics->phone, "123");
	r = update(&xc1, "hosp:XC001", "P1", "New", NULL, NULL, 1);
	assert_int_equal(r->code, CODE(VERSION_MISMATCH));
	p = patient_of(lookup("hosp:XC001", "P1"));
	assert_string_equal(p->demographics->name, "Old");
	p = patient_of(update(&xc1, "hosp:XC001", "P1", "New", NULL, NULL, 0));
	assert_string_equal(p->demographics->name, "New");
	assert_int_equal(p->version, 3);
	/* nothing changes: no bump */
	p = patient_of(update(&xc1, "hosp:XC001", "P1", "New", NULL, NULL, 3));
	assert_int_equal(p->version, 3);
	r = update(&xc1, "hosp:XC001", "nope", "X", NULL, NULL, 0);
	assert_int_equal(r->code, CODE(NOT_FOUND));
	/* a birth date against the cn-id */
	patient_of(enroll(&xc1, "", NULL, 0, "cn-id", CNID_F85, NULL));
	r = update(&xc1, "cn-id", CNID_F85, NULL, NULL, "1985-06-14", 0);
	assert_int_equal(r->code, CODE(CONFLICT));
	r = update(&xc1, "cn-id", CNID_F85, NULL, "phone?", NULL, 0);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "demographics.phone"));
}

static void
merge_then_unmerge_restores_both_records_exactly(void **state)
{
	const Onecard__V1__Patient *s0, *d0, *m, *u, *dm;
	Onecard__V1__Reply *r;
	uint64_t seq0;

	patient_of(enroll(&xc1, "Chen", NULL, 0, "cn-id", CNID_M85,
	    "hosp:XC001", "S1", NULL));
	patient_of(enroll(&xc2, "Chen Er", "1985-06-15", 1, "hosp:XC002", "D1",
	    "cn-ssc", "DSSC1", NULL));
	s0 = patient_of(lookup("hosp:XC001", "S1"));
	d0 = patient_of(lookup("hosp:XC002", "D1"));
	seq0 = event_count();

	m = patient_of(merge(&admin, "cn-id", CNID_M85, "hosp:XC002", "D1"));
	assert_string_equal(m->patient_id, s0->patient_id);
	assert_int_equal(m->n_identifiers, 4);
	assert_true(holds(m, "cn-ssc", "DSSC1"));
	assert_int_equal(m->version, s0->version + 1);
	assert_true(event_count() > seq0);
	/* any identifier or the pid of the duplicate names the survivor */
	assert_string_equal(
	    patient_of(lookup("pid", d0->patient_id))->patient_id,
	    s0->patient_id);
	assert_string_equal(
	    patient_of(lookup("hosp:XC002", "D1"))->patient_id, s0->patient_id);
	/* the duplicate's own history shows the merge */
	r = history(&admin, "pid", d0->patient_id);
	assert_int_equal(r->code, CODE(OK));
	assert_string_equal(r->history->events[0]->op, "merge");

	u = patient_of(unmerge(&admin, d0->patient_id));
	assert_same_record(u, d0);
	assert_true(u->version > d0->version);
	assert_same_record(patient_of(lookup("hosp:XC001", "S1")), s0);
	dm = patient_of(lookup("hosp:XC002", "D1"));
	assert_same_record(dm, d0);
	/* a second unmerge has nothing to undo */
	assert_int_equal(unmerge(&admin, d0->patient_id)->code, CODE(CONFLICT));
	assert_int_equal(unmerge(&admin, "PABCDEFGHIJKLMNOPQRSTUVWXYZ")->code,
	    CODE(NOT_FOUND));
}

static void
merge_fills_the_survivors_blanks_and_unmerge_clears_them(void **state)
{
	const Onecard__V1__Patient *s0, *d0, *m, *u;
	Onecard__V1__Reply *r;
	char err[256];

	/* a sparse record at one hospital, the cn-id holder at another */
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "SP1", NULL));
	patient_of(enroll(&xc2, "Li Si", NULL, 0, "hosp:XC002", "FULL1",
	    "cn-id", CNID_F85, NULL));
	patient_of(
	    update(&xc2, "cn-id", CNID_F85, NULL, "13800138000", NULL, 0));
	s0 = patient_of(lookup("hosp:XC001", "SP1"));
	d0 = patient_of(lookup("cn-id", CNID_F85));
	assert_int_equal(d0->demographics->sex, 2);

	m = patient_of(merge(&admin, "hosp:XC001", "SP1", "cn-id", CNID_F85));
	assert_string_equal(m->patient_id, s0->patient_id);
	assert_string_equal(m->demographics->name, "Li Si");
	assert_int_equal(m->demographics->sex, 2);
	assert_string_equal(m->demographics->birth_date, "1985-06-15");
	assert_string_equal(m->demographics->phone, "13800138000");
	assert_string_equal(m->demographics->address, "");
	assert_string_equal(last.detail, "filled=name,sex,birth_date,phone");
	r = history(&admin, "pid", s0->patient_id);
	assert_string_equal(r->history->events[0]->op, "merge");
	assert_non_null(strstr(r->history->events[0]->detail,
	    " filled=name,sex,birth_date,phone"));

	/* what the merge filled is remembered across a restart */
	registry_close(reg);
	reg = registry_open(path, 1, NULL, err, sizeof(err));
	assert_non_null(reg);
	u = patient_of(unmerge(&admin, d0->patient_id));
	assert_same_record(u, d0);
	assert_string_equal(last.detail, "cleared=name,sex,birth_date,phone");
	assert_same_record(patient_of(lookup("hosp:XC001", "SP1")), s0);
	r = history(&admin, "pid", s0->patient_id);
	assert_string_equal(r->history->events[0]->op, "unmerge");
	assert_non_null(strstr(r->history->events[0]->detail,
	    "cleared=name,sex,birth_date,phone"));
}

static void
merge_keeps_the_survivors_fields_and_a_later_correction(void **state)
{
	const Onecard__V1__Patient *m, *u, *d0;

	patient_of(
	    enroll(&xc1, "Wang Wu", "1970-01-02", 1, "hosp:XC001", "K7", NULL));
	patient_of(
	    enroll(&xc2, "Wang W.", "1970-02-01", 2, "hosp:XC002", "K8", NULL));
	patient_of(
	    update(&xc2, "hosp:XC002", "K8", NULL, "13900000001", NULL, 0));
	d0 = patient_of(lookup("hosp:XC002", "K8"));
	m = patient_of(merge(&admin, "hosp:XC001", "K7", "hosp:XC002", "K8"));
	/* its own fields stand; only the blank phone is filled */
	assert_string_equal(m->demographics->name, "Wang Wu");
	assert_string_equal(m->demographics->birth_date, "1970-01-02");
	assert_int_equal(m->demographics->sex, 1);
	assert_string_equal(m->demographics->phone, "13900000001");
	assert_string_equal(last.detail, "filled=phone");
	/* a phone corrected after the merge survives the unmerge */
	patient_of(
	    update(&admin, "hosp:XC001", "K7", NULL, "13900000002", NULL, 0));
	u = patient_of(unmerge(&admin, d0->patient_id));
	assert_same_record(u, d0);
	assert_string_equal(last.detail, "");
	assert_string_equal(
	    patient_of(lookup("hosp:XC001", "K7"))->demographics->phone,
	    "13900000002");
}

static void
merge_refuses_a_survivor_that_disagrees_with_the_cn_id(void **state)
{
	Onecard__V1__Reply *r;
	uint64_t before;

	patient_of(
	    enroll(&xc1, "", "1990-01-01", 0, "hosp:XC001", "BD1", NULL));
	patient_of(enroll(&xc2, "", NULL, 0, "cn-id", CNID_F85, NULL));
	before = event_count();
	r = merge(&admin, "hosp:XC001", "BD1", "cn-id", CNID_F85);
	assert_int_equal(r->code, CODE(CONFLICT));
	assert_non_null(strstr(r->message, "survivor: its birth date"));
	assert_int_equal(event_count(), before);
	/* the other way round, the cn-id holder survives */
	patient_of(merge(&admin, "cn-id", CNID_F85, "hosp:XC001", "BD1"));
}

/* Read every event after *cursor as who, on a read handle; the replies
 * pushed go to ev[] (at most cap), their count is returned. */
static size_t
events_as(struct registry *rd, const struct actor *who, uint64_t *cursor,
    Onecard__V1__Reply **ev, size_t cap)
{
	struct evbuffer *out = evbuffer_new();
	unsigned pushed;
	size_t n = 0, len;
	int rc;

	do {
		rc = registry_events_push(rd, who, cursor, 2, out, &pushed);
		assert_true(rc >= 0);
	} while (rc == 2);
	while (evbuffer_get_length(out) > 0) {
		uint8_t *buf;

		assert_int_equal(
		    wire_peek_evbuffer(out, 1 << 24, &len), WIRE_FRAME);
		buf = evbuffer_pullup(out, (ssize_t)(len + WIRE_HEADER_LEN));
		assert_true(n < cap);
		ev[n] = wire_reply_unpack(
		    buf + WIRE_HEADER_LEN, len, 1 << 26, NULL);
		assert_non_null(ev[n]);
		assert_int_equal(ev[n]->id, 0);
		assert_int_equal(ev[n]->code, CODE(OK));
		assert_non_null(ev[n]->event);
		evbuffer_drain(out, len + WIRE_HEADER_LEN);
		n++;
	}
	evbuffer_free(out);
	return n;
}

static void
events_free(Onecard__V1__Reply **ev, size_t n)
{
	for (size_t i = 0; i < n; i++)
		wire_reply_free(ev[i]);
}

static void
events_reach_the_hospitals_that_hold_or_held_a_card(void **state)
{
	static const struct actor xc3 = {
	    "XC003", ONECARD__V1__ROLE__ROLE_HOSPITAL};
	Onecard__V1__Reply *ev[16];
	const Onecard__V1__Patient *a, *b;
	struct registry *rd;
	uint64_t cur, top, floor;
	char err[256];
	size_t n;

	a = patient_of(enroll(&xc1, "A", NULL, 0, "hosp:XC001", "EA", NULL));
	b = patient_of(enroll(&xc2, "B", NULL, 0, "hosp:XC002", "EB", NULL));
	patient_of(merge(&admin, "hosp:XC001", "EA", "hosp:XC002", "EB"));
	patient_of(link_id(&xc1, "hosp:XC001", "EA", "cn-ssc", "ESSC1"));
	patient_of(unlink_id(&admin, "hosp:XC002", "EB"));
	rd = registry_open(path, 0, NULL, err, sizeof(err));
	assert_non_null(rd);
	assert_int_equal(registry_events_range(rd, NULL, 0, &top, &floor), 0);
	assert_int_equal(top, event_count());
	assert_int_equal(floor, 0);

	/* an admin: every event but the merged-away half of the merge */
	cur = 0;
	n = events_as(rd, &admin, &cur, ev, 16);
	assert_int_equal(cur, top);
	assert_int_equal(n, 5);
	assert_string_equal(ev[0]->event->op, "enroll");
	assert_string_equal(ev[2]->event->op, "merge");
	assert_string_equal(ev[2]->event->patient_id, a->patient_id);
	assert_string_equal(ev[2]->event->other_patient_id, b->patient_id);
	/* the record as it stands when sent: the link and unlink since */
	assert_int_equal(ev[2]->event->patient->n_identifiers, 2);
	for (size_t i = 1; i < n; i++)
		assert_true(ev[i]->event->seq > ev[i - 1]->event->seq);
	events_free(ev, n);

	/* XC002: its own enrollment, the merge that moved its card, the link
	 * to the record that held it, and the unlink that removed it */
	cur = 0;
	n = events_as(rd, &xc2, &cur, ev, 16);
	assert_int_equal(cur, top);
	assert_int_equal(n, 4);
	assert_string_equal(ev[0]->event->op, "enroll");
	assert_string_equal(ev[1]->event->op, "merge");
	assert_string_equal(ev[2]->event->op, "link");
	assert_string_equal(ev[3]->event->op, "unlink");
	events_free(ev, n);
	/* once it holds no card of the patient, it hears no more of it */
	patient_of(update(&xc1, "hosp:XC001", "EA", "A1", NULL, NULL, 0));
	cur = top;
	assert_int_equal(events_as(rd, &xc2, &cur, ev, 16), 0);
	top = cur;
	/* XC001 all but XC002's enrollment; XC003 none, though it reads on */
	cur = 0;
	n = events_as(rd, &xc1, &cur, ev, 16);
	assert_int_equal(n, 5);
	events_free(ev, n);
	cur = 0;
	assert_int_equal(events_as(rd, &xc3, &cur, ev, 16), 0);
	assert_int_equal(cur, top);
	/* from the last on: nothing, until a new event */
	patient_of(update(&xc1, "hosp:XC001", "EA", "A2", NULL, NULL, 0));
	n = events_as(rd, &xc1, &cur, ev, 16);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0]->event->op, "update");
	assert_string_equal(ev[0]->event->patient->demographics->name, "A2");
	events_free(ev, n);
	registry_close(rd);
}

static void
merge_follows_chains_and_unmerges_in_any_order(void **state)
{
	const Onecard__V1__Patient *a, *b, *c;

	a = patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "CA", NULL));
	b = patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "CB", NULL));
	c = patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "CC", NULL));
	patient_of(merge(&admin, "hosp:XC001", "CB", "hosp:XC001", "CA"));
	patient_of(merge(&admin, "hosp:XC001", "CC", "hosp:XC001", "CB"));
	assert_string_equal(
	    patient_of(lookup("pid", a->patient_id))->patient_id,
	    c->patient_id);
	assert_int_equal(
	    patient_of(lookup("pid", c->patient_id))->n_identifiers, 3);
	/* undo the first merge while the second stands */
	patient_of(unmerge(&admin, a->patient_id));
	assert_string_equal(
	    patient_of(lookup("hosp:XC001", "CA"))->patient_id, a->patient_id);
	patient_of(unmerge(&admin, b->patient_id));
	assert_string_equal(
	    patient_of(lookup("hosp:XC001", "CB"))->patient_id, b->patient_id);
	assert_int_equal(
	    patient_of(lookup("pid", c->patient_id))->n_identifiers, 1);
}

static void
unmerge_after_unlink_leaves_a_record_named_by_pid_only(void **state)
{
	const Onecard__V1__Patient *a, *p;

	a = patient_of(enroll(&xc1, "Gone", NULL, 0, "hosp:XC001", "Z1", NULL));
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "Z2", NULL));
	patient_of(merge(&admin, "hosp:XC001", "Z2", "hosp:XC001", "Z1"));
	patient_of(unlink_id(&xc1, "hosp:XC001", "Z1"));
	p = patient_of(unmerge(&admin, a->patient_id));
	assert_int_equal(p->n_identifiers, 0);
	/* what was unlinked since the merge stays gone */
	assert_int_equal(lookup("hosp:XC001", "Z1")->code, CODE(NOT_FOUND));
	p = patient_of(lookup("pid", a->patient_id));
	assert_string_equal(p->demographics->name, "Gone");
	assert_int_equal(p->n_identifiers, 0);
	assert_string_equal(p->merged_into, "");
}

static void
merge_refuses_two_cn_ids_and_the_same_patient(void **state)
{
	Onecard__V1__Reply *r;

	patient_of(enroll(&xc1, "", NULL, 0, "cn-id", CNID_M85, NULL));
	patient_of(enroll(
	    &xc1, "", NULL, 0, "cn-id", CNID_F85, "hosp:XC001", "F", NULL));
	r = merge(&admin, "cn-id", CNID_M85, "cn-id", CNID_F85);
	assert_int_equal(r->code, CODE(CONFLICT));
	assert_non_null(strstr(r->message, "cn-id"));
	assert_int_equal(patient_of(lookup("cn-id", CNID_F85))->version, 1);
	r = merge(&admin, "cn-id", CNID_F85, "hosp:XC001", "F");
	assert_int_equal(r->code, CODE(CONFLICT));
	r = merge(&admin, "cn-id", CNID_F85, "hosp:XC001", "nobody");
	assert_int_equal(r->code, CODE(NOT_FOUND));
}

static void
admin_only_ops_are_denied_to_hospitals(void **state)
{
	const Onecard__V1__Patient *a;

	a = patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "Q1", NULL));
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "Q2", NULL));
	assert_int_equal(
	    merge(&xc1, "hosp:XC001", "Q1", "hosp:XC001", "Q2")->code,
	    CODE(PERMISSION_DENIED));
	assert_int_equal(
	    unmerge(&xc1, a->patient_id)->code, CODE(PERMISSION_DENIED));
	assert_int_equal(
	    hospital_add(&xc1, "XC009", "x", ONECARD__V1__ROLE__ROLE_HOSPITAL)
		->code,
	    CODE(PERMISSION_DENIED));
	assert_int_equal(
	    hospital_revoke(&xc1, "XC001")->code, CODE(PERMISSION_DENIED));
	assert_int_equal(hospital_list(&xc1)->code, CODE(PERMISSION_DENIED));
	assert_int_equal(
	    history(&xc1, "hosp:XC001", "Q1")->code, CODE(PERMISSION_DENIED));
	assert_int_equal(stats()->code, CODE(OK));
}

/* An admin's visit card of a hospital the registry does not know is
 * refused, naming the field and the code; once the hospital is added, the
 * same enrollment goes in. */
static void
admin_cannot_add_cards_of_an_unknown_hospital(void **state)
{
	Onecard__V1__Reply *r;

	r = enroll(&admin, "", NULL, 0, "hosp:NOSUCH", "1", NULL);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "identifiers[0]"));
	assert_non_null(strstr(r->message, "NOSUCH"));
	assert_int_equal(lookup("hosp:NOSUCH", "1")->code, CODE(NOT_FOUND));
	assert_int_equal(hospital_add(&admin, "NOSUCH", "Now known",
			     ONECARD__V1__ROLE__ROLE_HOSPITAL)
			     ->code,
	    CODE(OK));
	patient_of(enroll(&admin, "", NULL, 0, "hosp:NOSUCH", "1", NULL));
}

static void
hospitals_are_added_revoked_and_reactivated(void **state)
{
	Onecard__V1__Reply *r;
	int role = -1;

	assert_int_equal(registry_hospital_role(reg, "XC001", &role), 1);
	assert_int_equal(hospital_add(&admin, "XC001", "First Hospital",
			     ONECARD__V1__ROLE__ROLE_HOSPITAL)
			     ->code,
	    CODE(OK));
	assert_string_equal(last.target, "XC001");
	assert_int_equal(registry_hospital_role(reg, "XC001", &role), 0);
	assert_int_equal(role, ONECARD__V1__ROLE__ROLE_HOSPITAL);
	assert_int_equal(hospital_add(&admin, "ops", "Ops desk",
			     ONECARD__V1__ROLE__ROLE_ADMIN)
			     ->code,
	    CODE(OK));
	assert_int_equal(registry_hospital_role(reg, "ops", &role), 0);
	assert_int_equal(role, ONECARD__V1__ROLE__ROLE_ADMIN);
	/* re-adding an active one unchanged writes no event */
	uint64_t seq = event_count();
	hospital_add(&admin, "XC001", "First Hospital",
	    ONECARD__V1__ROLE__ROLE_HOSPITAL);
	assert_int_equal(event_count(), seq);

	assert_int_equal(hospital_revoke(&admin, "XC001")->code, CODE(OK));
	assert_int_equal(registry_hospital_role(reg, "XC001", &role), 1);
	assert_int_equal(
	    hospital_revoke(&admin, "NOPE")->code, CODE(NOT_FOUND));
	r = hospital_list(&admin);
	assert_int_equal(r->code, CODE(OK));
	assert_int_equal(r->hospitals->n_hospitals, 2);
	assert_string_equal(r->hospitals->hospitals[0]->code, "XC001");
	assert_false(r->hospitals->hospitals[0]->active);
	assert_true(r->hospitals->hospitals[1]->active);
	assert_int_equal(hospital_add(&admin, "XC001", "First Hospital",
			     ONECARD__V1__ROLE__ROLE_HOSPITAL)
			     ->code,
	    CODE(OK));
	assert_int_equal(registry_hospital_role(reg, "XC001", &role), 0);
	assert_int_equal(hospital_add(&admin, "bad code", "x", 0)->code,
	    CODE(INVALID_ARGUMENT));
}

static void
batch_with_a_failing_write_commits_its_neighbours(void **state)
{
	struct registry *rd;
	char err[256];
	Onecard__V1__Reply *r;

	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "E1", NULL));
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "E2", NULL));
	assert_int_equal(registry_batch_begin(reg), 0);
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "B1", NULL));
	r = enroll(&xc1, "", NULL, 0, "cn-ssc", "BAD1", "hosp:XC001", "E1",
	    "hosp:XC001", "E2", NULL);
	assert_int_equal(r->code, CODE(CONFLICT));
	r = link_id(&xc1, "hosp:XC001", "E1", "hosp:XC001", "E2");
	assert_int_equal(r->code, CODE(CONFLICT));
	patient_of(link_id(&xc1, "hosp:XC001", "B1", "cn-ssc", "B1SSC"));
	assert_int_equal(registry_batch_commit(reg), 0);

	rd = registry_open(path, 0, NULL, err, sizeof(err));
	assert_non_null(rd);
	assert_int_equal(
	    patient_of(lookup_on(rd, "cn-ssc", "B1SSC"))->n_identifiers, 2);
	assert_int_equal(
	    lookup_on(rd, "cn-ssc", "BAD1")->code, CODE(NOT_FOUND));
	registry_close(rd);

	/* a batch rolled back leaves nothing behind */
	assert_int_equal(registry_batch_begin(reg), 0);
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "GONE", NULL));
	registry_batch_rollback(reg);
	assert_int_equal(lookup("hosp:XC001", "GONE")->code, CODE(NOT_FOUND));
}

/* Hint the batch (registry_batch_hint) with one enroll naming the
 * identifiers given as domain, value, ..., NULL. */
static void
hint(const char *dom, ...)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Identifier ids[16], *idp[16];
	const Onecard__V1__Request *reqs[1] = {&req};
	va_list ap;
	size_t n;

	va_start(ap, dom);
	n = idents_from(&ap, dom, ids, idp, 16);
	va_end(ap);
	e.identifiers = idp;
	e.n_identifiers = n;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &e;
	registry_batch_hint(reg, reqs, 1);
}

#define QV "Q\"1\\{,}" /* a value an array literal must quote */

/*
 * A batch told ahead what its writes will name (PostgreSQL reads who
 * holds them in one statement, and keeps what the batch reads and writes
 * of identifiers to its end) answers as if each write had read the store
 * itself: through links, a write refused and undone in the middle, an
 * unlink, values that need quoting, and one that is not valid at all.
 */
static void
batch_told_ahead_answers_as_each_write_alone(void **state)
{
	const Onecard__V1__Patient *a, *b, *c;
	struct registry *rd;
	char err[256];

	a = patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "H1", NULL));
	assert_int_equal(registry_batch_begin(reg), 0);
	hint("hosp:XC001", "H1", "hosp:XC001", "H2", "hosp:XC001", QV,
	    "hosp:XC001", "H4", "hosp:XC001", "H5", "hosp:XC001", "not valid",
	    NULL);
	/* H1 is held: H5 joins its patient */
	c = patient_of(enroll(
	    &xc1, "", NULL, 0, "hosp:XC001", "H1", "hosp:XC001", "H5", NULL));
	assert_string_equal(c->patient_id, a->patient_id);
	assert_int_equal(c->n_identifiers, 2);
	b = patient_of(enroll(
	    &xc1, "", NULL, 0, "hosp:XC001", "H2", "hosp:XC001", QV, NULL));
	assert_string_not_equal(b->patient_id, a->patient_id);
	assert_int_equal(
	    patient_of(link_id(&xc1, "hosp:XC001", QV, "hosp:XC001", "H4"))
		->n_identifiers,
	    3);
	assert_int_equal(unlink_id(&xc1, "hosp:XC001", "H5")->code, CODE(OK));
	c = patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "H5", NULL));
	assert_string_not_equal(c->patient_id, a->patient_id);
	/* H5 left H1's patient: its record says so */
	assert_int_equal(
	    patient_of(link_id(&xc1, "hosp:XC001", "H1", "hosp:XC001", "H6"))
		->n_identifiers,
	    2);
	/* refused and undone: what the batch knew is read again */
	assert_int_equal(enroll(&xc1, "", NULL, 0, "hosp:XC001", "H1",
			     "hosp:XC001", "H2", NULL)
			     ->code,
	    CODE(CONFLICT));
	assert_int_equal(
	    enroll(&xc1, "", NULL, 0, "hosp:XC001", "not valid", NULL)->code,
	    CODE(INVALID_ARGUMENT));
	assert_int_equal(
	    patient_of(lookup("hosp:XC001", "H1"))->n_identifiers, 2);
	assert_int_equal(registry_batch_commit(reg), 0);

	rd = registry_open(path, 0, NULL, err, sizeof(err));
	assert_non_null(rd);
	assert_string_equal(
	    patient_of(lookup_on(rd, "hosp:XC001", "H1"))->patient_id,
	    a->patient_id);
	assert_int_equal(
	    patient_of(lookup_on(rd, "hosp:XC001", "H1"))->n_identifiers, 2);
	assert_string_equal(
	    patient_of(lookup_on(rd, "hosp:XC001", QV))->patient_id,
	    b->patient_id);
	assert_string_equal(
	    patient_of(lookup_on(rd, "hosp:XC001", "H4"))->patient_id,
	    b->patient_id);
	assert_string_equal(
	    patient_of(lookup_on(rd, "hosp:XC001", "H5"))->patient_id,
	    c->patient_id);
	registry_close(rd);
}

/* What the change feed delivered, for the test below. */
static struct {
	int calls;
	size_t n;
	struct registry_change c[16];
} fed;

static void
feed_collect(void *arg, const struct registry_change *c, size_t n)
{
	(void)arg;
	fed.calls++;
	for (size_t i = 0; c != NULL && i < n && fed.n < 16; i++)
		fed.c[fed.n++] = c[i];
}

/*
 * The change feed hands on every committed change once, in order, with its
 * event's sequence number, after the commit: not the writes a batch
 * refused, nothing of a batch rolled back.
 */
static void
change_feed_delivers_each_committed_change_once(void **state)
{
	static int subscribed;
	const Onecard__V1__Patient *p;

	if (!subscribed)
		assert_int_equal(
		    registry_feed_subscribe(feed_collect, NULL), 0);
	subscribed = 1;
	memset(&fed, 0, sizeof(fed));
	assert_int_equal(registry_batch_begin(reg), 0);
	p = patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "C1", NULL));
	assert_int_equal(
	    enroll(&xc1, "", NULL, 0, "hosp:XC002", "NOPE", NULL)->code,
	    CODE(PERMISSION_DENIED));
	patient_of(link_id(&xc1, "hosp:XC001", "C1", "hosp:XC001", "C2"));
	assert_int_equal(fed.calls, 0); /* not before the commit */
	assert_int_equal(registry_batch_commit(reg), 0);
	assert_int_equal(fed.calls, 1);
	assert_int_equal(fed.n, 2);
	assert_string_equal(fed.c[0].op, "enroll");
	assert_string_equal(fed.c[0].patient_id, p->patient_id);
	assert_string_equal(fed.c[1].op, "link");
	assert_string_equal(fed.c[1].patient_id, p->patient_id);
	assert_true(fed.c[1].seq == fed.c[0].seq + 1);

	/* A batch rolled back tells nothing. */
	assert_int_equal(registry_batch_begin(reg), 0);
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "C3", NULL));
	registry_batch_rollback(reg);
	assert_int_equal(fed.calls, 1);

	/* A write outside a batch, and a hospital's change names it. */
	assert_int_equal(hospital_add(&admin, "XC007", "Seventh",
			     ONECARD__V1__ROLE__ROLE_HOSPITAL)
			     ->code,
	    CODE(OK));
	assert_int_equal(hospital_revoke(&admin, "XC007")->code, CODE(OK));
	assert_int_equal(fed.calls, 3);
	assert_int_equal(fed.n, 4);
	assert_string_equal(fed.c[3].op, "hospital_revoke");
	assert_string_equal(fed.c[3].hospital, "XC007");
	assert_string_equal(fed.c[3].patient_id, "");
	assert_true(fed.c[3].seq > fed.c[1].seq);
}

/* Ids are "P" + 26 base32 digits: 48 bits of milliseconds (digits 1-10)
 * then 80 random bits (the last 16 digits). */
#define PID_TAIL 11

static void
patient_ids_are_unique_time_ordered_and_unguessable(void **state)
{
	char ids[64][32], val[16], later[32];

	for (int i = 0; i < 64; i++) {
		snprintf(val, sizeof(val), "N%d", i);
		snprintf(ids[i], sizeof(ids[i]), "%s",
		    patient_of(
			enroll(&xc1, "", NULL, 0, "hosp:XC001", val, NULL))
			->patient_id);
		assert_int_equal(strlen(ids[i]), 27);
		assert_int_equal(
		    strspn(ids[i] + 1, "234567ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 26);
	}
	for (int i = 0; i < 64; i++)
		for (int j = i + 1; j < 64; j++)
			assert_string_not_equal(ids[i], ids[j]);
	/* The time prefix never goes backwards ... */
	for (int i = 1; i < 64; i++)
		assert_true(strncmp(ids[i - 1], ids[i], PID_TAIL - 1) <= 0);
	/* ... and an id made a few milliseconds later sorts after all. */
	usleep(3000);
	snprintf(later, sizeof(later), "%s",
	    patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "late", NULL))
		->patient_id);
	for (int i = 0; i < 64; i++)
		assert_true(strcmp(ids[i], later) < 0);
	/* The 80-bit tails of consecutive ids share no long prefix: they are
	 * random, so an id cannot be guessed from its neighbours. */
	int close = 0;
	for (int i = 1; i < 64; i++)
		if (strncmp(ids[i - 1] + PID_TAIL, ids[i] + PID_TAIL, 4) == 0)
			close++;
	assert_true(close < 2);
}

/* Enroll one patient with a long name and address in the open batch; the
 * reply is checked and dropped. */
static void
enroll_fat(int i)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT, *idp = &id;
	struct evbuffer *out = evbuffer_new();
	char name[100], addr[240], val[32];

	snprintf(name, sizeof(name), "Patient %d %.80s", i,
	    "with a name long enough to fill pages quickly and then some");
	snprintf(addr, sizeof(addr), "%d %.200s", i,
	    "Some Road, Some District, Some City, Some Province, a long "
	    "address that takes up room in the patients table and its pages, "
	    "so that the write-ahead log grows by many frames per batch");
	snprintf(val, sizeof(val), "F%d", i);
	d.name = name;
	d.address = addr;
	id.domain = "hosp:XC001";
	id.value = val;
	e.demographics = &d;
	e.n_identifiers = 1;
	e.identifiers = &idp;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &e;
	req.id = next_id++;
	registry_write(reg, &xc1, &req, out, &last);
	assert_int_equal(last.code, CODE(OK));
	evbuffer_free(out);
}

static void
wal_is_copied_back_while_the_writer_keeps_writing(void **state)
{
	char wal[340];
	struct stat st;
	off_t start;
	int i = 0, grown = 0;

	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(stat(path, &st), 0);
	start = st.st_size;
	/* Batches of 20 until the database file itself has grown by 1 MiB,
	 * which only a checkpoint does while the registry stays open. */
	for (int b = 0; b < 3000 && !grown; b++) {
		assert_int_equal(registry_batch_begin(reg), 0);
		for (int k = 0; k < 20; k++)
			enroll_fat(i++);
		assert_int_equal(registry_batch_commit(reg), 0);
		if (b % 50 == 0) {
			for (int w = 0; w < 20 && !grown; w++) {
				assert_int_equal(stat(path, &st), 0);
				grown = st.st_size > start + (1 << 20);
				if (!grown && b > 0)
					usleep(10000);
			}
		}
	}
	assert_true(grown);
	/* ... and the WAL stays within its bound meanwhile. */
	assert_int_equal(stat(wal, &st), 0);
	assert_true(st.st_size < 160 * 1024 * 1024);
	assert_int_equal(
	    patient_of(lookup("hosp:XC001", "F0"))->demographics->sex, 0);
}

static void
events_are_appended_with_increasing_seq(void **state)
{
	Onecard__V1__Reply *r;

	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "V1", NULL));
	patient_of(link_id(&xc1, "hosp:XC001", "V1", "cn-id", CNID_F49));
	patient_of(update(&xc1, "hosp:XC001", "V1", "Name", NULL, NULL, 0));
	patient_of(unlink_id(&xc1, "hosp:XC001", "V1"));
	r = history(&admin, "cn-id", CNID_F49);
	assert_int_equal(r->code, CODE(OK));
	assert_int_equal(r->history->n_events, 4);
	assert_string_equal(r->history->events[0]->op, "unlink");
	assert_string_equal(r->history->events[3]->op, "enroll");
	for (size_t i = 1; i < r->history->n_events; i++)
		assert_true(r->history->events[i - 1]->seq >
		    r->history->events[i]->seq);
	assert_string_equal(r->history->events[0]->actor, "XC001");
	assert_true(r->history->events[0]->time_ms > 0);
	/* the cn-id is masked in the event detail */
	assert_null(strstr(r->history->events[2]->detail, CNID_F49));
	assert_non_null(
	    strstr(r->history->events[2]->detail, "110105********002X"));
	assert_int_equal(event_count(), r->history->events[0]->seq);
}

static void
writes_survive_close_and_reopen(void **state)
{
	char err[256];
	const Onecard__V1__Patient *p;

	p = patient_of(
	    enroll(&xc1, "Durable", "1960-03-03", 2, "hosp:XC001", "R1", NULL));
	char pid[48], wal[340];
	snprintf(pid, sizeof(pid), "%s", p->patient_id);
	/* the writer journals in WAL mode, so readers never block it */
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(access(wal, F_OK), 0);
	registry_close(reg);
	reg = registry_open(path, 1, NULL, err, sizeof(err));
	assert_non_null(reg);
	p = patient_of(lookup("hosp:XC001", "R1"));
	assert_string_equal(p->patient_id, pid);
	assert_string_equal(p->demographics->name, "Durable");
	assert_int_equal(event_count(), 1);
}

static void
read_handle_sees_the_writers_commits(void **state)
{
	struct registry *rd;
	char err[256];

	rd = registry_open(path, 0, NULL, err, sizeof(err));
	assert_non_null(rd);
	assert_int_equal(registry_ping(rd), 0);
	assert_int_equal(
	    lookup_on(rd, "hosp:XC001", "W1")->code, CODE(NOT_FOUND));
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "W1", NULL));
	assert_int_equal(lookup_on(rd, "hosp:XC001", "W1")->code, CODE(OK));
	/* a write sent to a read handle is refused, not applied */
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Unlink u = ONECARD__V1__UNLINK__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	id.domain = "hosp:XC001";
	id.value = "W1";
	u.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_UNLINK;
	req.unlink = &u;
	assert_int_equal(call_on(rd, &admin, &req)->code, CODE(INTERNAL));
	registry_close(rd);
}

static void
lookup_validates_and_reports_not_found(void **state)
{
	Onecard__V1__Reply *r;

	r = lookup("cn-id", "110105194912310021");
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_string_equal(
	    r->message, "identifier.value: cn-id check character should be X");
	r = lookup("cn-id", CNID_F49);
	assert_int_equal(r->code, CODE(NOT_FOUND));
	assert_string_equal(last.target, "cn-id=110105********002X");
	assert_int_equal(lookup("fax", "1")->code, CODE(INVALID_ARGUMENT));
	assert_int_equal(lookup("pid", "PABCDEFGHIJKLMNOPQRSTUVWXYZ")->code,
	    CODE(NOT_FOUND));
}

static void
search_matches_exact_fields_up_to_the_limit(void **state)
{
	Onecard__V1__Reply *r;

	for (int i = 0; i < 3; i++) {
		char v[8];
		snprintf(v, sizeof(v), "S%d", i);
		patient_of(enroll(&xc1, "Sun", "1999-09-09", i == 0 ? 1 : 2,
		    "hosp:XC001", v, NULL));
	}
	patient_of(
	    enroll(&xc1, "Sun", "1999-09-10", 1, "hosp:XC001", "S9", NULL));
	r = search("Sun", "1999-09-09", 0, 0);
	assert_int_equal(r->search->n_patients, 3);
	r = search("Sun", NULL, 0, 0);
	assert_int_equal(r->search->n_patients, 4);
	r = search("Sun", NULL, ONECARD__V1__SEX__SEX_MALE, 0);
	assert_int_equal(r->search->n_patients, 2);
	r = search(NULL, "1999-09-09", ONECARD__V1__SEX__SEX_FEMALE, 0);
	assert_int_equal(r->search->n_patients, 2);
	r = search("Sun", NULL, 0, 2);
	assert_int_equal(r->search->n_patients, 2);
	assert_int_equal(
	    search(NULL, NULL, 0, 0)->code, CODE(INVALID_ARGUMENT));
	assert_int_equal(
	    search("Sun", "1999-02-30", 0, 0)->code, CODE(INVALID_ARGUMENT));
}

/* A ranked reply's patients and matches agree, best first, each graded. */
static void
assert_ranked(const Onecard__V1__Reply *r)
{
	const Onecard__V1__SearchResult *sr = r->search;

	assert_int_equal(r->code, CODE(OK));
	assert_int_equal(sr->n_patients, sr->n_matches);
	for (size_t i = 0; i < sr->n_matches; i++) {
		const Onecard__V1__Match *m = sr->matches[i];

		assert_string_equal(
		    m->patient->patient_id, sr->patients[i]->patient_id);
		assert_true(m->score >= 0.5 && m->score <= 1.0);
		assert_true(m->grade >= 1 && m->grade <= 3);
		assert_true(i == 0 || m->score <= sr->matches[i - 1]->score);
		assert_string_equal(sr->patients[i]->merged_into, "");
	}
}

/* The patient id of a ranked reply's first match, "" when none. */
static const char *
top1(const Onecard__V1__Reply *r)
{
	assert_ranked(r);
	return r->search->n_matches ? r->search->matches[0]->patient->patient_id
				    : "";
}

static void
ranked_search_finds_the_patient_despite_desk_errors(void **state)
{
	const char *pid;
	Onecard__V1__Reply *r;

	pid = patient_of(
	    enroll(&xc1, "张三", "1980-05-07", 1, "hosp:XC001", "Z1", NULL))
		  ->patient_id;
	patient_of(
	    update(&xc1, "hosp:XC001", "Z1", NULL, "13812345678", NULL, 0));
	/* Others it must rank below, or leave out. */
	patient_of(
	    enroll(&xc1, "李四", "1980-05-07", 1, "hosp:XC001", "L1", NULL));
	patient_of(
	    enroll(&xc1, "张伟", "1980-05-07", 1, "hosp:XC001", "W1", NULL));
	patient_of(
	    enroll(&xc1, "张三", "1962-11-03", 2, "hosp:XC001", "Z2", NULL));

	r = search_ranked("章三", "1980-05-07", 1, NULL, NULL, NULL, 0);
	assert_string_equal(top1(r), pid);
	assert_int_equal(r->search->matches[0]->grade,
	    ONECARD__V1__MATCH_GRADE__MATCH_PROBABLE);
	assert_string_equal(
	    r->search->matches[0]->reason, "name=pinyin birth=exact sex=exact");
	r = search_ranked("張三", "1980-05-07", 0, NULL, NULL, NULL, 0);
	assert_string_equal(top1(r), pid);
	assert_int_equal(r->search->matches[0]->grade,
	    ONECARD__V1__MATCH_GRADE__MATCH_CERTAIN);
	assert_string_equal(top1(search_ranked("Zhang San", "1980-05-07", 1,
				NULL, NULL, NULL, 0)),
	    pid);
	assert_string_equal(
	    top1(search_ranked("张三丰", "1980-05-07", 1, NULL, NULL, NULL, 0)),
	    pid);
	r = search_ranked("张三", "1980-07-05", 1, NULL, NULL, NULL, 0);
	assert_string_equal(top1(r), pid);
	assert_non_null(strstr(r->search->matches[0]->reason, "birth=swap"));
	r = search_ranked("张三", "1980-05-08", 1, NULL, NULL, NULL, 0);
	assert_string_equal(top1(r), pid);
	assert_non_null(strstr(r->search->matches[0]->reason, "birth=1digit"));
	r = search_ranked("张三", NULL, 0, "138 1234 5679", NULL, NULL, 0);
	assert_string_equal(top1(r), pid);
	assert_non_null(strstr(r->search->matches[0]->reason, "phone=1digit"));
	/* A phone alone finds its holder through the phone key. */
	assert_string_equal(
	    top1(search_ranked(NULL, NULL, 0, "13812345678", NULL, NULL, 0)),
	    pid);
	/* Sex is evidence, not a filter: both 张三 of that date come back
	 * when sex disagrees with one; the one it agrees with first. */
	r = search_ranked("张三", NULL, 2, NULL, NULL, NULL, 0);
	assert_ranked(r);
	assert_int_equal(r->search->n_matches, 2);
	assert_string_not_equal(
	    r->search->matches[0]->patient->patient_id, pid);
	/* Nobody like this: nothing, not an error. */
	r = search_ranked("欧阳修", "1907-08-01", 0, NULL, NULL, NULL, 0);
	assert_ranked(r);
	assert_int_equal(r->search->n_matches, 0);
}

static void
ranked_search_follows_updates_and_skips_merged_patients(void **state)
{
	const char *a, *b;

	a = patient_of(
	    enroll(&xc1, "赵六", "1990-01-01", 1, "hosp:XC001", "A1", NULL))
		->patient_id;
	b = patient_of(
	    enroll(&xc1, "赵六", "1990-01-01", 1, "hosp:XC001", "B1", NULL))
		->patient_id;
	assert_int_equal(search_ranked("赵六", NULL, 0, NULL, NULL, NULL, 0)
			     ->search->n_matches,
	    2);
	patient_of(merge(&admin, "hosp:XC001", "A1", "hosp:XC001", "B1"));
	assert_string_equal(
	    top1(search_ranked("赵六", NULL, 0, NULL, NULL, NULL, 0)), a);
	assert_int_equal(search_ranked("赵六", NULL, 0, NULL, NULL, NULL, 0)
			     ->search->n_matches,
	    1);
	(void)b;
	/* Renamed: found under the new name, no longer under the old. */
	patient_of(update(&xc1, "hosp:XC001", "A1", "钱七", NULL, NULL, 0));
	assert_string_equal(
	    top1(search_ranked("钱七", NULL, 0, NULL, NULL, NULL, 0)), a);
	assert_string_equal(
	    top1(search_ranked("赵六", NULL, 0, NULL, NULL, NULL, 0)), "");
}

static void
ranked_search_puts_the_identifier_holder_first(void **state)
{
	const char *a, *b;
	Onecard__V1__Reply *r;

	a = patient_of(enroll(&xc1, "王芳", "1985-06-15", 2, "cn-id", CNID_F85,
			   "hosp:XC001", "F1", NULL))
		->patient_id;
	b = patient_of(
	    enroll(&xc1, "王芳", "1985-06-15", 2, "hosp:XC001", "F2", NULL))
		->patient_id;
	r = search_ranked("汪芳", "1985-06-15", 0, NULL, "hosp:XC001", "F1", 0);
	assert_ranked(r);
	assert_int_equal(r->search->n_matches, 2);
	assert_string_equal(r->search->matches[0]->patient->patient_id, a);
	assert_int_equal(r->search->matches[0]->grade,
	    ONECARD__V1__MATCH_GRADE__MATCH_CERTAIN);
	assert_true(r->search->matches[0]->score == 1.0);
	assert_string_equal(r->search->matches[1]->patient->patient_id, b);
	/* An identifier alone; a pid too. */
	assert_string_equal(
	    top1(search_ranked(NULL, NULL, 0, NULL, "cn-id", CNID_F85, 0)), a);
	assert_string_equal(
	    top1(search_ranked(NULL, NULL, 0, NULL, "pid", b, 0)), b);
	/* Nobody holds it: the demographics still rank. */
	r = search_ranked(
	    "王芳", "1985-06-15", 0, NULL, "hosp:XC001", "NOPE", 0);
	assert_int_equal(r->search->n_matches, 2);
	/* A cn-id nobody holds rules out the holder of another cn-id. */
	r = search_ranked(
	    "王芳", "1985-06-15", 0, NULL, "cn-id", "320102198506150049", 0);
	assert_int_equal(r->search->n_matches, 1);
	assert_string_equal(top1(r), b);
}

static void
ranked_search_limits_and_refuses_bad_input_naming_the_field(void **state)
{
	char longname[201], v[8];
	Onecard__V1__Reply *r;

	for (int i = 0; i < 12; i++) {
		snprintf(v, sizeof(v), "S%d", i);
		patient_of(enroll(
		    &xc1, "孙悟空", "1999-09-09", 1, "hosp:XC001", v, NULL));
	}
	r = search_ranked("孙悟空", "1999-09-09", 0, NULL, NULL, NULL, 0);
	assert_ranked(r);
	assert_int_equal(r->search->n_matches, 10);
	r = search_ranked("孙悟空", "1999-09-09", 0, NULL, NULL, NULL, 3);
	assert_int_equal(r->search->n_matches, 3);
	r = search_ranked("孙悟空", "1999-09-09", 0, NULL, NULL, NULL, 1000000);
	assert_int_equal(r->search->n_matches, 12);

	r = search_ranked(NULL, NULL, 1, NULL, NULL, NULL, 0);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	memset(longname, 'a', 200);
	longname[200] = '\0';
	r = search_ranked(longname, NULL, 0, NULL, NULL, NULL, 0);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "name"));
	r = search_ranked("张\x01三", NULL, 0, NULL, NULL, NULL, 0);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "name"));
	r = search_ranked("\xed\xa0\x80", NULL, 0, NULL, NULL, NULL, 0);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "name"));
	r = search_ranked("·", NULL, 0, NULL, NULL, NULL, 0);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	r = search_ranked(NULL, "1999-02-30", 0, NULL, NULL, NULL, 0);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "birth_date"));
	r = search_ranked(NULL, NULL, 0, "call me", NULL, NULL, 0);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "phone"));
	r = search_ranked(NULL, NULL, 0, NULL, "fax", "1", 0);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "identifier"));
}

static void
ranked_search_of_a_common_name_is_bounded(void **state)
{
	char v[8], birth[11];
	Onecard__V1__Reply *r;

	/* 230 王伟 over three years: the name key holds more than its cap. */
	for (int i = 0; i < 230; i++) {
		snprintf(v, sizeof(v), "W%d", i);
		snprintf(birth, sizeof(birth), "198%d-0%d-1%d", i % 3,
		    1 + i % 9, i % 10);
		patient_of(
		    enroll(&xc1, "王伟", birth, 1, "hosp:XC001", v, NULL));
	}
	r = search_ranked("王伟", NULL, 0, NULL, NULL, NULL, 1000);
	assert_ranked(r);
	assert_int_equal(r->search->n_matches, 100);
	r = search_ranked("王伟", "1981-02-11", 1, NULL, NULL, NULL, 0);
	assert_ranked(r);
	assert_true(r->search->n_matches >= 1);
	assert_int_equal(r->search->matches[0]->grade,
	    ONECARD__V1__MATCH_GRADE__MATCH_CERTAIN);
}

static void
enroll_lists_near_duplicates_with_score_and_grade(void **state)
{
	const char *a;
	Onecard__V1__Reply *r;
	char v[8];

	a = patient_of(
	    enroll(&xc1, "张三", "1980-05-07", 1, "hosp:XC001", "Z1", NULL))
		->patient_id;
	r = enroll(&xc2, "章三", "1980-05-07", 1, "hosp:XC002", "Z2", NULL);
	assert_true(patient_of(r) != NULL && r->enrolled->created);
	assert_int_equal(r->enrolled->n_possible_duplicates, 1);
	assert_string_equal(r->enrolled->possible_duplicates[0]->patient_id, a);
	assert_int_equal(r->enrolled->possible_duplicates[0]->grade,
	    ONECARD__V1__MATCH_GRADE__MATCH_PROBABLE);
	assert_true(r->enrolled->possible_duplicates[0]->score >= 0.9);
	assert_string_equal(r->enrolled->possible_duplicates[0]->reason,
	    "name=pinyin birth=exact sex=exact");
	/* Somebody else: none. */
	r = enroll(&xc2, "李四", "1971-03-02", 2, "hosp:XC002", "L1", NULL);
	assert_int_equal(r->enrolled->n_possible_duplicates, 0);
	/* Never more than five, best first. */
	for (int i = 0; i < 7; i++) {
		snprintf(v, sizeof(v), "D%d", i);
		r = enroll(
		    &xc1, "张三", "1980-05-07", 1, "hosp:XC001", v, NULL);
		assert_true(r->enrolled->created);
	}
	assert_int_equal(r->enrolled->n_possible_duplicates, 5);
	for (size_t i = 1; i < 5; i++)
		assert_true(r->enrolled->possible_duplicates[i]->score <=
		    r->enrolled->possible_duplicates[i - 1]->score);
	/* Two different cn-ids are two people, however alike. */
	patient_of(
	    enroll(&xc1, "王芳", "1985-06-15", 2, "cn-id", CNID_F85, NULL));
	r = enroll(
	    &xc1, "王芳", "1985-06-15", 2, "cn-id", "320102198506150049", NULL);
	assert_true(r->enrolled->created);
	assert_int_equal(r->enrolled->n_possible_duplicates, 0);
	/* Without a cn-id it is a candidate. */
	r = enroll(&xc1, "王芳", "1985-06-15", 2, "hosp:XC001", "F9", NULL);
	assert_int_equal(r->enrolled->n_possible_duplicates, 2);
}

static void
stats_count_patients_identifiers_and_merges(void **state)
{
	Onecard__V1__Reply *r;

	patient_of(enroll(
	    &xc1, "", NULL, 0, "hosp:XC001", "T1", "cn-ssc", "TSS1", NULL));
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "T2", NULL));
	patient_of(merge(&admin, "hosp:XC001", "T1", "hosp:XC001", "T2"));
	r = stats();
	assert_int_equal(r->stats->patients, 1);
	assert_int_equal(r->stats->identifiers, 3);
	assert_int_equal(r->stats->merges, 1);
	assert_int_equal(r->stats->n_by_domain, 2);
	assert_string_equal(r->stats->by_domain[0]->domain, "cn-ssc");
	assert_int_equal(r->stats->by_domain[1]->count, 2);
}

static void
mask_id_hides_the_middle_of_a_cn_id_only(void **state)
{
	char buf[64];

	registry_mask_id("cn-id", "410102198001011234", buf, sizeof(buf));
	assert_string_equal(buf, "410102********1234");
	registry_mask_id("cn-id", "12345", buf, sizeof(buf));
	assert_string_equal(buf, "*****");
	registry_mask_id("hosp:XC001", "MRN-1", buf, sizeof(buf));
	assert_string_equal(buf, "MRN-1");
}

static void
postgresql_url_without_a_server_fails_naming_the_connection(void **state)
{
	char err[256] = "";

	/* Port 1 on loopback: nothing listens there. */
	assert_null(registry_open("postgresql://onecard@127.0.0.1:1/x"
				  "?connect_timeout=2",
	    1, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
	assert_null(registry_open(
	    "postgres://127.0.0.1:1/x", 0, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
	/* The server backs such a registry up, not onecardctl. */
	assert_int_equal(registry_backup("postgresql://127.0.0.1:1/x",
			     "/nonexistent/b.db", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "pg_dump"));
}

static void
url_safe_hides_a_password_only(void **state)
{
	char buf[256];

	registry_url_safe("postgresql://onecard:s3cret@db1:5432,db2/mpi"
			  "?sslmode=require&password=s3cret&x=1",
	    buf, sizeof(buf));
	assert_string_equal(buf,
	    "postgresql://onecard:***@db1:5432,db2/mpi"
	    "?sslmode=require&password=***&x=1");
	registry_url_safe("postgres://onecard@db/mpi", buf, sizeof(buf));
	assert_string_equal(buf, "postgres://onecard@db/mpi");
	registry_url_safe("/var/lib/onecard/registry.db", buf, sizeof(buf));
	assert_string_equal(buf, "/var/lib/onecard/registry.db");
	registry_url_safe("postgresql://u:pw@h/d", buf, 12);
	assert_string_equal(buf, "postgresql:");
}

static void
sqlite_url_scheme_opens_the_same_file(void **state)
{
	char url[400], err[256];
	struct registry *rd;

	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "Z1", NULL));
	snprintf(url, sizeof(url), "sqlite:%s", path);
	rd = registry_open(url, 0, NULL, err, sizeof(err));
	assert_non_null(rd);
	assert_int_equal(lookup_on(rd, "hosp:XC001", "Z1")->code, CODE(OK));
	registry_close(rd);
}

static Onecard__V1__Reply *
export_page(const struct actor *who, const char *after, unsigned limit)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Export x = ONECARD__V1__EXPORT__INIT;

	x.after_patient_id = (char *)after;
	x.limit = limit;
	req.op_case = ONECARD__V1__REQUEST__OP_EXPORT;
	req.export = &x;
	return call(who, &req);
}

static void
export_pages_live_patients_in_id_order(void **state)
{
	Onecard__V1__Reply *r;
	char after[48] = "", val[8];
	size_t seen = 0;

	for (int i = 0; i < 7; i++) {
		snprintf(val, sizeof(val), "X%d", i);
		patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", val, NULL));
	}
	patient_of(merge(&admin, "hosp:XC001", "X0", "hosp:XC001", "X1"));
	assert_int_equal(
	    export_page(&xc1, "", 0)->code, CODE(PERMISSION_DENIED));
	for (;;) {
		r = export_page(&admin, after, 4);
		assert_int_equal(r->code, CODE(OK));
		if (r->search->n_patients == 0)
			break;
		for (size_t i = 0; i < r->search->n_patients; i++) {
			const char *pid = r->search->patients[i]->patient_id;
			assert_true(strcmp(pid, after) > 0);
			assert_string_equal(
			    r->search->patients[i]->merged_into, "");
			snprintf(after, sizeof(after), "%s", pid);
			seen++;
		}
	}
	assert_int_equal(seen, 6); /* the merged-away one is left out */
}

struct reader_arg {
	int stop;
	int bad;
	long reads;
};

/* Look the same patient up in a loop on its own read handle while the
 * writer moves identifiers around; every answer must be a whole record. */
static void *
reader_main(void *v)
{
	struct reader_arg *ra = v;
	struct registry *rd;
	char err[256];

	if ((rd = registry_open(path, 0, NULL, err, sizeof(err))) == NULL) {
		ra->bad++;
		return NULL;
	}
	while (!__atomic_load_n(&ra->stop, __ATOMIC_ACQUIRE)) {
		Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
		Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
		Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
		struct evbuffer *out = evbuffer_new();
		struct op_result res;
		Onecard__V1__Reply *r;
		size_t len;

		id.domain = "hosp:XC001";
		id.value = "C0";
		l.identifier = &id;
		req.id = 1;
		req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
		req.lookup = &l;
		registry_read(rd, &xc1, &req, out, &res);
		if (wire_peek_evbuffer(out, 1 << 24, &len) != WIRE_FRAME) {
			ra->bad++;
			evbuffer_free(out);
			break;
		}
		r = wire_reply_unpack(
		    evbuffer_pullup(out, -1) + WIRE_HEADER_LEN, len, 1 << 26,
		    NULL);
		/* C0 and C1 always travel together: 2 or 4 identifiers. */
		if (r == NULL || r->code != CODE(OK) ||
		    (r->patient->n_identifiers != 2 &&
			r->patient->n_identifiers != 4))
			ra->bad++;
		if (r != NULL)
			wire_reply_free(r);
		evbuffer_free(out);
		ra->reads++;
	}
	registry_close(rd);
	return NULL;
}

static void
reads_during_writes_always_see_whole_records(void **state)
{
	struct reader_arg ra = {0};
	char cpid[48], dpid[48];
	pthread_t t;

	snprintf(cpid, sizeof(cpid), "%s",
	    patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "C0",
			   "hosp:XC001", "C1", NULL))
		->patient_id);
	snprintf(dpid, sizeof(dpid), "%s",
	    patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "D0",
			   "hosp:XC001", "D1", NULL))
		->patient_id);
	assert_int_equal(pthread_create(&t, NULL, reader_main, &ra), 0);
	for (int i = 0; i < 60; i++) {
		/* Merge D into C or C into D, then undo it. */
		if (i % 2 == 0) {
			assert_int_equal(
			    patient_of(merge(&admin, "hosp:XC001", "C0",
					   "hosp:XC001", "D0"))
				->n_identifiers,
			    4);
			patient_of(unmerge(&admin, dpid));
		} else {
			assert_int_equal(
			    patient_of(merge(&admin, "hosp:XC001", "D0",
					   "hosp:XC001", "C0"))
				->n_identifiers,
			    4);
			patient_of(unmerge(&admin, cpid));
		}
	}
	__atomic_store_n(&ra.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	assert_int_equal(ra.bad, 0);
	assert_true(ra.reads > 0);
}

/* The frame a lookup with this id appends on handle h, copied into buf
 * (cap bytes); its length. */
static size_t
lookup_frame(struct registry *h, uint64_t id, const char *dom, const char *val,
    uint8_t *buf, size_t cap)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier ident = ONECARD__V1__IDENTIFIER__INIT;
	struct evbuffer *out = evbuffer_new();
	size_t len;

	ident.domain = (char *)dom;
	ident.value = (char *)val;
	l.identifier = &ident;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &l;
	req.id = id;
	registry_read(h, &xc1, &req, out, &last);
	len = evbuffer_get_length(out);
	assert_true(len <= cap);
	evbuffer_remove(out, buf, len);
	evbuffer_free(out);
	return len;
}

/*
 * A read handle answers a repeated lookup from its cache with the very
 * bytes the registry would send, the request's id in place (a one-byte and
 * a multi-byte varint), and fills the op_result the audit trail reads the
 * same way; a handle with the cache off agrees.
 */
static void
cached_lookup_sends_the_same_bytes(void **state)
{
	struct registry_limits off;
	struct registry *rd, *plain;
	struct op_result miss;
	uint8_t a[4096], b[4096], c[4096];
	size_t la, lb, lc;
	char err[256];
	Onecard__V1__Reply *r;

	(void)state;
	registry_limits_default(&off);
	off.lookup_cache = 0;
	patient_of(enroll(&xc1, "张三", NULL, 0, "cn-id", CNID_F49,
	    "hosp:XC001", "V1", "cn-ssc", "SSC1", NULL));
	rd = registry_open(path, 0, NULL, err, sizeof(err));
	plain = registry_open(path, 0, &off, err, sizeof(err));
	assert_non_null(rd);
	assert_non_null(plain);

	for (uint64_t id = 7; id < 1000; id += 293) {
		la = lookup_frame(rd, id, "cn-id", CNID_F49, a, sizeof(a));
		miss = last;
		lb = lookup_frame(rd, id, "cn-id", CNID_F49, b, sizeof(b));
		lc = lookup_frame(plain, id, "cn-id", CNID_F49, c, sizeof(c));
		assert_int_equal(la, lb);
		assert_int_equal(la, lc);
		assert_memory_equal(a, b, la);
		assert_memory_equal(a, c, la);
		assert_int_equal(last.code, miss.code);
		assert_string_equal(last.patient_id, miss.patient_id);
		assert_string_equal(last.target, miss.target);
		assert_null(strstr(last.target, CNID_F49));
	}
	/* The cached frame decodes to the request's id and the record. */
	r = wire_reply_unpack(
	    b + WIRE_HEADER_LEN, lb - WIRE_HEADER_LEN, 1 << 20, NULL);
	assert_non_null(r);
	assert_int_equal(r->id, 886);
	assert_int_equal(r->code, CODE(OK));
	assert_int_equal(r->patient->n_identifiers, 3);
	wire_reply_free(r);
	registry_close(rd);
	registry_close(plain);
}

/* A lookup of hosp:XC001=value on its own read handle, in a thread. */
struct pending_arg {
	const char *value;
	int code; /* the reply's, once done */
	int done;
};

static void *
pending_lookup(void *v)
{
	struct pending_arg *pa = v;
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	struct evbuffer *out = evbuffer_new();
	struct op_result res;
	struct registry *rd;
	char err[256];

	if ((rd = registry_open(path, 0, NULL, err, sizeof(err))) == NULL)
		return NULL;
	id.domain = "hosp:XC001";
	id.value = (char *)pa->value;
	l.identifier = &id;
	req.id = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &l;
	registry_read(rd, &xc1, &req, out, &res);
	pa->code = res.code;
	__atomic_store_n(&pa->done, 1, __ATOMIC_RELEASE);
	evbuffer_free(out);
	registry_close(rd);
	return NULL;
}

/*
 * A write is seen by other handles only once its batch is durable: a
 * reader that meets a record the open batch changed waits for the commit
 * (and then sees it), or for the rollback (and then sees it as it was).
 */
static void
readers_wait_for_the_batch_that_changes_what_they_read(void **state)
{
	struct pending_arg pa = {"W1", -1, 0};
	pthread_t t;

	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "W1", NULL));
	assert_int_equal(registry_batch_begin(reg), 0);
	patient_of(link_id(&xc1, "hosp:XC001", "W1", "hosp:XC001", "W2"));
	assert_int_equal(pthread_create(&t, NULL, pending_lookup, &pa), 0);
	usleep(200 * 1000);
	assert_false(__atomic_load_n(&pa.done, __ATOMIC_ACQUIRE));
	assert_int_equal(registry_batch_commit(reg), 0);
	pthread_join(t, NULL);
	assert_int_equal(pa.code, CODE(OK));
	assert_int_equal(
	    patient_of(lookup("hosp:XC001", "W2"))->n_identifiers, 2);

	/* The same with a batch that fails: the reader sees it as before. */
	pa.done = 0;
	pa.code = -1;
	pa.value = "W1";
	assert_int_equal(registry_batch_begin(reg), 0);
	patient_of(link_id(&xc1, "hosp:XC001", "W1", "hosp:XC001", "W3"));
	assert_int_equal(pthread_create(&t, NULL, pending_lookup, &pa), 0);
	usleep(200 * 1000);
	assert_false(__atomic_load_n(&pa.done, __ATOMIC_ACQUIRE));
	registry_batch_rollback(reg);
	pthread_join(t, NULL);
	assert_int_equal(pa.code, CODE(OK));
	assert_int_equal(lookup("hosp:XC001", "W3")->code, CODE(NOT_FOUND));
	assert_int_equal(
	    patient_of(lookup("hosp:XC001", "W1"))->n_identifiers, 2);

	/* A new patient too: the lookup is answered once it is durable. */
	pa.done = 0;
	pa.code = -1;
	pa.value = "W4";
	assert_int_equal(registry_batch_begin(reg), 0);
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "W4", NULL));
	assert_int_equal(pthread_create(&t, NULL, pending_lookup, &pa), 0);
	usleep(200 * 1000);
	assert_false(__atomic_load_n(&pa.done, __ATOMIC_ACQUIRE));
	assert_int_equal(registry_batch_commit(reg), 0);
	pthread_join(t, NULL);
	assert_int_equal(pa.code, CODE(OK));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/*
 * --pg: a second broker's writer, in a child process of its own (as a
 * broker would be: no memory shared with the first), enrolling
 * hosp:XC002=Q2 in a batch; it exits 0 when that was answered OK.
 */
static pid_t
second_writer_start(void)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT, *idp = &id;
	struct op_result res = {0};
	struct registry *w;
	struct evbuffer *out;
	char err[256];
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	id.domain = (char *)"hosp:XC002";
	id.value = (char *)"Q2";
	e.identifiers = &idp;
	e.n_identifiers = 1;
	req.id = 99;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &e;
	if ((w = registry_open(path, 1, NULL, err, sizeof(err))) == NULL ||
	    (out = evbuffer_new()) == NULL || registry_batch_begin(w) != 0)
		_exit(2);
	registry_write(w, &xc2, &req, out, &res);
	if (registry_batch_commit(w) != 0)
		_exit(3);
	_exit(res.code == CODE(OK) ? 0 : 4);
}

/*
 * --pg: the server drops every connection (a restart, a failover): the
 * next request on each handle that reaches the server is answered
 * UNAVAILABLE, and the one after it is served on a new connection. A
 * lookup its worker has cached is answered from the cache meanwhile (the
 * cross-broker feed empties the caches while it cannot hear the server).
 */
static void
lost_connection_is_unavailable_then_reconnects(void **state)
{
	struct registry *rd;
	char err[256];
	PGconn *c;
	PGresult *r;

	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "K1", NULL));
	assert_non_null(rd = registry_open(path, 0, NULL, err, sizeof(err)));
	assert_int_equal(lookup_on(rd, "hosp:XC001", "K1")->code, CODE(OK));
	c = PQconnectdb(pg_url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	r = PQexec(c,
	    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	    " WHERE datname = current_database()"
	    " AND pid <> pg_backend_pid()");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_true(PQntuples(r) >= 2);
	PQclear(r);
	PQfinish(c);
	assert_int_equal(
	    enroll(&xc1, "", NULL, 0, "hosp:XC001", "K2", NULL)->code,
	    CODE(UNAVAILABLE));
	assert_int_equal(lookup_on(rd, "hosp:XC001", "K1")->code, CODE(OK));
	assert_int_equal(
	    lookup_on(rd, "hosp:XC001", "K0")->code, CODE(UNAVAILABLE));
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "K2", NULL));
	assert_int_equal(lookup_on(rd, "hosp:XC001", "K2")->code, CODE(OK));
	registry_close(rd);
}

/*
 * --pg: brokers started together on an empty database: each writer
 * creates and migrates the schema under the advisory lock, so every one
 * opens and each migration is applied once.
 */
static void
writers_opening_at_once_migrate_once(void **state)
{
	pid_t pid[4];
	char err[256];
	int status;
	PGconn *c;
	PGresult *r;

	registry_close(reg);
	reg = NULL;
	assert_int_equal(pg_empty_schema(), 0);
	for (int i = 0; i < 4; i++) {
		if ((pid[i] = fork()) == 0) {
			struct registry *w =
			    registry_open(path, 1, NULL, err, sizeof(err));

			if (w == NULL)
				fprintf(stderr, "writer %d: %s\n", i, err);
			_exit(w != NULL ? 0 : 1);
		}
		assert_true(pid[i] > 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	c = PQconnectdb(pg_url);
	r = PQexec(c,
	    "SELECT count(*), count(DISTINCT version)"
	    " FROM schema_version");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
	PQclear(r);
	PQfinish(c);
	assert_non_null(reg = registry_open(path, 1, NULL, err, sizeof(err)));
}

/* --pg: commit another session's open transaction after 300 ms. */
static void *
commit_later(void *arg)
{
	PGconn *c = arg;

	usleep(300 * 1000);
	PQclear(PQexec(c, "COMMIT"));
	return NULL;
}

/*
 * --pg: another writer (here a bare session, which does not queue behind
 * the writers' counter lock) holds hosp:XC001=R9 uncommitted. The enroll
 * of R9 waits for it, meets the key once it commits, and runs again: it
 * answers with the patient the other writer made, as it would have
 * coming second on one broker, not UNAVAILABLE.
 */
static void
enroll_meeting_a_key_committed_meanwhile_runs_again(void **state)
{
	PGconn *c = PQconnectdb(pg_url);
	PGresult *r;
	pthread_t t;

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	r = PQexec(c,
	    "BEGIN; INSERT INTO patients (id, version, created_ms)"
	    " VALUES ('POTHER', 1, 0); INSERT INTO identifiers"
	    " VALUES ('hosp:XC001', 'R9', 'POTHER')");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	assert_int_equal(pthread_create(&t, NULL, commit_later, c), 0);
	assert_string_equal(
	    patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "R9", NULL))
		->patient_id,
	    "POTHER");
	pthread_join(t, NULL);
	PQfinish(c);
}

/* Read events after *cursor on rd as admin; how many were read. */
static int
events_read(struct registry *rd, uint64_t *cursor)
{
	struct evbuffer *out = evbuffer_new();
	unsigned pushed;
	int n = registry_events_push(rd, &admin, cursor, 64, out, &pushed);

	evbuffer_free(out);
	return n;
}

/*
 * Two brokers' writers on one PostgreSQL registry: an event numbered
 * after another never commits before it. Broker 1's batch appends an
 * event and stays open; broker 2's batch waits for it instead of taking
 * the next number and committing first (which a sequence would let it
 * do, and a subscriber that read the later event would never see the
 * earlier one).
 */
static void
events_of_two_writers_commit_in_seq_order(void **state)
{
	struct registry *rd;
	uint64_t cursor = 0;
	char err[256];
	pid_t pid;
	int status;

	assert_non_null(rd = registry_open(path, 0, NULL, err, sizeof(err)));
	assert_int_equal(registry_batch_begin(reg), 0);
	patient_of(enroll(&xc1, "", NULL, 0, "hosp:XC001", "Q1", NULL));
	assert_true((pid = second_writer_start()) > 0);
	usleep(300 * 1000);
	/* Nothing is committed yet, and broker 2 waits. */
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	assert_int_equal(events_read(rd, &cursor), 0);
	assert_int_equal(registry_batch_commit(reg), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* Both now, in the order they committed. */
	assert_int_equal(events_read(rd, &cursor), 2);
	assert_int_equal(
	    history(&admin, "hosp:XC001", "Q1")->history->events[0]->seq,
	    cursor - 1);
	registry_close(rd);
}

/* --- The steward's worklist ------------------------------------------- */

static Onecard__V1__Reply *
dup_scan(const struct actor *who, const char *after, unsigned limit)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__DuplicateScan s = ONECARD__V1__DUPLICATE_SCAN__INIT;

	s.after_patient_id = (char *)after;
	s.limit = limit;
	req.op_case = ONECARD__V1__REQUEST__OP_DUPLICATE_SCAN;
	req.duplicate_scan = &s;
	return call(who, &req);
}

/* Scan the whole registry, a page of 2 at a time; the pairs found. */
static unsigned
dup_scan_all(void)
{
	char after[48] = "";
	unsigned found = 0;

	for (int pages = 0; pages < 100; pages++) {
		Onecard__V1__Reply *r = dup_scan(&admin, after, 2);

		assert_int_equal(r->code, CODE(OK));
		assert_int_equal(
		    r->result_case, ONECARD__V1__REPLY__RESULT_DUPLICATE_SCAN);
		found += r->duplicate_scan->found;
		if (r->duplicate_scan->next_patient_id[0] == '\0')
			return found;
		snprintf(after, sizeof(after), "%s",
		    r->duplicate_scan->next_patient_id);
	}
	fail_msg("the scan did not end");
	return 0;
}

static Onecard__V1__Reply *
dup_list(const struct actor *who, int all)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__DuplicateList l = ONECARD__V1__DUPLICATE_LIST__INIT;

	l.all = all;
	req.op_case = ONECARD__V1__REQUEST__OP_DUPLICATE_LIST;
	req.duplicate_list = &l;
	return call(who, &req);
}

/* Show (0), dismiss (1) or merge (2, 3: keeping b) pair id. */
static Onecard__V1__Reply *
dup_act(const struct actor *who, int what, uint64_t id)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__DuplicateShow sh = ONECARD__V1__DUPLICATE_SHOW__INIT;
	Onecard__V1__DuplicateDismiss di = ONECARD__V1__DUPLICATE_DISMISS__INIT;
	Onecard__V1__DuplicateMerge me = ONECARD__V1__DUPLICATE_MERGE__INIT;

	sh.pair_id = di.pair_id = me.pair_id = id;
	me.survivor_b = what == 3;
	if (what == 0) {
		req.op_case = ONECARD__V1__REQUEST__OP_DUPLICATE_SHOW;
		req.duplicate_show = &sh;
	} else if (what == 1) {
		req.op_case = ONECARD__V1__REQUEST__OP_DUPLICATE_DISMISS;
		req.duplicate_dismiss = &di;
	} else {
		req.op_case = ONECARD__V1__REQUEST__OP_DUPLICATE_MERGE;
		req.duplicate_merge = &me;
	}
	return call(who, &req);
}

static void
enroll_puts_its_candidates_on_the_worklist(void **state)
{
	const Onecard__V1__Patient *a, *b;
	const Onecard__V1__DuplicatePair *pr;
	Onecard__V1__Reply *r;

	a = patient_of(enroll(
	    &xc1, "Zhao Liu", "1990-01-01", 1, "hosp:XC001", "D1", NULL));
	b = patient_of(enroll(
	    &xc2, "Zhao Liu", "1990-01-01", 0, "hosp:XC002", "D2", NULL));
	r = dup_list(&admin, 0);
	assert_int_equal(r->result_case, ONECARD__V1__REPLY__RESULT_DUPLICATES);
	assert_int_equal(r->duplicates->n_pairs, 1);
	assert_int_equal(r->duplicates->open, 1);
	pr = r->duplicates->pairs[0];
	assert_int_equal(
	    pr->state, ONECARD__V1__DUPLICATE_STATE__DUPLICATE_OPEN);
	assert_true(pr->grade == ONECARD__V1__MATCH_GRADE__MATCH_CERTAIN ||
	    pr->grade == ONECARD__V1__MATCH_GRADE__MATCH_PROBABLE);
	/* a sorts before b */
	assert_true(strcmp(pr->a->patient_id, pr->b->patient_id) < 0);
	assert_true(strcmp(pr->a->patient_id, a->patient_id) == 0 ||
	    strcmp(pr->a->patient_id, b->patient_id) == 0);
	r = dup_act(&admin, 0, pr->pair_id);
	assert_int_equal(r->code, CODE(OK));
	assert_int_equal(r->duplicates->n_pairs, 1);
	assert_string_equal(
	    r->duplicates->pairs[0]->a->demographics->name, "Zhao Liu");
	assert_non_null(strstr(r->duplicates->pairs[0]->reason, "name="));
	assert_int_equal(r->duplicates->pairs[0]->a->n_identifiers, 1);
	/* a scan keeps what is known */
	assert_int_equal(dup_scan_all(), 0);
	assert_int_equal(dup_act(&admin, 0, 99)->code, CODE(NOT_FOUND));
	assert_int_equal(dup_act(&admin, 0, 0)->code, CODE(INVALID_ARGUMENT));
}

static void
scan_finds_a_pair_and_a_dismissed_one_stays_dismissed(void **state)
{
	char err[256];
	Onecard__V1__Reply *r;
	uint64_t id;

	patient_of(enroll(
	    &xc1, "Qian Ming", "1971-03-04", 1, "hosp:XC001", "Q1", NULL));
	patient_of(enroll(
	    &xc1, "Sun Hong", "1980-11-12", 2, "hosp:XC001", "S1", NULL));
	patient_of(
	    enroll(&xc1, "Li Lei", "1966-05-06", 1, "hosp:XC001", "L1", NULL));
	assert_int_equal(dup_list(&admin, 1)->duplicates->n_pairs, 0);
	/* S1 becomes Qian Ming: only a scan can find the pair */
	assert_int_equal(
	    update(&xc1, "hosp:XC001", "S1", "Qian Ming", NULL, "1971-03-04", 0)
		->code,
	    CODE(OK));
	assert_int_equal(dup_list(&admin, 0)->duplicates->n_pairs, 0);
	assert_int_equal(dup_scan_all(), 1);
	assert_int_equal(dup_scan_all(), 0);
	r = dup_list(&admin, 0);
	assert_int_equal(r->duplicates->n_pairs, 1);
	id = r->duplicates->pairs[0]->pair_id;
	r = dup_act(&admin, 1, id);
	assert_int_equal(r->code, CODE(OK));
	assert_int_equal(r->duplicates->pairs[0]->state,
	    ONECARD__V1__DUPLICATE_STATE__DUPLICATE_DISMISSED);
	assert_int_equal(dup_scan_all(), 0);
	assert_int_equal(dup_list(&admin, 0)->duplicates->n_pairs, 0);
	/* the worklist survives a restart, dismissed */
	registry_close(reg);
	reg = registry_open(path, 1, NULL, err, sizeof(err));
	assert_non_null(reg);
	assert_int_equal(dup_scan_all(), 0);
	r = dup_list(&admin, 1);
	assert_int_equal(r->duplicates->n_pairs, 1);
	assert_int_equal(r->duplicates->open, 0);
	assert_int_equal(r->duplicates->pairs[0]->pair_id, id);
	assert_int_equal(r->duplicates->pairs[0]->state,
	    ONECARD__V1__DUPLICATE_STATE__DUPLICATE_DISMISSED);
	/* a third one pairs with both, but the dismissed pair stays so */
	r = enroll(
	    &xc2, "Qian Ming", "1971-03-04", 0, "hosp:XC002", "Q2", NULL);
	assert_int_equal(r->enrolled->n_possible_duplicates, 2);
	r = dup_list(&admin, 0);
	assert_int_equal(r->duplicates->n_pairs, 2);
	assert_int_equal(r->duplicates->open, 2);
	assert_true(r->duplicates->pairs[0]->pair_id != id &&
	    r->duplicates->pairs[1]->pair_id != id);
}

static void
duplicate_merge_merges_the_pair_and_closes_it(void **state)
{
	const Onecard__V1__Patient *a, *b;
	Onecard__V1__Reply *r;
	uint64_t id;

	a = patient_of(enroll(
	    &xc1, "Zhou Wen", "1955-07-08", 1, "hosp:XC001", "Z1", NULL));
	b = patient_of(enroll(
	    &xc2, "Zhou Wen", "1955-07-08", 1, "hosp:XC002", "Z2", NULL));
	r = dup_list(&admin, 0);
	assert_int_equal(r->duplicates->n_pairs, 1);
	id = r->duplicates->pairs[0]->pair_id;
	assert_int_equal(dup_list(&xc1, 0)->code, CODE(PERMISSION_DENIED));
	assert_int_equal(dup_scan(&xc1, "", 0)->code, CODE(PERMISSION_DENIED));
	assert_int_equal(dup_act(&xc1, 0, id)->code, CODE(PERMISSION_DENIED));
	assert_int_equal(dup_act(&xc1, 1, id)->code, CODE(PERMISSION_DENIED));
	assert_int_equal(dup_act(&xc1, 2, id)->code, CODE(PERMISSION_DENIED));
	r = dup_act(&admin, 2, id);
	assert_int_equal(r->code, CODE(OK));
	assert_int_equal(r->duplicates->pairs[0]->state,
	    ONECARD__V1__DUPLICATE_STATE__DUPLICATE_MERGED);
	/* b's card now finds the survivor (the pair's a) */
	const char *surv = strcmp(a->patient_id, b->patient_id) < 0
	    ? a->patient_id
	    : b->patient_id;
	assert_string_equal(
	    patient_of(lookup("hosp:XC002", "Z2"))->patient_id, surv);
	assert_string_equal(
	    patient_of(lookup("hosp:XC001", "Z1"))->patient_id, surv);
	assert_int_equal(dup_act(&admin, 2, id)->code, CODE(CONFLICT));
	assert_int_equal(dup_act(&admin, 1, id)->code, CODE(CONFLICT));
	assert_int_equal(dup_list(&admin, 0)->duplicates->n_pairs, 0);
	assert_int_equal(dup_scan_all(), 0);
}

static void
open_pair_of_a_patient_merged_elsewhere_leaves_the_list(void **state)
{
	Onecard__V1__Reply *r;

	patient_of(
	    enroll(&xc1, "Wu Gang", "1962-02-03", 1, "hosp:XC001", "W1", NULL));
	patient_of(
	    enroll(&xc2, "Wu Gang", "1962-02-03", 1, "hosp:XC002", "W2", NULL));
	patient_of(
	    enroll(&xc1, "Ma Li", "1988-09-10", 2, "hosp:XC001", "M1", NULL));
	r = dup_list(&admin, 0);
	assert_int_equal(r->duplicates->n_pairs, 1);
	/* W2 is merged into another patient, not through the worklist */
	assert_int_equal(
	    merge(&admin, "hosp:XC001", "M1", "hosp:XC002", "W2")->code,
	    CODE(OK));
	r = dup_list(&admin, 0);
	assert_int_equal(r->duplicates->n_pairs, 0);
	assert_int_equal(r->duplicates->open, 0);
	r = dup_list(&admin, 1);
	assert_int_equal(r->duplicates->n_pairs, 1);
	r = dup_act(&admin, 2, r->duplicates->pairs[0]->pair_id);
	assert_int_equal(r->code, CODE(CONFLICT));
	assert_non_null(strstr(r->message, "merged away"));
}

/*
 * --pg: the server's URL, from ONECARD_TEST_PG or the file the pg fixture
 * wrote (ONECARD_TEST_PG_URLFILE); -1 (said why) when there is none.
 */
static int
pg_find_url(void)
{
	const char *env = getenv("ONECARD_TEST_PG");
	const char *file = getenv("ONECARD_TEST_PG_URLFILE");
	FILE *f;

	if (env != NULL && env[0] != '\0') {
		snprintf(pg_url, sizeof(pg_url), "%s", env);
		return 0;
	}
	if (file == NULL || (f = fopen(file, "r")) == NULL) {
		fprintf(stderr,
		    "--pg: no PostgreSQL server: set ONECARD_TEST_PG to a "
		    "libpq URL, or run through ctest (its pg fixture starts "
		    "one)\n");
		return -1;
	}
	if (fgets(pg_url, sizeof(pg_url), f) == NULL)
		pg_url[0] = '\0';
	fclose(f);
	pg_url[strcspn(pg_url, "\n")] = '\0';
	if (pg_url[0] == '\0') {
		fprintf(stderr, "--pg: %s is empty\n", file);
		return -1;
	}
	return 0;
}

/*
 * What only the SQLite stores do, left out with --pg: the WAL file and
 * its checkpoints, readers that wait for the batch in memory,
 * and the sqlite: and postgresql:// checks themselves.
 */
static const char *const sqlite_only[] = {
    "wal_is_copied_back_while_the_writer_keeps_writing",
    "writes_survive_close_and_reopen",
    "readers_wait_for_the_batch_that_changes_what_they_read",
    "postgresql_url_without_a_server_fails_naming_the_connection",
    "sqlite_url_scheme_opens_the_same_file",
};

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    T(cached_lookup_sends_the_same_bytes),
	    T(enroll_creates_a_patient_with_an_opaque_id),
	    T(enroll_twice_is_harmless),
	    T(enroll_links_the_rest_to_the_one_existing_patient),
	    T(enroll_spanning_two_patients_conflicts_and_changes_nothing),
	    T(enroll_with_a_second_cn_id_conflicts),
	    T(enroll_demographics_must_agree_with_the_cn_id),
	    T(enroll_without_cn_id_names_possible_duplicates),
	    T(enroll_refuses_malformed_input_naming_the_field),
	    T(hospital_writes_only_its_own_domain),
	    T(link_cases),
	    T(unlink_cases),
	    T(update_sets_given_fields_and_checks_the_version),
	    T(merge_then_unmerge_restores_both_records_exactly),
	    T(merge_fills_the_survivors_blanks_and_unmerge_clears_them),
	    T(merge_keeps_the_survivors_fields_and_a_later_correction),
	    T(merge_refuses_a_survivor_that_disagrees_with_the_cn_id),
	    T(events_reach_the_hospitals_that_hold_or_held_a_card),
	    T(merge_follows_chains_and_unmerges_in_any_order),
	    T(unmerge_after_unlink_leaves_a_record_named_by_pid_only),
	    T(merge_refuses_two_cn_ids_and_the_same_patient),
	    T(admin_only_ops_are_denied_to_hospitals),
	    T(hospitals_are_added_revoked_and_reactivated),
	    T(admin_cannot_add_cards_of_an_unknown_hospital),
	    T(change_feed_delivers_each_committed_change_once),
	    T(batch_with_a_failing_write_commits_its_neighbours),
	    T(batch_told_ahead_answers_as_each_write_alone),
	    T(patient_ids_are_unique_time_ordered_and_unguessable),
	    T(wal_is_copied_back_while_the_writer_keeps_writing),
	    T(events_are_appended_with_increasing_seq),
	    T(writes_survive_close_and_reopen),
	    T(enroll_puts_its_candidates_on_the_worklist),
	    T(scan_finds_a_pair_and_a_dismissed_one_stays_dismissed),
	    T(duplicate_merge_merges_the_pair_and_closes_it),
	    T(open_pair_of_a_patient_merged_elsewhere_leaves_the_list),
	    T(read_handle_sees_the_writers_commits),
	    T(lookup_validates_and_reports_not_found),
	    T(search_matches_exact_fields_up_to_the_limit),
	    T(ranked_search_finds_the_patient_despite_desk_errors),
	    T(ranked_search_follows_updates_and_skips_merged_patients),
	    T(ranked_search_puts_the_identifier_holder_first),
	    T(ranked_search_limits_and_refuses_bad_input_naming_the_field),
	    T(ranked_search_of_a_common_name_is_bounded),
	    T(enroll_lists_near_duplicates_with_score_and_grade),
	    T(stats_count_patients_identifiers_and_merges),
	    T(mask_id_hides_the_middle_of_a_cn_id_only),
	    T(postgresql_url_without_a_server_fails_naming_the_connection),
	    T(sqlite_url_scheme_opens_the_same_file),
	    T(url_safe_hides_a_password_only),
	    T(export_pages_live_patients_in_id_order),
	    T(reads_during_writes_always_see_whole_records),
	    T(readers_wait_for_the_batch_that_changes_what_they_read),
	};

	/* What only a store shared by several writers does. */
	const struct CMUnitTest pg_only[] = {
	    T(events_of_two_writers_commit_in_seq_order),
	    T(lost_connection_is_unavailable_then_reconnects),
	    T(writers_opening_at_once_migrate_once),
	    T(enroll_meeting_a_key_committed_meanwhile_runs_again),
	};
	struct CMUnitTest pg_tests[sizeof(tests) / sizeof(tests[0]) +
	    sizeof(pg_only) / sizeof(pg_only[0])];
	size_t n = 0;

	if (argc < 2 || strcmp(argv[1], "--pg") != 0)
		return cmocka_run_group_tests(tests, NULL, NULL);
	if (pg_find_url() == -1)
		return 1;
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		size_t k = 0;

		while (k < sizeof(sqlite_only) / sizeof(sqlite_only[0]) &&
		    strcmp(tests[i].name, sqlite_only[k]) != 0)
			k++;
		if (k == sizeof(sqlite_only) / sizeof(sqlite_only[0]))
			pg_tests[n++] = tests[i];
	}
	for (size_t i = 0; i < sizeof(pg_only) / sizeof(pg_only[0]); i++)
		pg_tests[n++] = pg_only[i];
	return _cmocka_run_group_tests("registry_pg", pg_tests, n, NULL, NULL);
}
