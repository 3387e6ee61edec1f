/*
 * test_fhir_pdq.c: the FHIR door's searches and writes (docs/fhir.md) on a
 * real onecardd, asked with curl: PDQm (GET and POST _search) with its
 * Bundle, paging and refusals; $match with scores, grades,
 * onlyCertainMatches and count; the PIXm feed's conditional PUT (create,
 * update, If-Match, link, merge) and DELETE (unlink), each checked through
 * the binary door's CLI or a read; and the bodies the door refuses.
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

static struct harness h;
static int fhir_port;
static char audit_dir[64] = "/tmp/onecard-fhirpdq-audit.XXXXXX";
static char audit_path[128];
static char out[131072], headers[8192];
static char zhang[64], wang1[64], wang2[64];

/* Run a shell command line as cn; its exit status, stdout in out. */
static int run(const char *cn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int
run(const char *cn, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return harness_run(&h, cn, out, sizeof out, cmd);
}

/*
 * method path as cn, with body (NULL: none) of type ctype and the extra
 * curl arguments; the HTTP status (0 when no answer came), the body parsed
 * into *o when it is JSON (else NULL), the response headers in headers.
 */
static int
fhir(const char *cn, const char *method, const char *path, const char *ctype,
    const char *body, const char *extra, json_t **o)
{
	char cmd[8192], bodyarg[512] = "", hpath[320], bpath[320];
	FILE *f;
	char *nl;
	int status;
	size_t n;

	*o = NULL;
	snprintf(hpath, sizeof hpath, "%s/headers.txt", h.dir);
	snprintf(bpath, sizeof bpath, "%s/body.json", h.dir);
	if (body != NULL) {
		assert_non_null(f = fopen(bpath, "w"));
		fwrite(body, 1, strlen(body), f);
		fclose(f);
		snprintf(bodyarg, sizeof bodyarg,
		    "-H 'Content-Type: %s' --data-binary '@%s'", ctype, bpath);
	}
	snprintf(cmd, sizeof cmd,
	    "curl -sS -g --max-time 10 -X %s --cert '%s/%s.pem' "
	    "--key '%s/%s.key' --cacert '%s/ca.pem' -D '%s' %s %s "
	    "-w '\\n%%{http_code}' 'https://127.0.0.1:%d%s'",
	    method, h.certs, cn, h.certs, cn, h.certs, hpath, bodyarg,
	    extra ? extra : "", fhir_port, path);
	memset(out, 0, sizeof out);
	(void)harness_run(&h, NULL, out, sizeof out, cmd);
	headers[0] = '\0';
	if ((f = fopen(hpath, "r")) != NULL) {
		n = fread(headers, 1, sizeof headers - 1, f);
		headers[n] = '\0';
		fclose(f);
	}
	if ((nl = strrchr(out, '\n')) == NULL)
		return 0;
	*nl = '\0';
	status = atoi(nl + 1);
	*o = json_loads(out, 0, NULL);
	if (getenv("FHIR_DEBUG"))
		fprintf(stderr, "%s %s -> %d %s\n", method, path, status, out);
	return status;
}

/* GET path as cn. */
static int
get(const char *cn, const char *path, json_t **o)
{
	return fhir(cn, "GET", path, NULL, NULL, NULL, o);
}

/* The patient id that `onecard --json enroll` printed in out. */
static void
json_pid(char *dst, size_t len)
{
	json_t *o = json_loads(out, 0, NULL);
	const char *s;

	assert_non_null(o);
	s = json_string_value(json_object_get(o, "patient_id"));
	if (s == NULL)
		s = json_string_value(json_object_get(
		    json_object_get(o, "patient"), "patient_id"));
	assert_non_null(s);
	snprintf(dst, len, "%s", s);
	json_decref(o);
}

/* The diagnostics of an OperationOutcome. */
static const char *
diagnostics(json_t *o)
{
	assert_non_null(o);
	assert_string_equal(
	    json_string_value(json_object_get(o, "resourceType")),
	    "OperationOutcome");
	return json_string_value(json_object_get(
	    json_array_get(json_object_get(o, "issue"), 0), "diagnostics"));
}

/* A Bundle's total, after checking it is a searchset. */
static long long
bundle_total(json_t *b)
{
	assert_non_null(b);
	assert_string_equal(
	    json_string_value(json_object_get(b, "resourceType")), "Bundle");
	assert_string_equal(
	    json_string_value(json_object_get(b, "type")), "searchset");
	return json_integer_value(json_object_get(b, "total"));
}

/* Entry i's resource id and, through *score, its search.score. */
static const char *
entry_id(json_t *b, size_t i, double *score)
{
	json_t *e = json_array_get(json_object_get(b, "entry"), i);

	assert_non_null(e);
	if (score != NULL)
		*score = json_number_value(
		    json_object_get(json_object_get(e, "search"), "score"));
	return json_string_value(
	    json_object_get(json_object_get(e, "resource"), "id"));
}

/* The match-grade code of entry i. */
static const char *
entry_grade(json_t *b, size_t i)
{
	json_t *e = json_array_get(json_object_get(b, "entry"), i);
	json_t *x = json_array_get(
	    json_object_get(json_object_get(e, "search"), "extension"), 0);

	assert_string_equal(json_string_value(json_object_get(x, "url")),
	    "http://hl7.org/fhir/StructureDefinition/match-grade");
	return json_string_value(json_object_get(x, "valueCode"));
}

static int
setup(void **state)
{
	static const char *const codes[] = {"XC001", "XC002", NULL};
	const char *const extra[] = {"--fhir-listen", "127.0.0.1:0",
	    "--audit-log", audit_path, "--fhir-system",
	    "cn-ssc=urn:oid:1.2.156.112604.1", NULL};
	char log[65536], *p;

	(void)state;
	if (mkdtemp(audit_dir) == NULL)
		return -1;
	snprintf(audit_path, sizeof audit_path, "%s/audit.log", audit_dir);
	if (harness_start(&h, codes, extra) == -1 ||
	    harness_log(&h, log, sizeof log))
		return -1;
	if ((p = strstr(log, "fhir on 127.0.0.1:")) == NULL)
		return -1;
	fhir_port = atoi(p + strlen("fhir on 127.0.0.1:"));
	if (run("XC001",
		"onecard --json enroll --name '张伟' --sex male "
		"--birth 1980-01-02 --phone 13800001111 "
		"hosp:XC001=MRN-1 cn-ssc=SSC001") != 0)
		return -1;
	json_pid(zhang, sizeof zhang);
	if (run("XC001",
		"onecard --json enroll --name '王芳' --sex female "
		"--birth 1990-05-05 --phone 13900002222 hosp:XC001=MRN-2") != 0)
		return -1;
	json_pid(wang1, sizeof wang1);
	if (run("XC002",
		"onecard --json enroll --name '王芳' --sex female "
		"--birth 1990-05-05 hosp:XC002=OLD-2") != 0)
		return -1;
	json_pid(wang2, sizeof wang2);
	return 0;
}

static int
teardown(void **state)
{
	int status;

	(void)state;
	status = harness_stop(&h, SIGTERM);
	harness_cleanup(&h);
	unlink(audit_path);
	rmdir(audit_dir);
	return status == 0 ? 0 : -1;
}

static void
search_by_identifier_finds_the_holder(void **state)
{
	json_t *b, *e;
	double score;

	(void)state;
	assert_int_equal(get("XC001",
			     "/fhir/Patient?identifier=urn:onecard:hosp:XC001|"
			     "MRN-1",
			     &b),
	    200);
	assert_int_equal(bundle_total(b), 1);
	assert_string_equal(entry_id(b, 0, &score), zhang);
	assert_true(score > 0.99);
	assert_string_equal(entry_grade(b, 0), "certain");
	e = json_array_get(json_object_get(b, "entry"), 0);
	assert_non_null(strstr(json_string_value(json_object_get(e, "fullUrl")),
	    "https://127.0.0.1"));
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(e, "search"), "mode")),
	    "match");
	json_decref(b);
}

