/*
 * test_disclosure.c: the disclosure policy (docs/operations.md,
 * "Disclosure") on every door of a real onecardd. One patient holds a
 * cn-id, a cn-ssc and a card of each of three hospitals; the broker's
 * config file makes the default minimal, gives XC002 full disclosure and
 * masks the cn-id for XC003. Then: binary lookups (with and without
 * target_domains), search results, write replies, pushed events, FHIR reads
 * and $ihe-pix, the CLI's --target, admins, bad values refused naming the
 * key, a SIGHUP that changes the policy under open connections, and a
 * broker with no disclosure setting showing everything as before.
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
#include <jansson.h>

#include "harness.h"
#include "onecard.h"

#define CODE(c) ONECARD__V1__CODE__##c

#define CNID        "11010519491231002X"
#define CNID_MASKED "110105********002X"

static struct harness h;
static char conf[400];
static int fhir_port;
static char pid[64];
static char out[65536];

/* Write the broker's config file: the [onecardd] lines given. */
static void __attribute__((format(printf, 1, 2)))
write_conf(const char *fmt, ...)
{
	FILE *f = fopen(conf, "w");
	va_list ap;

	assert_non_null(f);
	fprintf(f, "[onecardd]\n");
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

/* The policy most tests run under. */
static void
write_test_conf(void)
{
	write_conf("disclosure = minimal\n"
		   "hospital.XC002.disclosure = full\n"
		   "hospital.XC003.disclosure_cn_id = masked\n");
}

/* Run a shell command line as cn; its exit status, stdout in out. */
static int __attribute__((format(printf, 2, 3)))
run(const char *cn, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return harness_run(&h, cn, out, sizeof out, cmd);
}

/* Connect as cn. */
static struct onecard_conn *
connect_as(const char *cn)
{
	struct onecard_conn *conn = NULL;

	assert_int_equal(harness_connect(&h, cn, &conn), ONECARD_OK);
	return conn;
}

/* The value p holds in domain, or NULL. */
static const char *
id_value(const Onecard__V1__Patient *p, const char *domain)
{
	assert_non_null(p);
	for (size_t i = 0; i < p->n_identifiers; i++)
		if (strcmp(p->identifiers[i]->domain, domain) == 0)
			return p->identifiers[i]->value;
	return NULL;
}

/* Does p hold domain=value? */
static int
has_id(const Onecard__V1__Patient *p, const char *domain, const char *value)
{
	for (size_t i = 0; i < p->n_identifiers; i++)
		if (strcmp(p->identifiers[i]->domain, domain) == 0 &&
		    strcmp(p->identifiers[i]->value, value) == 0)
			return 1;
	return 0;
}

/* Look up cn-id=CNID on conn naming the targets (n of them); OK asserted.
 */
static Onecard__V1__Reply *
lookup(struct onecard_conn *conn, const char *const *targets, size_t n)
{
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *r = NULL;

	id.domain = "cn-id";
	id.value = CNID;
	assert_int_equal(onecard_lookup(conn, &id, targets, n, &r), ONECARD_OK);
	assert_int_equal(r->code, CODE(OK));
	assert_non_null(r->patient);
	return r;
}

/* What a caller under minimal sees of the test patient: its own card, the
 * cn-id (as cnid) and cn-ssc, and no other hospital's. */
static void
assert_minimal(const Onecard__V1__Patient *p, const char *own, const char *cnid)
{
	char domain[32];

	snprintf(domain, sizeof domain, "hosp:%s", own);
	assert_non_null(id_value(p, domain));
	assert_string_equal(id_value(p, "cn-id"), cnid);
	assert_string_equal(id_value(p, "cn-ssc"), "SSC0001");
	for (int i = 1; i <= 3; i++) {
		snprintf(domain, sizeof domain, "hosp:XC00%d", i);
		if (strcmp(domain + 5, own) != 0 && id_value(p, domain) != NULL)
			fail_msg(
			    "%s sees %s=%s", own, domain, id_value(p, domain));
	}
}

/* Every identifier of the test patient, in full. */
static void
assert_everything(const Onecard__V1__Patient *p)
{
	assert_true(has_id(p, "cn-id", CNID));
	assert_true(has_id(p, "cn-ssc", "SSC0001"));
	assert_true(has_id(p, "hosp:XC001", "MRN-1"));
	assert_true(has_id(p, "hosp:XC002", "OLD-2"));
	assert_true(has_id(p, "hosp:XC003", "V-3"));
}

/* The latest "fhir on 127.0.0.1:PORT" of the broker's log and, in *n, how
 * many starts have printed one. */
static int
fhir_port_now(int *n)
{
	static const char tag[] = "fhir on 127.0.0.1:";
	char log[65536];
	const char *p, *last = NULL;

	*n = 0;
	if (harness_log(&h, log, sizeof log) == -1)
		return -1;
	for (p = log; (p = strstr(p, tag)) != NULL; p++, (*n)++)
		last = p;
	return last ? atoi(last + strlen(tag)) : -1;
}

/* Restart the broker with the config file and the FHIR door, and wait for
 * the door's line (it may come after "listening on"). */
static int
restart_with_conf(void)
{
	const char *const extra[] = {
	    "--config", conf, "--fhir-listen", "127.0.0.1:0", NULL};
	int before, now;

	(void)fhir_port_now(&before);
	if (harness_stop(&h, SIGTERM) != 0 || harness_restart(&h, extra) != 0)
		return -1;
	for (int i = 0; i < 200; i++) {
		fhir_port = fhir_port_now(&now);
		if (now > before)
			return fhir_port > 0 ? 0 : -1;
		usleep(50000);
	}
	return -1;
}

static int
setup(void **state)
{
	static const char *const codes[] = {"XC001", "XC002", "XC003", NULL};
	json_t *o;

	(void)state;
	if (harness_start(&h, codes, NULL) == -1)
		return -1;
	snprintf(conf, sizeof conf, "%s/onecardd.conf", h.dir);
	write_test_conf();
	if (restart_with_conf() == -1)
		return -1;
	/* One patient, known to all three hospitals. */
	if (run("XC001",
		"onecard --json enroll --name 'Li Hua' --birth 1949-12-31 "
		"cn-id=" CNID " cn-ssc=SSC0001 hosp:XC001=MRN-1") != 0 ||
	    run("XC002", "onecard link cn-id=" CNID " hosp:XC002=OLD-2") != 0 ||
	    run("XC003", "onecard link cn-id=" CNID " hosp:XC003=V-3") != 0)
		return -1;
	if (run("admin", "onecard --json lookup cn-id=" CNID) != 0 ||
	    (o = json_loads(out, 0, NULL)) == NULL)
		return -1;
	snprintf(pid, sizeof pid, "%s",
	    json_string_value(json_object_get(o, "patient_id")));
	json_decref(o);
	return pid[0] == 'P' ? 0 : -1;
}

static int
teardown(void **state)
{
	int status;

	(void)state;
	status = harness_stop(&h, SIGTERM);
	harness_cleanup(&h);
	return status == 0 ? 0 : -1;
}

static void
minimal_lookup_hides_other_hospitals_numbers_and_shows_the_cn_id(void **state)
{
	struct onecard_conn *conn = connect_as("XC001");
	Onecard__V1__Reply *r = lookup(conn, NULL, 0);

	(void)state;
	assert_minimal(r->patient, "XC001", CNID);
	assert_string_equal(id_value(r->patient, "hosp:XC001"), "MRN-1");
	onecard_reply_free(r);
	onecard_close(conn);
}

static void
minimal_lookup_shows_the_domains_it_names(void **state)
{
	static const char *const one[] = {"hosp:XC002"};
	static const char *const two[] = {"hosp:XC002", "hosp:XC003"};
	struct onecard_conn *conn = connect_as("XC001");
	Onecard__V1__Reply *r;

	(void)state;
	r = lookup(conn, one, 1);
	assert_string_equal(id_value(r->patient, "hosp:XC002"), "OLD-2");
	assert_null(id_value(r->patient, "hosp:XC003"));
	assert_string_equal(id_value(r->patient, "hosp:XC001"), "MRN-1");
	onecard_reply_free(r);
	r = lookup(conn, two, 2);
	assert_everything(r->patient);
	onecard_reply_free(r);
	/* Twice more: the second answer comes from the lookup cache. */
	for (int i = 0; i < 2; i++) {
		r = lookup(conn, NULL, 0);
		assert_minimal(r->patient, "XC001", CNID);
		onecard_reply_free(r);
	}
	onecard_close(conn);
}

static void
a_hospital_set_to_full_sees_every_identifier(void **state)
{
	struct onecard_conn *conn = connect_as("XC002");
	Onecard__V1__Reply *r = lookup(conn, NULL, 0);

	(void)state;
	assert_everything(r->patient);
	onecard_reply_free(r);
	onecard_close(conn);
}

static void
a_masked_hospital_sees_the_cn_id_masked(void **state)
{
	static const char *const one[] = {"hosp:XC001"};
	struct onecard_conn *conn = connect_as("XC003");
	Onecard__V1__Reply *r = lookup(conn, NULL, 0);

	(void)state;
	assert_minimal(r->patient, "XC003", CNID_MASKED);
	onecard_reply_free(r);
	r = lookup(conn, one, 1);
	assert_string_equal(id_value(r->patient, "hosp:XC001"), "MRN-1");
	assert_string_equal(id_value(r->patient, "cn-id"), CNID_MASKED);
	onecard_reply_free(r);
	onecard_close(conn);
}

static void
an_admin_sees_everything(void **state)
{
	struct onecard_conn *conn = connect_as("admin");
	Onecard__V1__Reply *r = lookup(conn, NULL, 0);

	(void)state;
	assert_everything(r->patient);
	onecard_reply_free(r);
	onecard_close(conn);
}

static void
a_malformed_target_domain_is_invalid_argument(void **state)
{
	static const char *const bad[] = {"hosp:XC002", "hosp:no good"};
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	struct onecard_conn *conn = connect_as("XC002");
	Onecard__V1__Reply *r = NULL;

	(void)state;
	id.domain = "cn-id";
	id.value = CNID;
	assert_int_equal(onecard_lookup(conn, &id, bad, 2, &r), ONECARD_OK);
	assert_int_equal(r->code, CODE(INVALID_ARGUMENT));
	assert_non_null(strstr(r->message, "target_domains[1]"));
	onecard_reply_free(r);
	onecard_close(conn);
}

static void
search_results_are_filtered(void **state)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Search s = ONECARD__V1__SEARCH__INIT;
	struct onecard_conn *conn = connect_as("XC003");
	Onecard__V1__Reply *r = NULL;

	(void)state;
	s.name = "Li Hua";
	s.birth_date = "1949-12-31";
	req.op_case = ONECARD__V1__REQUEST__OP_SEARCH;
	req.search = &s;
	for (int exact = 0; exact <= 1; exact++) {
		s.exact = exact;
		assert_int_equal(onecard_call(conn, &req, &r), ONECARD_OK);
		assert_int_equal(r->code, CODE(OK));
		assert_int_equal(r->search->n_patients, 1);
		assert_minimal(r->search->patients[0], "XC003", CNID_MASKED);
		if (!exact) {
			assert_int_equal(r->search->n_matches, 1);
			assert_minimal(r->search->matches[0]->patient, "XC003",
			    CNID_MASKED);
		}
		onecard_reply_free(r);
	}
	onecard_close(conn);
}

