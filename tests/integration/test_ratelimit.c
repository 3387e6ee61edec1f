/*
 * test_ratelimit.c: rate limits per hospital and the search guards (issue
 * 21, items 2 and 3) against a real onecardd started with a config file.
 * A hospital that hammers lookups is refused RESOURCE_EXHAUSTED with a
 * retry time after exactly its burst, on a connection that goes on, while
 * another hospital is served; writes and searches have buckets of their
 * own; admins are not limited unless configured; SIGHUP changes the limits
 * of open connections (and a bad file changes nothing); bad values are
 * refused naming the key; FHIR answers 429 with Retry-After from the same
 * buckets; a hospital's search must name someone (a birth date alone, one
 * date after another, is refused) and gets at most search-max-results; a
 * search's audit line holds its criteria masked; the refusals are counted
 * on /metrics. Rates are 1 per second with small bursts, so nothing here
 * depends on how fast the machine is, only on six requests taking less
 * than a second.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* A valid cn-id (born 1949-12-31, female) and how the trail masks it. */
#define CNID        "11010519491231002X"
#define CNID_MASKED "110105********002X"

static struct harness h;
static char dir[64] = "/tmp/onecard-ratelimit.XXXXXX";
static char conf_path[128], audit_path[128];
static int fhir_port;

/* The config file: the group's settings and extra lines. */
static void
write_conf(const char *extra)
{
	FILE *f = fopen(conf_path, "w");

	assert_non_null(f);
	fprintf(f,
	    "[onecardd]\n"
	    "rate-lookup = 1/5\n"
	    "search-max-results = 3\n"
	    "hospital.XC003.rate-write = 1/3\n"
	    "hospital.XC003.rate-search = 1/2\n"
	    "hospital.ADM2.rate-lookup = 1/2\n"
	    "%s",
	    extra);
	assert_int_equal(fclose(f), 0);
}

static int
group_setup(void **state)
{
	static const char *const codes[] = {
	    "XC001", "XC002", "XC003", "XC004", "XC005", "XC006", NULL};
	static const char *const more[] = {"ADM2", NULL};
	const char *const extra[] = {"--config", conf_path, "--admins",
	    "admin,ADM2", "--audit-log", audit_path, "--metrics-listen",
	    "127.0.0.1:0", "--fhir-listen", "127.0.0.1:0", NULL};
	char log[65536], *p;
	FILE *f;

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(conf_path, sizeof conf_path, "%s/onecardd.conf", dir);
	snprintf(audit_path, sizeof audit_path, "%s/audit.log", dir);
	if ((f = fopen(conf_path, "w")) == NULL)
		return -1;
	fclose(f);
	write_conf("hospital.XC005.rate-lookup = 1/2\n");
	if (harness_start(&h, codes, extra) == -1 ||
	    harness_certs(&h, more) == -1 ||
	    harness_log(&h, log, sizeof log) == -1)
		return -1;
	if ((p = strstr(log, "fhir on 127.0.0.1:")) == NULL)
		return -1;
	fhir_port = atoi(p + strlen("fhir on 127.0.0.1:"));
	return 0;
}

static int
group_teardown(void **state)
{
	int status;

	(void)state;
	status = harness_stop(&h, SIGTERM);
	harness_cleanup(&h);
	unlink(conf_path);
	unlink(audit_path);
	rmdir(dir);
	return status == 0 ? 0 : -1;
}

/* Connect as cn. */
static struct onecard_conn *
connect_as(const char *cn)
{
	struct onecard_conn *c;

	assert_int_equal(harness_connect(&h, cn, &c), ONECARD_OK);
	return c;
}

/* Send req on c; the reply (never NULL). */
static Onecard__V1__Reply *
call(struct onecard_conn *c, Onecard__V1__Request *req)
{
	Onecard__V1__Reply *r = NULL;

	assert_int_equal(onecard_call(c, req, &r), ONECARD_OK);
	assert_non_null(r);
	return r;
}

/* Look domain=value up on c: the code, the message copied to msg. */
static int
lookup_msg(struct onecard_conn *c, const char *domain, const char *value,
    char *msg, size_t msglen)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *r;
	int code;

	id.domain = (char *)domain;
	id.value = (char *)value;
	l.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &l;
	r = call(c, &req);
	code = r->code;
	if (msg != NULL)
		snprintf(msg, msglen, "%s", r->message ? r->message : "");
	onecard_reply_free(r);
	return code;
}