static void
search_by_name_and_birth_date_ranks_and_splits_the_name(void **state)
{
	json_t *b, *res, *name;

	(void)state;
	/* family and given are joined as the registry keeps a name. */
	assert_int_equal(get("XC001",
			     "/fhir/Patient?family=%E5%BC%A0&given=%E4%BC%9F&"
			     "birthdate=1980-01-02&gender=male",
			     &b),
	    200);
	assert_true(bundle_total(b) >= 1);
	assert_string_equal(entry_id(b, 0, NULL), zhang);
	res = json_object_get(
	    json_array_get(json_object_get(b, "entry"), 0), "resource");
	name = json_array_get(json_object_get(res, "name"), 0);
	assert_string_equal(
	    json_string_value(json_object_get(name, "family")), "张");
	assert_string_equal(
	    json_string_value(json_object_get(name, "text")), "张伟");
	json_decref(b);
	/* A same-sounding name still finds him: the search is the
	 * matcher's. */
	assert_int_equal(get("XC001",
			     "/fhir/Patient?family=%E7%AB%A0&given=%E4%BC%9F&"
			     "birthdate=1980-01-02",
			     &b),
	    200);
	assert_true(bundle_total(b) >= 1);
	assert_string_equal(entry_id(b, 0, NULL), zhang);
	json_decref(b);
}