static void
write_replies_are_filtered(void **state)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Update u = ONECARD__V1__UPDATE__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	struct onecard_conn *conn = connect_as("XC001");
	Onecard__V1__Reply *r = NULL;

	(void)state;
	id.domain = "hosp:XC001";
	id.value = "MRN-1";
	d.phone = "13800000000";
	u.identifier = &id;
	u.demographics = &d;
	req.op_case = ONECARD__V1__REQUEST__OP_UPDATE;
	req.update = &u;
	assert_int_equal(onecard_call(conn, &req, &r), ONECARD_OK);
	assert_int_equal(r->code, CODE(OK));
	assert_minimal(r->patient, "XC001", CNID);
	onecard_reply_free(r);
	onecard_close(conn);
	/* And the CLI's enroll of a known card (an EnrollResult). */
	assert_int_equal(
	    run("XC001", "onecard --json enroll hosp:XC001=MRN-1"), 0);
	assert_non_null(strstr(out, "MRN-1"));
	assert_null(strstr(out, "OLD-2"));
	assert_null(strstr(out, "V-3"));
}

/* Subscribe on conn from now. */
static void
subscribe_now(struct onecard_conn *conn)
{
	uint64_t last = 0;

	assert_int_equal(onecard_subscribe(conn, 0, 1, &last), ONECARD_OK);
}