static int
lookup(struct onecard_conn *c, const char *value)
{
	return lookup_msg(c, "hosp:XC001", value, NULL, 0);
}

/* Enroll hosp:<code>=card (and a cn-id and demographics when given). */
static int
enroll(struct onecard_conn *c, const char *code, const char *card,
    const char *name, const char *birth, const char *phone, const char *cnid)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier id[2], *ids[2];
	Onecard__V1__Reply *r;
	char domain[48];
	int rc;

	snprintf(domain, sizeof domain, "hosp:%s", code);
	onecard__v1__identifier__init(&id[0]);
	onecard__v1__identifier__init(&id[1]);
	id[0].domain = domain;
	id[0].value = (char *)card;
	id[1].domain = "cn-id";
	id[1].value = (char *)cnid;
	ids[0] = &id[0];
	ids[1] = &id[1];
	d.name = (char *)name;
	d.birth_date = (char *)birth;
	d.phone = (char *)phone;
	e.demographics = &d;
	e.identifiers = ids;
	e.n_identifiers = cnid ? 2 : 1;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &e;
	r = call(c, &req);
	rc = r->code;
	onecard_reply_free(r);
	return rc;
}

/* What a search asks. */
struct query {
	const char *name, *birth, *phone, *domain, *value;
	int exact;
	unsigned limit;
};

/* Search on c; the reply. */
static Onecard__V1__Reply *
search(struct onecard_conn *c, const struct query *q)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Search s = ONECARD__V1__SEARCH__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;

	s.name = (char *)q->name;
	s.birth_date = (char *)q->birth;
	s.phone = (char *)q->phone;
	s.exact = q->exact;
	s.limit = q->limit;
	if (q->domain != NULL) {
		id.domain = (char *)q->domain;
		id.value = (char *)q->value;
		s.identifier = &id;
	}
	req.op_case = ONECARD__V1__REQUEST__OP_SEARCH;
	req.search = &s;
	return call(c, &req);
}

/* Search on c: the reply's code. */
static int
search_code(struct onecard_conn *c, const struct query *q)
{
	Onecard__V1__Reply *r = search(c, q);
	int code = r->code;

	onecard_reply_free(r);
	return code;
}

/* How many times the broker has logged what. */
static int
log_count(const char *what)
{
	static char log[1 << 20];
	int n = 0;

	assert_int_equal(harness_log(&h, log, sizeof log), 0);
	for (const char *p = log; (p = strstr(p, what)) != NULL; p++)
		n++;
	return n;
}

/* Send SIGHUP and wait until the broker has logged what once more. */
static void
sighup_and_wait(const char *what)
{
	int before = log_count(what);

	assert_int_equal(kill(h.pid, SIGHUP), 0);
	for (int i = 0; i < 100 && log_count(what) == before; i++)
		usleep(50 * 1000);
	assert_true(log_count(what) > before);
}

static void
hammering_hospital_is_refused_after_its_burst_while_another_is_served(
    void **state)
{
	struct onecard_conn *a = connect_as("XC001"), *b = connect_as("XC002");
	char msg[256];

	(void)state;
	/* rate-lookup = 1/5: exactly five at once (NOT_FOUND is an answer
	 * like any other), then the sixth is refused with a retry time. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(
		    lookup(a, "NOBODY"), ONECARD__V1__CODE__NOT_FOUND);
	assert_int_equal(lookup_msg(a, "hosp:XC001", "NOBODY", msg, sizeof msg),
	    ONECARD__V1__CODE__RESOURCE_EXHAUSTED);
	assert_non_null(strstr(msg,
	    "rate limit: hospital XC001 exceeded 1 "
	    "lookups/s (burst 5); retry in "));
	assert_non_null(strstr(msg, " ms"));
	/* The other hospital has a bucket of its own. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(
		    lookup(b, "NOBODY"), ONECARD__V1__CODE__NOT_FOUND);
	/* The limited connection stays open: a ping (not limited) answers. */
	assert_int_equal(harness_ping(a), ONECARD__V1__CODE__OK);
	/* After the retry time, one more is let in. */
	sleep(1);
	assert_int_equal(lookup(a, "NOBODY"), ONECARD__V1__CODE__NOT_FOUND);
	onecard_close(a);
	onecard_close(b);
}