static void
search_without_a_hit_is_200_with_total_0(void **state)
{
	json_t *b;

	(void)state;
	assert_int_equal(get("XC001",
			     "/fhir/Patient?identifier=urn:onecard:hosp:XC001|"
			     "NOBODY",
			     &b),
	    200);
	assert_int_equal(bundle_total(b), 0);
	assert_int_equal(json_array_size(json_object_get(b, "entry")), 0);
	json_decref(b);
	assert_int_equal(get("XC001",
			     "/fhir/Patient?family:exact=%E7%AB%A0&given:exact="
			     "%E4%BC%9F&birthdate=1980-01-02",
			     &b),
	    200);
	assert_int_equal(bundle_total(b), 0);
	json_decref(b);
	assert_int_equal(get("XC001",
			     "/fhir/Patient?family:exact=%E5%BC%A0&given:exact="
			     "%E4%BC%9F&birthdate=1980-01-02",
			     &b),
	    200);
	assert_int_equal(bundle_total(b), 1);
	assert_string_equal(entry_id(b, 0, NULL), zhang);
	json_decref(b);
}

static void
search_pages_with_count_and_a_next_link(void **state)
{
	json_t *b, *link;
	const char *first, *next = NULL, *p;
	char path[1024], id0[64];

	(void)state;
	assert_int_equal(get("admin",
			     "/fhir/Patient?family=%E7%8E%8B&given=%E8%8A%B3&"
			     "birthdate=1990-05-05&_count=1",
			     &b),
	    200);
	assert_int_equal(bundle_total(b), 2);
	assert_int_equal(json_array_size(json_object_get(b, "entry")), 1);
	first = entry_id(b, 0, NULL);
	assert_true(strcmp(first, wang1) == 0 || strcmp(first, wang2) == 0);
	snprintf(id0, sizeof id0, "%s", first);
	link = json_object_get(b, "link");
	for (size_t i = 0; i < json_array_size(link); i++)
		if (strcmp(json_string_value(json_object_get(
			       json_array_get(link, i), "relation")),
			"next") == 0)
			next = json_string_value(
			    json_object_get(json_array_get(link, i), "url"));
	assert_non_null(next);
	assert_non_null(p = strstr(next, "/fhir/Patient?"));
	snprintf(path, sizeof path, "%s", p);
	json_decref(b);
	assert_int_equal(get("admin", path, &b), 200);
	assert_int_equal(json_array_size(json_object_get(b, "entry")), 1);
	assert_string_not_equal(entry_id(b, 0, NULL), id0);
	json_decref(b);
}