/* The next event on conn. */
static Onecard__V1__Reply *
next_event(struct onecard_conn *conn)
{
	Onecard__V1__Reply *ev = NULL;

	assert_int_equal(onecard_next_event(conn, 10000, &ev), ONECARD_OK);
	assert_non_null(ev->event);
	return ev;
}

static void
events_are_filtered_for_each_subscriber(void **state)
{
	struct onecard_conn *c1 = connect_as("XC001");
	struct onecard_conn *c2 = connect_as("XC002");
	struct onecard_conn *c3 = connect_as("XC003");
	struct onecard_conn *ca = connect_as("admin");
	Onecard__V1__Reply *ev;

	(void)state;
	subscribe_now(c1);
	subscribe_now(c2);
	subscribe_now(c3);
	subscribe_now(ca);
	/* XC002 gives the patient a second card: everyone hears of it. */
	assert_int_equal(
	    run("XC002", "onecard link cn-id=" CNID " hosp:XC002=NEW-2"), 0);

	ev = next_event(c1);
	assert_string_equal(ev->event->op, "link");
	assert_minimal(ev->event->patient, "XC001", CNID);
	assert_null(strstr(ev->event->detail, "NEW-2"));
	onecard_reply_free(ev);

	ev = next_event(c3);
	assert_minimal(ev->event->patient, "XC003", CNID_MASKED);
	assert_null(strstr(ev->event->detail, "NEW-2"));
	onecard_reply_free(ev);

	for (int i = 0; i < 2; i++) {
		ev = next_event(i == 0 ? c2 : ca);
		assert_everything(ev->event->patient);
		assert_non_null(strstr(ev->event->detail, "hosp:XC002=NEW-2"));
		onecard_reply_free(ev);
	}
	onecard_close(c1);
	onecard_close(c2);
	onecard_close(c3);
	onecard_close(ca);
	assert_int_equal(run("XC002", "onecard unlink hosp:XC002=NEW-2"), 0);
}