static void
writes_and_searches_have_buckets_of_their_own(void **state)
{
	struct onecard_conn *c = connect_as("XC003");
	const struct query q = {"张伟", "1970-01-01", NULL, NULL, NULL, 0, 0};
	char card[16];

	(void)state;
	/* hospital.XC003.rate-write = 1/3 */
	for (int i = 0; i < 3; i++) {
		snprintf(card, sizeof card, "W%d", i);
		assert_int_equal(
		    enroll(c, "XC003", card, NULL, NULL, NULL, NULL),
		    ONECARD__V1__CODE__OK);
	}
	assert_int_equal(enroll(c, "XC003", "W3", NULL, NULL, NULL, NULL),
	    ONECARD__V1__CODE__RESOURCE_EXHAUSTED);
	/* hospital.XC003.rate-search = 1/2, untouched by the writes */
	assert_int_equal(search_code(c, &q), ONECARD__V1__CODE__OK);
	assert_int_equal(search_code(c, &q), ONECARD__V1__CODE__OK);
	assert_int_equal(
	    search_code(c, &q), ONECARD__V1__CODE__RESOURCE_EXHAUSTED);
	/* Lookups (the default 1/5) are still there; the refused write never
	 * reached the registry. */
	assert_int_equal(
	    lookup_msg(c, "hosp:XC003", "W0", NULL, 0), ONECARD__V1__CODE__OK);
	assert_int_equal(lookup_msg(c, "hosp:XC003", "W3", NULL, 0),
	    ONECARD__V1__CODE__NOT_FOUND);
	onecard_close(c);
}

static void
admins_are_not_limited_unless_configured(void **state)
{
	struct onecard_conn *a = connect_as("admin"), *b = connect_as("ADM2");
	char msg[256];

	(void)state;
	for (int i = 0; i < 20; i++)
		assert_int_equal(
		    lookup(a, "NOBODY"), ONECARD__V1__CODE__NOT_FOUND);
	/* hospital.ADM2.rate-lookup = 1/2: the default does not apply to an
	 * admin, a rate of its own does. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    lookup(b, "NOBODY"), ONECARD__V1__CODE__NOT_FOUND);
	assert_int_equal(lookup_msg(b, "hosp:XC001", "NOBODY", msg, sizeof msg),
	    ONECARD__V1__CODE__RESOURCE_EXHAUSTED);
	assert_non_null(strstr(msg, "admin ADM2 exceeded 1 lookups/s"));
	onecard_close(a);
	onecard_close(b);
}

static void
sighup_changes_the_limits_of_open_connections(void **state)
{
	struct onecard_conn *c = connect_as("XC005");
	char msg[256];

	(void)state;
	/* hospital.XC005.rate-lookup = 1/2 */
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    lookup(c, "NOBODY"), ONECARD__V1__CODE__NOT_FOUND);
	assert_int_equal(
	    lookup(c, "NOBODY"), ONECARD__V1__CODE__RESOURCE_EXHAUSTED);
	/* Raised to 1/8: the same connection gets eight, then is refused. */
	write_conf("hospital.XC005.rate-lookup = 1/8\n");
	sighup_and_wait("rate limits reloaded");
	for (int i = 0; i < 8; i++)
		assert_int_equal(
		    lookup(c, "NOBODY"), ONECARD__V1__CODE__NOT_FOUND);
	assert_int_equal(lookup_msg(c, "hosp:XC001", "NOBODY", msg, sizeof msg),
	    ONECARD__V1__CODE__RESOURCE_EXHAUSTED);
	assert_non_null(strstr(msg, "(burst 8)"));
	/* A bad value is logged naming the key and changes nothing. */
	write_conf("hospital.XC005.rate-lookup = lots\n");
	sighup_and_wait("rate limits not changed");
	assert_true(log_count("key hospital.XC005.rate-lookup: "
			      "hospital.XC005.rate-lookup: 'lots' is not "
			      "RATE[/BURST]") > 0);
	assert_int_equal(
	    lookup(c, "NOBODY"), ONECARD__V1__CODE__RESOURCE_EXHAUSTED);
	/* Unlimited (0): every lookup is answered. */
	write_conf("hospital.XC005.rate-lookup = 0\n");
	sighup_and_wait("rate limits reloaded");
	for (int i = 0; i < 20; i++)
		assert_int_equal(
		    lookup(c, "NOBODY"), ONECARD__V1__CODE__NOT_FOUND);
	onecard_close(c);
}