static void
post_search_takes_a_form_body(void **state)
{
	json_t *b;

	(void)state;
	assert_int_equal(fhir("XC001", "POST", "/fhir/Patient/_search",
			     "application/x-www-form-urlencoded",
			     "identifier=urn:onecard:cn-ssc|SSC001", NULL, &b),
	    200);
	assert_int_equal(bundle_total(b), 1);
	assert_string_equal(entry_id(b, 0, NULL), zhang);
	json_decref(b);
	/* cn-ssc is named by an OID here (--fhir-system): asked by it,
	 * and answered with it. */
	assert_int_equal(
	    fhir("XC001", "POST", "/fhir/Patient/_search",
		"application/x-www-form-urlencoded",
		"identifier=urn:oid:1.2.156.112604.1|SSC001", NULL, &b),
	    200);
	assert_int_equal(bundle_total(b), 1);
	assert_non_null(strstr(out,
	    "{\"system\":\"urn:oid:1.2.156.112604.1\",\"value\":\"SSC001\"}"));
	assert_null(strstr(out, "urn:onecard:cn-ssc"));
	json_decref(b);
	assert_int_equal(fhir("XC001", "POST", "/fhir/Patient/_search",
			     "application/fhir+json", "{}", NULL, &b),
	    415);
	json_decref(b);
}

static void
search_by_id_reads_one(void **state)
{
	char path[128];
	json_t *b;

	(void)state;
	snprintf(path, sizeof path, "/fhir/Patient?_id=%s", zhang);
	assert_int_equal(get("XC001", path, &b), 200);
	assert_int_equal(bundle_total(b), 1);
	assert_string_equal(entry_id(b, 0, NULL), zhang);
	json_decref(b);
	assert_int_equal(get("XC001", "/fhir/Patient?_id=P-NOSUCH", &b), 200);
	assert_int_equal(bundle_total(b), 0);
	json_decref(b);
}

static void
search_refusals_name_the_parameter(void **state)
{
	json_t *o;

	(void)state;
	assert_int_equal(
	    get("XC001", "/fhir/Patient?birthdate=gt1980-01-02", &o), 400);
	assert_non_null(strstr(diagnostics(o), "birthdate"));
	json_decref(o);
	assert_int_equal(
	    get("XC001", "/fhir/Patient?given=%E4%BC%9F", &o), 400);
	assert_non_null(strstr(diagnostics(o), "given: needs family"));
	json_decref(o);
	assert_int_equal(
	    get("XC001", "/fhir/Patient?identifier=urn:other|1", &o), 400);
	assert_non_null(strstr(diagnostics(o), "identifier"));
	json_decref(o);
	/* A hospital may not enumerate by birth date alone (the guard). */
	assert_int_equal(
	    get("XC001", "/fhir/Patient?birthdate=1990-05-05", &o), 400);
	json_decref(o);
	/* Unknown parameters are ignored, unless the client asks for
	 * strict handling. */
	assert_int_equal(get("XC001",
			     "/fhir/Patient?identifier=urn:onecard:hosp:XC001|"
			     "MRN-1&active=true",
			     &o),
	    200);
	json_decref(o);
	assert_int_equal(fhir("XC001", "GET",
			     "/fhir/Patient?identifier=urn:onecard:hosp:XC001|"
			     "MRN-1&active=true",
			     NULL, NULL, "-H 'Prefer: handling=strict'", &o),
	    400);
	assert_non_null(strstr(diagnostics(o), "active"));
	json_decref(o);
}

/* A $match Parameters body for a Patient with these members. */
static void
match_body(char *buf, size_t len, const char *patient, const char *more)
{
	snprintf(buf, len,
	    "{\"resourceType\":\"Parameters\",\"parameter\":["
	    "{\"name\":\"resource\",\"resource\":{\"resourceType\":"
	    "\"Patient\",%s}}%s]}",
	    patient, more);
}