/*
 * GET path as cn over the FHIR door: the HTTP status, the body parsed into
 * *body (NULL when not JSON).
 */
static int
fhir_get(const char *cn, const char *path, json_t **body)
{
	char cmd[4096], *nl;

	snprintf(cmd, sizeof cmd,
	    "curl -sS -g --max-time 10 --cert '%s/%s.pem' --key '%s/%s.key' "
	    "--cacert '%s/ca.pem' -w '\\n%%{http_code}' "
	    "'https://127.0.0.1:%d%s'",
	    h.certs, cn, h.certs, cn, h.certs, fhir_port, path);
	memset(out, 0, sizeof out);
	(void)harness_run(&h, NULL, out, sizeof out, cmd);
	*body = NULL;
	if ((nl = strrchr(out, '\n')) == NULL)
		return 0;
	*nl = '\0';
	*body = json_loads(out, 0, NULL);
	return atoi(nl + 1);
}

/* The value a FHIR identifier list holds for system urn:onecard:domain,
 * or NULL. In a Parameters resource, the targetIdentifier values. */
static const char *
fhir_value(json_t *o, const char *domain)
{
	char system[64];
	json_t *ids = json_object_get(o, "identifier"), *e;
	size_t i;

	snprintf(system, sizeof system, "urn:onecard:%s", domain);
	if (ids == NULL) {
		json_array_foreach(json_object_get(o, "parameter"), i, e)
		{
			json_t *v = json_object_get(e, "valueIdentifier");

			if (v != NULL &&
			    strcmp(
				json_string_value(json_object_get(v, "system")),
				system) == 0)
				return json_string_value(
				    json_object_get(v, "value"));
		}
		return NULL;
	}
	json_array_foreach(ids, i, e)
	{
		if (strcmp(json_string_value(json_object_get(e, "system")),
			system) == 0)
			return json_string_value(json_object_get(e, "value"));
	}
	return NULL;
}