/* onecardd with args; its exit status, its stderr in err. */
static int
onecardd_check(char *err, size_t errlen, const char *args)
{
	char cmd[2048];

	snprintf(cmd, sizeof cmd,
	    "onecardd --check-config --db '%s/x.db' --cert '%s/broker.pem' "
	    "--key '%s/broker.key' --ca '%s/ca.pem' %s",
	    dir, h.certs, h.certs, h.certs, args);
	memset(err, 0, errlen);
	return harness_run2(&h, NULL, NULL, 0, err, errlen, cmd);
}

static void
bad_values_are_refused_naming_the_key(void **state)
{
	static const struct {
		const char *conf, *flag, *said;
	} bad[] = {
	    {"hospital.XC001.rate-lookup = fast", NULL,
		"key hospital.XC001.rate-lookup: hospital.XC001.rate-lookup: "
		"'fast' is not RATE[/BURST]"},
	    {"hospital.XC001.rate-write = 5/0", NULL,
		"hospital.XC001.rate-write: '5/0' is not RATE[/BURST]: BURST "
		"is requests at once, 1 to 1000000"},
	    {"hospital.XC001.rate-serch = 5", NULL,
		"unknown per-hospital key 'rate-serch'"},
	    {"hospital.X!Y.rate-search = 5", NULL,
		"hospital.X!Y.rate-search: CODE: hospital code may hold only "
		"letters, digits, - and _"},
	    {"rate-search = 2000000", NULL,
		"--rate-search: '2000000' is not RATE[/BURST]"},
	    {"search-max-results = 500", NULL,
		"--search-max-results: '500' is not a number from 0 to 100"},
	    {NULL, "--rate-write 0/5",
		"--rate-write: '0/5': a rate of 0 is "
		"unlimited and takes no burst"},
	    {NULL, "--rate-lookup -1",
		"--rate-lookup: '-1' is not "
		"RATE[/BURST]"},
	};
	char err[4096], args[512], path[160];
	FILE *f;

	(void)state;
	snprintf(path, sizeof path, "%s/bad.conf", dir);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (bad[i].conf != NULL) {
			assert_non_null(f = fopen(path, "w"));
			fprintf(f, "[onecardd]\n%s\n", bad[i].conf);
			fclose(f);
			snprintf(args, sizeof args, "--config '%s'", path);
		} else
			snprintf(args, sizeof args, "%s", bad[i].flag);
		assert_int_equal(onecardd_check(err, sizeof err, args), 1);
		if (strstr(err, bad[i].said) == NULL)
			fail_msg("%s: said \"%s\", not \"%s\"",
			    bad[i].conf ? bad[i].conf : bad[i].flag, err,
			    bad[i].said);
	}
	/* And good ones pass (a code with '_' keeps it). */
	assert_non_null(f = fopen(path, "w"));
	fprintf(f,
	    "[onecardd]\nrate_lookup = 100/200\nrate-write = 5\n"
	    "hospital.XC_1.rate_search = 10/1\nsearch_max_results = 20\n");
	fclose(f);
	snprintf(args, sizeof args, "--config '%s' --rate-search 0", path);
	assert_int_equal(onecardd_check(err, sizeof err, args), 0);
	unlink(path);
}

static void
fhir_answers_429_with_retry_after_from_the_same_bucket(void **state)
{
	struct onecard_conn *c = connect_as("XC006");
	char cmd[2048], out[8192], err[8192];

	(void)state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(
		    lookup(c, "NOBODY"), ONECARD__V1__CODE__NOT_FOUND);
	snprintf(cmd, sizeof cmd,
	    "curl -sS -g --max-time 10 --cert '%s/XC006.pem' --key "
	    "'%s/XC006.key' --cacert '%s/ca.pem' -D /dev/stderr "
	    "-w '\\n%%{http_code}' "
	    "'https://127.0.0.1:%d/fhir/Patient/PNOBODY'",
	    h.certs, h.certs, h.certs, fhir_port);
	assert_int_equal(
	    harness_run2(&h, NULL, out, sizeof out, err, sizeof err, cmd), 0);
	assert_non_null(strstr(out, "\n429"));
	assert_non_null(strstr(out, "\"OperationOutcome\""));
	assert_non_null(strstr(out, "\"throttled\""));
	assert_non_null(strstr(out, "hospital XC006 exceeded 1 lookups/s"));
	assert_non_null(strstr(err, "Retry-After: 1"));
	onecard_close(c);
}