static void
match_scores_grades_and_orders(void **state)
{
	char body[1024];
	double s0, s1;
	json_t *b;

	(void)state;
	match_body(body, sizeof body,
	    "\"name\":[{\"family\":\"王\",\"given\":[\"芳\"]}],"
	    "\"gender\":\"female\",\"birthDate\":\"1990-05-05\","
	    "\"telecom\":[{\"system\":\"phone\",\"value\":\"13900002222\"}]",
	    "");
	assert_int_equal(fhir("admin", "POST", "/fhir/Patient/$match",
			     "application/fhir+json", body, NULL, &b),
	    200);
	assert_int_equal(bundle_total(b), 2);
	/* Best first: the one whose phone agrees too. */
	assert_string_equal(entry_id(b, 0, &s0), wang1);
	(void)entry_id(b, 1, &s1);
	assert_true(s0 >= s1);
	assert_true(s0 > 0 && s0 <= 1);
	assert_non_null(entry_grade(b, 0));
	json_decref(b);
	/* count=1: only the best. */
	match_body(body, sizeof body,
	    "\"name\":[{\"text\":\"王芳\"}],\"birthDate\":\"1990-05-05\"",
	    ",{\"name\":\"count\",\"valueInteger\":1}");
	assert_int_equal(fhir("admin", "POST", "/fhir/Patient/$match",
			     "application/fhir+json", body, NULL, &b),
	    200);
	assert_int_equal(json_array_size(json_object_get(b, "entry")), 1);
	json_decref(b);
	/* onlyCertainMatches: the identifier's holder is certain; a
	 * name-alike, on the name alone, is not. */
	match_body(body, sizeof body,
	    "\"identifier\":[{\"system\":\"urn:onecard:hosp:XC001\","
	    "\"value\":\"MRN-2\"}],\"name\":[{\"text\":\"王芳\"}]",
	    ",{\"name\":\"onlyCertainMatches\",\"valueBoolean\":true}");
	assert_int_equal(fhir("XC001", "POST", "/fhir/Patient/$match",
			     "application/fhir+json", body, NULL, &b),
	    200);
	assert_int_equal(bundle_total(b), 1);
	assert_string_equal(entry_id(b, 0, NULL), wang1);
	assert_string_equal(entry_grade(b, 0), "certain");
	json_decref(b);
}

static void
bodies_the_door_refuses(void **state)
{
	char deep[4096];
	json_t *o;
	size_t n = 0;

	(void)state;
	assert_int_equal(fhir("XC001", "POST", "/fhir/Patient/$match",
			     "application/fhir+json", "{not json", NULL, &o),
	    400);
	assert_non_null(strstr(diagnostics(o), "invalid JSON"));
	json_decref(o);
	assert_int_equal(fhir("XC001", "POST", "/fhir/Patient/$match",
			     "application/fhir+json",
			     "{\"resourceType\":\"Patient\"}", NULL, &o),
	    400);
	assert_non_null(strstr(diagnostics(o), "Parameters"));
	json_decref(o);
	assert_int_equal(fhir("XC001", "POST", "/fhir/Patient/$match",
			     "text/plain", "{}", NULL, &o),
	    415);
	json_decref(o);
	n += (size_t)snprintf(deep, sizeof deep, "{\"a\":");
	for (int i = 0; i < 1000; i++)
		deep[n++] = '[';
	deep[n] = '\0';
	assert_int_equal(fhir("XC001", "POST", "/fhir/Patient/$match",
			     "application/fhir+json", deep, NULL, &o),
	    400);
	assert_non_null(strstr(diagnostics(o), "nested deeper"));
	json_decref(o);
	assert_int_equal(fhir("XC001", "POST", "/fhir/Patient/$match",
			     "application/fhir+json",
			     "{\"resourceType\":\"Par\xff\xfe\"}", NULL, &o),
	    400);
	assert_non_null(strstr(diagnostics(o), "invalid UTF-8"));
	json_decref(o);
	/* A body on a read is not served: the method is refused. */
	assert_int_equal(fhir("XC001", "PATCH", "/fhir/Patient/X",
			     "application/fhir+json", "{}", NULL, &o),
	    405);
	json_decref(o);
}

#define FEED_1 "/fhir/Patient?identifier=urn:onecard:hosp:XC001|FEED-1"