static void
fhir_patient_read_follows_the_policy(void **state)
{
	char path[128];
	json_t *o;

	(void)state;
	snprintf(path, sizeof path, "/fhir/Patient/%s", pid);
	assert_int_equal(fhir_get("XC001", path, &o), 200);
	assert_string_equal(fhir_value(o, "cn-id"), CNID);
	assert_string_equal(fhir_value(o, "hosp:XC001"), "MRN-1");
	assert_null(fhir_value(o, "hosp:XC002"));
	assert_null(fhir_value(o, "hosp:XC003"));
	json_decref(o);

	assert_int_equal(fhir_get("XC003", path, &o), 200);
	assert_string_equal(fhir_value(o, "cn-id"), CNID_MASKED);
	assert_null(fhir_value(o, "hosp:XC001"));
	json_decref(o);

	assert_int_equal(fhir_get("XC002", path, &o), 200);
	assert_string_equal(fhir_value(o, "hosp:XC003"), "V-3");
	assert_string_equal(fhir_value(o, "hosp:XC001"), "MRN-1");
	json_decref(o);

	assert_int_equal(fhir_get("admin", path, &o), 200);
	assert_string_equal(fhir_value(o, "hosp:XC003"), "V-3");
	assert_string_equal(fhir_value(o, "cn-id"), CNID);
	json_decref(o);
}

/* A card presented is the caller's to see: looking up another hospital's
 * card under minimal shows that card, and still no third hospital's. */
static void
minimal_lookup_shows_the_card_it_presented(void **state)
{
	struct onecard_conn *conn = connect_as("XC001");
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *r = NULL;

	(void)state;
	id.domain = "hosp:XC002";
	id.value = "OLD-2";
	assert_int_equal(onecard_lookup(conn, &id, NULL, 0, &r), ONECARD_OK);
	assert_int_equal(r->code, CODE(OK));
	assert_string_equal(id_value(r->patient, "hosp:XC002"), "OLD-2");
	assert_string_equal(id_value(r->patient, "hosp:XC001"), "MRN-1");
	assert_null(id_value(r->patient, "hosp:XC003"));
	onecard_reply_free(r);
	onecard_close(conn);
}

static void
fhir_pix_target_system_names_the_domain(void **state)
{
	json_t *o;

	(void)state;
	/* Without targetSystem: what minimal shows. */
	assert_int_equal(fhir_get("XC001",
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:cn-id|" CNID,
			     &o),
	    200);
	assert_string_equal(fhir_value(o, "hosp:XC001"), "MRN-1");
	assert_string_equal(fhir_value(o, "cn-id"), CNID);
	assert_null(fhir_value(o, "hosp:XC002"));
	json_decref(o);
	/* targetSystem names XC002's domain: its number is the answer. */
	assert_int_equal(fhir_get("XC001",
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:cn-id|" CNID
			     "&targetSystem=urn:onecard:hosp:XC002",
			     &o),
	    200);
	assert_string_equal(fhir_value(o, "hosp:XC002"), "OLD-2");
	assert_null(fhir_value(o, "hosp:XC001"));
	json_decref(o);
	/* A masked hospital asking for the cn-id gets it masked. */
	assert_int_equal(fhir_get("XC003",
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:hosp:XC003|V-3"
			     "&targetSystem=urn:onecard:cn-id",
			     &o),
	    200);
	assert_string_equal(fhir_value(o, "cn-id"), CNID_MASKED);
	json_decref(o);
}