static void
a_hospitals_search_must_name_someone(void **state)
{
	struct onecard_conn *c = connect_as("XC004");
	struct onecard_conn *a = connect_as("admin");
	Onecard__V1__Reply *r;
	char card[16], birth[16];

	(void)state;
	/* Five people born the same day with the same name, and 张三丰. */
	for (int i = 0; i < 5; i++) {
		snprintf(card, sizeof card, "S%d", i);
		assert_int_equal(
		    enroll(c, "XC004", card, "王芳", "1985-03-01", NULL, NULL),
		    ONECARD__V1__CODE__OK);
	}
	assert_int_equal(enroll(c, "XC004", "Z1", "张三丰", "1949-12-31",
			     "13812345678", CNID),
	    ONECARD__V1__CODE__OK);

	/* A birth date alone: refused, naming what is missing. */
	r = search(c, &(struct query){.birth = "1985-03-01"});
	assert_int_equal(r->code, ONECARD__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(r->message, "; name missing"));
	assert_int_equal(r->result_case, ONECARD__V1__REPLY__RESULT__NOT_SET);
	onecard_reply_free(r);
	/* An enumeration, one birth date after another: all refused. */
	for (int d = 1; d <= 28; d++) {
		snprintf(birth, sizeof birth, "1985-03-%02d", d);
		r = search(c, &(struct query){.birth = birth});
		assert_int_equal(r->code, ONECARD__V1__CODE__INVALID_ARGUMENT);
		assert_int_equal(
		    r->result_case, ONECARD__V1__REPLY__RESULT__NOT_SET);
		onecard_reply_free(r);
		r = search(c, &(struct query){.birth = birth, .exact = 1});
		assert_int_equal(r->code, ONECARD__V1__CODE__INVALID_ARGUMENT);
		assert_non_null(strstr(r->message, "; name missing"));
		onecard_reply_free(r);
	}
	/* A name alone, a phone alone, nothing. */
	r = search(c, &(struct query){.name = "王芳"});
	assert_int_equal(r->code, ONECARD__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(r->message, "; birth_date or phone missing"));
	onecard_reply_free(r);
	r = search(c, &(struct query){.phone = "13812345678"});
	assert_int_equal(r->code, ONECARD__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(r->message, "; name missing"));
	onecard_reply_free(r);
	r = search(c, &(struct query){.name = "王芳", .exact = 1});
	assert_int_equal(r->code, ONECARD__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(r->message,
	    "exact search needs a name and a "
	    "birth_date; birth_date missing"));
	onecard_reply_free(r);

	/* A name with a birth date: served, at most search-max-results (3)
	 * for a hospital, ranked or exact; an admin gets all five. */
	r = search(c,
	    &(struct query){
		.name = "王芳", .birth = "1985-03-01", .limit = 50});
	assert_int_equal(r->code, ONECARD__V1__CODE__OK);
	assert_int_equal(r->search->n_patients, 3);
	onecard_reply_free(r);
	r = search(c,
	    &(struct query){.name = "王芳", .birth = "1985-03-01", .exact = 1});
	assert_int_equal(r->code, ONECARD__V1__CODE__OK);
	assert_int_equal(r->search->n_patients, 3);
	onecard_reply_free(r);
	r = search(a,
	    &(struct query){
		.name = "王芳", .birth = "1985-03-01", .limit = 50});
	assert_int_equal(r->code, ONECARD__V1__CODE__OK);
	assert_int_equal(r->search->n_patients, 5);
	onecard_reply_free(r);
	/* Admins are exempt from the guard. */
	r = search(a, &(struct query){.birth = "1985-03-01", .exact = 1});
	assert_int_equal(r->code, ONECARD__V1__CODE__OK);
	assert_true(r->search->n_patients >= 5);
	onecard_reply_free(r);

	/* An identifier names its holder; the birth date beside it lists no
	 * one else. */
	r = search(c, &(struct query){.domain = "hosp:XC004", .value = "S0"});
	assert_int_equal(r->code, ONECARD__V1__CODE__OK);
	assert_int_equal(r->search->n_patients, 1);
	onecard_reply_free(r);
	r = search(c,
	    &(struct query){
		.birth = "1985-03-01", .domain = "hosp:XC004", .value = "S0"});
	assert_int_equal(r->code, ONECARD__V1__CODE__OK);
	assert_int_equal(r->search->n_patients, 1);
	onecard_reply_free(r);
	r = search(c,
	    &(struct query){.birth = "1985-03-01",
		.domain = "hosp:XC004",
		.value = "NOBODY"});
	assert_int_equal(r->code, ONECARD__V1__CODE__OK);
	assert_int_equal(r->search->n_patients, 0);
	onecard_reply_free(r);

	/* The search the audit test looks for. */
	r = search(c,
	    &(struct query){.name = "张三丰",
		.birth = "1949-12-31",
		.phone = "13812345678",
		.domain = "cn-id",
		.value = CNID});
	assert_int_equal(r->code, ONECARD__V1__CODE__OK);
	assert_true(r->search->n_patients >= 1);
	onecard_reply_free(r);
	onecard_close(c);
	onecard_close(a);
}