static void
feed_put_creates_then_updates_and_links(void **state)
{
	json_t *o;
	char path[128], etag[32];
	const char *pid;

	(void)state;
	assert_int_equal(fhir("XC001", "PUT", FEED_1, "application/fhir+json",
			     "{\"resourceType\":\"Patient\",\"name\":[{"
			     "\"family\":\"李\",\"given\":[\"娜\"]}],"
			     "\"gender\":\"female\",\"birthDate\":"
			     "\"1975-03-04\"}",
			     NULL, &o),
	    201);
	assert_non_null(strstr(headers, "Location: https://"));
	assert_non_null(strstr(headers, "ETag: W/\"1\""));
	pid = json_string_value(json_object_get(o, "id"));
	assert_non_null(pid);
	snprintf(path, sizeof path, "/fhir/Patient/%s", pid);
	json_decref(o);
	/* The binary door sees it: one registry. */
	assert_int_equal(
	    run("XC001", "onecard --json lookup hosp:XC001=FEED-1"), 0);
	assert_non_null(strstr(out, "李娜"));
	/* Again, with a phone and another card: an update and a link. */
	assert_int_equal(fhir("XC001", "PUT", FEED_1, "application/fhir+json",
			     "{\"resourceType\":\"Patient\",\"identifier\":[{"
			     "\"system\":\"urn:onecard:hosp:XC001\",\"value\":"
			     "\"FEED-1B\"}],\"telecom\":[{\"system\":\"phone\","
			     "\"value\":\"13700003333\"}]}",
			     NULL, &o),
	    200);
	json_decref(o);
	assert_int_equal(get("XC001", path, &o), 200);
	assert_int_equal(json_array_size(json_object_get(o, "identifier")), 2);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(o, "telecom"), 0), "value")),
	    "13700003333");
	assert_string_equal(
	    json_string_value(json_object_get(o, "birthDate")), "1975-03-04");
	json_decref(o);
	/* If-Match with a version it no longer is: 412, nothing changed. */
	assert_int_equal(fhir("XC001", "PUT", FEED_1, "application/fhir+json",
			     "{\"resourceType\":\"Patient\",\"birthDate\":"
			     "\"1975-03-05\"}",
			     "-H 'If-Match: W/\"1\"'", &o),
	    412);
	json_decref(o);
	assert_int_equal(get("XC001", path, &o), 200);
	assert_string_equal(
	    json_string_value(json_object_get(o, "birthDate")), "1975-03-04");
	snprintf(etag, sizeof etag, "%s",
	    json_string_value(
		json_object_get(json_object_get(o, "meta"), "versionId")));
	json_decref(o);
	/* With the version it is: applied. */
	snprintf(path, sizeof path, "-H 'If-Match: W/\"%s\"'", etag);
	assert_int_equal(fhir("XC001", "PUT", FEED_1, "application/fhir+json",
			     "{\"resourceType\":\"Patient\",\"birthDate\":"
			     "\"1975-03-05\"}",
			     path, &o),
	    200);
	assert_string_equal(
	    json_string_value(json_object_get(o, "birthDate")), "1975-03-05");
	json_decref(o);
}

static void
feed_keeps_the_registry_rules(void **state)
{
	json_t *o;

	(void)state;
	/* Another hospital's domain: the registry refuses, nothing made. */
	assert_int_equal(fhir("XC001", "PUT",
			     "/fhir/Patient?identifier=urn:onecard:hosp:XC002|"
			     "THEIRS",
			     "application/fhir+json",
			     "{\"resourceType\":\"Patient\"}", NULL, &o),
	    403);
	json_decref(o);
	assert_int_equal(run("admin", "onecard lookup hosp:XC002=THEIRS"), 1);
	/* A card held by another patient: 409 before anything is written. */
	assert_int_equal(fhir("XC001", "PUT",
			     "/fhir/Patient?identifier=urn:onecard:hosp:XC001|"
			     "MRN-2",
			     "application/fhir+json",
			     "{\"resourceType\":\"Patient\",\"identifier\":[{"
			     "\"system\":\"urn:onecard:hosp:XC001\",\"value\":"
			     "\"MRN-1\"}],\"address\":[{\"text\":\"X\"}]}",
			     NULL, &o),
	    409);
	assert_non_null(strstr(diagnostics(o), "identifier[0]"));
	json_decref(o);
	assert_int_equal(
	    run("XC001", "onecard --json lookup hosp:XC001=MRN-2"), 0);
	assert_null(strstr(out, "\"address\":\"X\""));
	/* A body that is not a Patient names the element. */
	assert_int_equal(
	    fhir("XC001", "PUT", FEED_1, "application/fhir+json",
		"{\"resourceType\":\"Patient\",\"gender\":\"m\"}", NULL, &o),
	    400);
	assert_non_null(strstr(diagnostics(o), "gender"));
	json_decref(o);
	assert_int_equal(
	    fhir("XC001", "PUT", "/fhir/Patient", "application/fhir+json",
		"{\"resourceType\":\"Patient\"}", NULL, &o),
	    400);
	assert_non_null(strstr(diagnostics(o), "identifier"));
	json_decref(o);
}