static void
cli_lookup_target_names_a_domain(void **state)
{
	(void)state;
	assert_int_equal(run("XC001", "onecard --json lookup cn-id=" CNID), 0);
	assert_non_null(strstr(out, "MRN-1"));
	assert_null(strstr(out, "OLD-2"));
	assert_int_equal(run("XC001",
			     "onecard --json lookup --target hosp:XC002 "
			     "cn-id=" CNID),
	    0);
	assert_non_null(strstr(out, "OLD-2"));
	assert_null(strstr(out, "V-3"));
	assert_int_equal(run("XC001",
			     "onecard lookup cn-id=" CNID
			     " --target hosp:XC002 --target hosp:XC003"),
	    0);
	assert_non_null(strstr(out, "OLD-2"));
	assert_non_null(strstr(out, "V-3"));
	/* A value where a domain belongs is a usage error, exit 2. */
	assert_int_equal(run("XC001",
			     "onecard lookup --target hosp:XC002=OLD-2 "
			     "cn-id=" CNID),
	    2);
}

/* Run onecardd --check-config with args; its exit status, stderr in err. */
static int
check_config(char *err, size_t errlen, const char *args)
{
	char cmd[2048];

	snprintf(cmd, sizeof cmd,
	    "onecardd --check-config --listen 127.0.0.1:0 --db '%s/x.db' "
	    "--cert '%s/broker.pem' --key '%s/broker.key' --ca '%s/ca.pem' %s",
	    h.dir, h.certs, h.certs, h.certs, args);
	return harness_run2(&h, NULL, out, sizeof out, err, errlen, cmd);
}

static void
bad_values_are_refused_naming_the_key(void **state)
{
	char err[4096], args[600], bad[400];
	FILE *f;
	static const struct {
		const char *line, *named;
	} cases[] = {
	    {"disclosure = everything", "--disclosure"},
	    {"disclosure-cn-id = hidden", "--disclosure-cn-id"},
	    {"hospital.XC001.disclosure = partial",
		"hospital.XC001.disclosure"},
	    {"hospital.XC001.disclosure_cn_id = half",
		"hospital.XC001.disclosure-cn-id"},
	    {"hospital.XC001.colour = red", "unknown per-hospital key"},
	    {"hospital.XC 1.disclosure = full", "hospital.XC 1.disclosure"},
	    {"hospital.disclosure = full", "hospital.CODE.KEY"},
	};

	(void)state;
	assert_int_equal(check_config(err, sizeof err, "--disclosure fuul"), 1);
	assert_non_null(strstr(err, "--disclosure: 'fuul'"));
	assert_int_equal(check_config(err, sizeof err,
			     "--disclosure minimal --disclosure-cn-id masked"),
	    0);
	snprintf(bad, sizeof bad, "%s/bad.conf", h.dir);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_non_null(f = fopen(bad, "w"));
		fprintf(f, "[onecardd]\n%s\n", cases[i].line);
		fclose(f);
		snprintf(args, sizeof args, "--config '%s'", bad);
		assert_int_equal(check_config(err, sizeof err, args), 1);
		if (strstr(err, cases[i].named) == NULL)
			fail_msg("'%s' refused without naming '%s': %s",
			    cases[i].line, cases[i].named, err);
	}
	/* The test's own file is good, with a code holding an underscore. */
	assert_non_null(f = fopen(bad, "w"));
	fprintf(f, "[onecardd]\nhospital.XC_01.disclosure = minimal\n");
	fclose(f);
	assert_int_equal(check_config(err, sizeof err, args), 0);
	snprintf(args, sizeof args, "--config '%s'", conf);
	assert_int_equal(check_config(err, sizeof err, args), 0);
}