/* The audit trail, read whole into a malloc'd string. */
static char *
read_audit(void)
{
	FILE *f = fopen(audit_path, "r");
	char *buf = calloc(1, 1 << 22);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 22) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
a_searchs_audit_line_holds_its_criteria_masked(void **state)
{
	char *trail = read_audit(), *line, *end;

	(void)state;
	line = strstr(trail,
	    "\"detail\":\"name=张** birth=1949 "
	    "phone=*******5678 identifier=cn-id=" CNID_MASKED " limit=0\"");
	assert_non_null(line);
	while (line > trail && line[-1] != '\n')
		line--;
	end = strchr(line, '\n');
	assert_non_null(end);
	*end = '\0';
	assert_non_null(strstr(line, "\"actor\":\"XC004\""));
	assert_non_null(strstr(line, "\"op\":\"search\""));
	*end = '\n';
	/* Refused searches too, with what they gave. */
	assert_non_null(
	    strstr(trail, "\"code\":\"INVALID_ARGUMENT\",\"latency_us\""));
	assert_non_null(strstr(trail, "\"detail\":\"birth=1985 limit=0\""));
	/* Nothing anywhere in the trail gives the person away. */
	assert_null(strstr(trail, "张三丰"));
	assert_null(strstr(trail, "1949-12-31"));
	assert_null(strstr(trail, "13812345678"));
	assert_null(strstr(trail, CNID));
	/* A refusal for the rate is there, marked. */
	assert_non_null(strstr(trail, "\"code\":\"RESOURCE_EXHAUSTED\""));
	free(trail);
}

static void
refusals_are_counted_on_metrics(void **state)
{
	char *body = malloc(1 << 20);
	int port = harness_metrics_port(&h);

	(void)state;
	assert_non_null(body);
	assert_true(port > 0);
	assert_int_equal(
	    harness_http_get(port, "/metrics", body, 1 << 20, NULL, 0), 200);
	assert_non_null(
	    strstr(body, "# TYPE onecard_rate_limited_total counter"));
	assert_true(harness_metric(body,
			"onecard_rate_limited_total{hospital="
			"\"XC001\",kind=\"lookup\"}") >= 1);
	assert_true(harness_metric(body,
			"onecard_rate_limited_total{hospital="
			"\"XC003\",kind=\"write\"}") >= 1);
	assert_true(harness_metric(body,
			"onecard_rate_limited_total{hospital="
			"\"XC003\",kind=\"search\"}") >= 1);
	/* FHIR's 429 counts too. */
	assert_true(harness_metric(body,
			"onecard_rate_limited_total{hospital="
			"\"XC006\",kind=\"lookup\"}") >= 1);
	assert_true(harness_metric(body,
			"onecard_rate_limited_total{hospital="
			"\"XC002\",kind=\"lookup\"}") == 0);
	free(body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		hammering_hospital_is_refused_after_its_burst_while_another_is_served),
	    cmocka_unit_test(writes_and_searches_have_buckets_of_their_own),
	    cmocka_unit_test(admins_are_not_limited_unless_configured),
	    cmocka_unit_test(sighup_changes_the_limits_of_open_connections),
	    cmocka_unit_test(bad_values_are_refused_naming_the_key),
	    cmocka_unit_test(
		fhir_answers_429_with_retry_after_from_the_same_bucket),
	    cmocka_unit_test(a_hospitals_search_must_name_someone),
	    cmocka_unit_test(a_searchs_audit_line_holds_its_criteria_masked),
	    cmocka_unit_test(refusals_are_counted_on_metrics),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