static void
feed_merge_is_for_admins(void **state)
{
	char body[512];
	json_t *o;

	(void)state;
	snprintf(body, sizeof body,
	    "{\"resourceType\":\"Patient\",\"active\":false,\"link\":[{"
	    "\"other\":{\"reference\":\"Patient/%s\"},\"type\":"
	    "\"replaced-by\"}]}",
	    wang1);
	assert_int_equal(fhir("XC002", "PUT",
			     "/fhir/Patient?identifier=urn:onecard:hosp:XC002|"
			     "OLD-2",
			     "application/fhir+json", body, NULL, &o),
	    403);
	json_decref(o);
	assert_int_equal(fhir("admin", "PUT",
			     "/fhir/Patient?identifier=urn:onecard:hosp:XC002|"
			     "OLD-2",
			     "application/fhir+json", body, NULL, &o),
	    200);
	assert_true(json_is_false(json_object_get(o, "active")));
	assert_string_equal(json_string_value(json_object_get(o, "id")), wang2);
	json_decref(o);
	/* The merged-away card now names the survivor. */
	assert_int_equal(get("XC001",
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:hosp:XC002|OLD-2",
			     &o),
	    200);
	assert_non_null(strstr(out, wang1));
	json_decref(o);
}

static void
feed_delete_unlinks(void **state)
{
	json_t *o;

	(void)state;
	assert_int_equal(fhir("XC001", "DELETE",
			     "/fhir/Patient?identifier=urn:onecard:hosp:XC001|"
			     "FEED-1B",
			     NULL, NULL, NULL, &o),
	    200);
	json_decref(o);
	assert_int_equal(get("XC001",
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:hosp:XC001|FEED-1B",
			     &o),
	    404);
	json_decref(o);
	assert_int_equal(fhir("XC001", "DELETE",
			     "/fhir/Patient?identifier=urn:onecard:hosp:XC001|"
			     "FEED-1B",
			     NULL, NULL, NULL, &o),
	    404);
	json_decref(o);
}

static void
feed_writes_are_audited_step_by_step(void **state)
{
	char line[4096];
	FILE *f;
	int enroll = 0, update = 0, link = 0, merge = 0, unlink_ = 0;

	(void)state;
	assert_non_null(f = fopen(audit_path, "r"));
	while (fgets(line, sizeof line, f) != NULL) {
		enroll += strstr(line, "\"fhir:enroll\"") != NULL;
		update += strstr(line, "\"fhir:update\"") != NULL;
		link += strstr(line, "\"fhir:link\"") != NULL;
		merge += strstr(line, "\"fhir:merge\"") != NULL;
		unlink_ += strstr(line, "\"fhir:unlink\"") != NULL;
		/* The search's criteria are masked: never the full name. */
		if (strstr(line, "\"fhir:search\""))
			assert_null(strstr(line, "王芳"));
	}
	fclose(f);
	assert_true(enroll >= 1);
	assert_true(update >= 2);
	assert_true(link >= 1);
	assert_true(merge >= 2); /* refused, then done */
	assert_true(unlink_ >= 2);
}

/*
 * The commands of docs/fhir.md's marked example block (a line ending in a
 * backslash goes on), run as written but against this broker: its port,
 * its certificates, a real patient id. Each must be answered 2xx.
 */