/* Wait until a lookup on conn shows XC002's number (want 1) or hides it
 * (want 0); fail after 10 s. */
static void
wait_for_xc002(struct onecard_conn *conn, int want)
{
	for (int i = 0; i < 200; i++) {
		Onecard__V1__Reply *r = lookup(conn, NULL, 0);
		int seen = id_value(r->patient, "hosp:XC002") != NULL;

		onecard_reply_free(r);
		if (seen == want)
			return;
		usleep(50000);
	}
	fail_msg("the policy did not change within 10 s");
}

static void
sighup_reloads_the_policy_for_open_connections(void **state)
{
	struct onecard_conn *conn = connect_as("XC001");
	char log[65536];

	(void)state;
	wait_for_xc002(conn, 0);
	write_test_conf();
	{
		FILE *f = fopen(conf, "a");

		assert_non_null(f);
		fprintf(f, "hospital.XC001.disclosure = full\n");
		fclose(f);
	}
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	wait_for_xc002(conn, 1);
	/* A bad file on the next reload: refused, the policy stays. */
	write_conf("disclosure = minimal\nhospital.XC001.disclosure = nope\n");
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(harness_log(&h, log, sizeof log), 0);
		if (strstr(log, "disclosure policy in force stays") != NULL)
			break;
		usleep(50000);
	}
	assert_non_null(strstr(log, "hospital.XC001.disclosure"));
	assert_non_null(strstr(log, "disclosure policy in force stays"));
	wait_for_xc002(conn, 1);
	/* Back to the test's policy. */
	write_test_conf();
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	wait_for_xc002(conn, 0);
	onecard_close(conn);
}

static void
without_a_disclosure_setting_every_identifier_is_shown(void **state)
{
	struct onecard_conn *conn;
	Onecard__V1__Reply *r;
	json_t *o;
	char path[128];

	(void)state;
	write_conf("; nothing about disclosure\n");
	assert_int_equal(restart_with_conf(), 0);
	for (int i = 1; i <= 3; i++) {
		char cn[8];

		snprintf(cn, sizeof cn, "XC00%d", i);
		conn = connect_as(cn);
		r = lookup(conn, NULL, 0);
		assert_everything(r->patient);
		onecard_reply_free(r);
		onecard_close(conn);
	}
	snprintf(path, sizeof path, "/fhir/Patient/%s", pid);
	assert_int_equal(fhir_get("XC001", path, &o), 200);
	assert_string_equal(fhir_value(o, "hosp:XC003"), "V-3");
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		minimal_lookup_hides_other_hospitals_numbers_and_shows_the_cn_id),
	    cmocka_unit_test(minimal_lookup_shows_the_domains_it_names),
	    cmocka_unit_test(a_hospital_set_to_full_sees_every_identifier),
	    cmocka_unit_test(a_masked_hospital_sees_the_cn_id_masked),
	    cmocka_unit_test(an_admin_sees_everything),
	    cmocka_unit_test(a_malformed_target_domain_is_invalid_argument),
	    cmocka_unit_test(search_results_are_filtered),
	    cmocka_unit_test(write_replies_are_filtered),
	    cmocka_unit_test(events_are_filtered_for_each_subscriber),
	    cmocka_unit_test(fhir_patient_read_follows_the_policy),
	    cmocka_unit_test(minimal_lookup_shows_the_card_it_presented),
	    cmocka_unit_test(fhir_pix_target_system_names_the_domain),
	    cmocka_unit_test(cli_lookup_target_names_a_domain),
	    cmocka_unit_test(bad_values_are_refused_naming_the_key),
	    cmocka_unit_test(sighup_reloads_the_policy_for_open_connections),
	    cmocka_unit_test(
		without_a_disclosure_setting_every_identifier_is_shown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