static void
docs_examples_run(void **state)
{
	char path[512], *line = NULL, cmd[8192] = "", *p;
	char port[16], run_cmd[16384];
	size_t cap = 0, n;
	int state_ = 0, ran = 0, rc;
	ssize_t len;
	FILE *fp;

	(void)state;
	snprintf(path, sizeof path, "%s/docs/fhir.md", ONECARD_SOURCE_DIR);
	assert_non_null(fp = fopen(path, "r"));
	snprintf(port, sizeof port, "%d", fhir_port);
	while ((len = getline(&line, &cap, fp)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (state_ == 0) {
			state_ = strncmp(line, "<!-- example:", 13) == 0;
			continue;
		}
		if (state_ == 1) {
			assert_memory_equal(line, "```", 3);
			state_ = 2;
			continue;
		}
		if (strncmp(line, "```", 3) == 0)
			break;
		if (line[0] == '\0')
			continue;
		n = strlen(cmd);
		snprintf(cmd + n, sizeof cmd - n, "%s", line);
		n = strlen(cmd);
		if (n > 0 && cmd[n - 1] == '\\') {
			cmd[n - 1] = ' ';
			continue;
		}
		/* This broker: its port, certificates and a patient. */
		while ((p = strstr(cmd, "8443")) != NULL) {
			memmove(p + strlen(port), p + 4, strlen(p + 4) + 1);
			memcpy(p, port, strlen(port));
		}
		while ((p = strstr(cmd, "PATIENT_ID")) != NULL) {
			memmove(p + strlen(zhang), p + 10, strlen(p + 10) + 1);
			memcpy(p, zhang, strlen(zhang));
		}
		snprintf(run_cmd, sizeof run_cmd,
		    "cd '%s' && mkdir -p certs && ln -sfn '%s' certs/dev && "
		    "%s -sS -f -o /dev/null",
		    h.dir, h.certs, cmd);
		rc = harness_run(&h, NULL, out, sizeof out, run_cmd);
		if (rc != 0)
			fprintf(stderr, "failed: %s\n", cmd);
		assert_int_equal(rc, 0);
		ran++;
		cmd[0] = '\0';
	}
	free(line);
	fclose(fp);
	assert_true(ran >= 6);
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
bad_fhir_systems_are_refused_naming_the_flag(void **state)
{
	static const char *const bad[] = {"cn-id", "cn-id=", "x=urn:oid:1.2",
	    "cn-id=urn:oid:1.a", "cn-id=urn:onecard:cn-id", "cn-id=ftp://x",
	    "hosp:=urn:oid:1.2", "'cn-id=urn:oid:1.2 3'",
	    "cn-id=urn:oid:1.2 --fhir-system cn-id=urn:oid:1.3",
	    "cn-id=urn:oid:1.2 --fhir-system cn-ssc=urn:oid:1.2"};
	char err[4096], args[256];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(args, sizeof args, "--fhir-system %s", bad[i]);
		assert_int_not_equal(check_config(err, sizeof err, args), 0);
		assert_non_null(strstr(err, "--fhir-system"));
	}
	assert_int_equal(
	    check_config(err, sizeof err,
		"--fhir-system cn-id=urn:oid:2.16.156.10011.1.5 "
		"--fhir-system hosp:XC001=https://xc001.example/mrn"),
	    0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(search_by_identifier_finds_the_holder),
	    cmocka_unit_test(
		search_by_name_and_birth_date_ranks_and_splits_the_name),
	    cmocka_unit_test(search_without_a_hit_is_200_with_total_0),
	    cmocka_unit_test(search_pages_with_count_and_a_next_link),
	    cmocka_unit_test(post_search_takes_a_form_body),
	    cmocka_unit_test(search_by_id_reads_one),
	    cmocka_unit_test(search_refusals_name_the_parameter),
	    cmocka_unit_test(match_scores_grades_and_orders),
	    cmocka_unit_test(bodies_the_door_refuses),
	    cmocka_unit_test(feed_put_creates_then_updates_and_links),
	    cmocka_unit_test(feed_keeps_the_registry_rules),
	    /* After the searches: it merges the two 王芳. */
	    cmocka_unit_test(feed_merge_is_for_admins),
	    cmocka_unit_test(feed_delete_unlinks),
	    cmocka_unit_test(feed_writes_are_audited_step_by_step),
	    cmocka_unit_test(bad_fhir_systems_are_refused_naming_the_flag),
	    cmocka_unit_test(docs_examples_run),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
