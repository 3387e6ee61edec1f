/*
 * test_fhir.c: the FHIR door (docs/fhir.md) of a real onecardd, asked with
 * curl over HTTPS as a hospital's integration engine would ask it: the
 * CapabilityStatement, PIXm ($ihe-pix) with every status the profile names,
 * a Patient read with its name split, and the refusals of the door itself
 * (no certificate, plain HTTP, an unknown or revoked CN, oversize headers,
 * XML). Responses are parsed with jansson.
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
static int fhir_port, metrics_port;
static char audit_dir[64] = "/tmp/onecard-fhir-audit.XXXXXX";
static char audit_path[128];
static char out[65536];
static char survivor[64], merged[64], ouyang[64];

/* Run a shell command line as admin; its exit status, stdout in out. */
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
 * GET path (with its query) as cn (NULL: no client certificate) with the
 * extra curl arguments; the HTTP status (0 when no answer came), with the
 * body parsed into *body when it is JSON (else *body NULL).
 */
static int
fhir_get(const char *cn, const char *extra, const char *path, json_t **body)
{
	char cmd[16384], cert[1024] = "";
	char *nl;
	int status;

	if (body != NULL)
		*body = NULL;
	if (cn != NULL)
		snprintf(cert, sizeof cert,
		    "--cert '%s/%s.pem' --key '%s/%s.key'", h.certs, cn,
		    h.certs, cn);
	snprintf(cmd, sizeof cmd,
	    "curl -sS -g --max-time 10 %s --cacert '%s/ca.pem' %s "
	    "-w '\\n%%{http_code}' 'https://127.0.0.1:%d%s'",
	    cert, h.certs, extra ? extra : "", fhir_port, path);
	memset(out, 0, sizeof out);
	(void)harness_run(&h, NULL, out, sizeof out, cmd);
	if ((nl = strrchr(out, '\n')) == NULL)
		return 0;
	*nl = '\0';
	status = atoi(nl + 1);
	if (body != NULL)
		*body = json_loads(out, 0, NULL);
	return status;
}

/* The patient id that `onecard --json` printed in out. */
static void
json_pid(char *dst, size_t len)
{
	json_t *o = json_loads(out, 0, NULL);
	const char *s;

	assert_non_null(o);
	s = json_string_value(json_object_get(o, "patient_id"));
	if (s == NULL) /* enroll: {"patient": {...}} or {"patient_id"} */
		s = json_string_value(json_object_get(
		    json_object_get(o, "patient"), "patient_id"));
	assert_non_null(s);
	snprintf(dst, len, "%s", s);
	json_decref(o);
}

/* The issue code of an OperationOutcome. */
static const char *
outcome_code(json_t *o)
{
	assert_string_equal(
	    json_string_value(json_object_get(o, "resourceType")),
	    "OperationOutcome");
	return json_string_value(json_object_get(
	    json_array_get(json_object_get(o, "issue"), 0), "code"));
}

static int
setup(void **state)
{
	static const char *const codes[] = {"XC001", "XC002", NULL};
	static const char *const more[] = {"XC009", NULL};
	const char *const extra[] = {"--fhir-listen", "127.0.0.1:0",
	    "--metrics-listen", "127.0.0.1:0", "--audit-log", audit_path, NULL};
	char log[65536], *p;

	(void)state;
	if (mkdtemp(audit_dir) == NULL)
		return -1;
	snprintf(audit_path, sizeof audit_path, "%s/audit.log", audit_dir);
	if (harness_start(&h, codes, extra) == -1 ||
	    harness_certs(&h, more) == -1 || harness_log(&h, log, sizeof log))
		return -1;
	if ((p = strstr(log, "fhir on 127.0.0.1:")) == NULL)
		return -1;
	fhir_port = atoi(p + strlen("fhir on 127.0.0.1:"));
	if ((p = strstr(log, "metrics on 127.0.0.1:")) == NULL)
		return -1;
	metrics_port = atoi(p + strlen("metrics on 127.0.0.1:"));
	/* Two records of one person, then merged; and a compound surname. */
	if (run("XC001",
		"onecard --json enroll --name 'Li Si' --sex male "
		"--birth 1980-01-02 --phone '+86 10 5555' "
		"--address 'Haidian, Beijing' cn-ssc=PIX001 "
		"hosp:XC001=MRN-1") != 0)
		return -1;
	json_pid(survivor, sizeof survivor);
	if (run("XC002", "onecard --json enroll hosp:XC002=OLD-7") != 0)
		return -1;
	json_pid(merged, sizeof merged);
	if (run("admin",
		"onecardctl merge hosp:XC001=MRN-1 hosp:XC002=OLD-7") != 0)
		return -1;
	if (run("XC001",
		"onecard --json enroll --name '欧阳娜娜' --sex female "
		"hosp:XC001=MRN-OY") != 0)
		return -1;
	json_pid(ouyang, sizeof ouyang);
	return 0;
}

/* A clean stop ends the FHIR thread too (and, under ASan, leaks nothing). */
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
metadata_is_a_capability_statement(void **state)
{
	json_t *o, *res;

	assert_int_equal(fhir_get("XC001", NULL, "/fhir/metadata", &o), 200);
	assert_string_equal(
	    json_string_value(json_object_get(o, "resourceType")),
	    "CapabilityStatement");
	assert_string_equal(
	    json_string_value(json_object_get(o, "fhirVersion")), "4.0.1");
	/* Exactly what is served: Patient read, search, the feed's
	 * conditional update and delete, $ihe-pix and $match. */
	res = json_array_get(
	    json_object_get(
		json_array_get(json_object_get(o, "rest"), 0), "resource"),
	    0);
	assert_string_equal(
	    json_string_value(json_object_get(res, "type")), "Patient");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(res, "interaction"), 0),
		"code")),
	    "read");
	assert_int_equal(
	    json_array_size(json_object_get(res, "interaction")), 4);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(res, "interaction"), 1),
		"code")),
	    "search-type");
	assert_true(json_is_true(json_object_get(res, "conditionalUpdate")));
	assert_int_equal(
	    json_array_size(json_object_get(res, "searchParam")), 8);
	assert_int_equal(json_array_size(json_object_get(res, "operation")), 2);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(res, "operation"), 0), "name")),
	    "ihe-pix");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(res, "operation"), 1), "name")),
	    "match");
	json_decref(o);
}

static void
pix_answers_every_identifier_and_the_patient(void **state)
{
	json_t *o, *params, *p;
	size_t i;
	int ids = 0, cnssc = 0, refs = 0;
	char ref[80];

	assert_int_equal(fhir_get("XC002", NULL,
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:hosp:XC001|MRN-1",
			     &o),
	    200);
	assert_string_equal(
	    json_string_value(json_object_get(o, "resourceType")),
	    "Parameters");
	snprintf(ref, sizeof ref, "Patient/%s", survivor);
	params = json_object_get(o, "parameter");
	json_array_foreach(params, i, p)
	{
		const char *name =
		    json_string_value(json_object_get(p, "name"));
		if (strcmp(name, "targetIdentifier") == 0) {
			json_t *id = json_object_get(p, "valueIdentifier");
			ids++;
			if (strcmp(json_string_value(
				       json_object_get(id, "system")),
				"urn:onecard:cn-ssc") == 0 &&
			    strcmp(
				json_string_value(json_object_get(id, "value")),
				"PIX001") == 0)
				cnssc = 1;
		} else if (strcmp(name, "targetId") == 0) {
			refs++;
			assert_string_equal(
			    json_string_value(json_object_get(
				json_object_get(p, "valueReference"),
				"reference")),
			    ref);
		}
	}
	/* cn-ssc, hosp:XC001 and the merged record's hosp:XC002 */
	assert_int_equal(ids, 3);
	assert_true(cnssc);
	assert_int_equal(refs, 1);
	json_decref(o);

	/* Filtered by targetSystem: only that domain's identifier. */
	assert_int_equal(
	    fhir_get("XC002", NULL,
		"/fhir/Patient/$ihe-pix?sourceIdentifier=urn:onecard:"
		"hosp:XC001%7CMRN-1&targetSystem=urn:onecard:cn-ssc",
		&o),
	    200);
	params = json_object_get(o, "parameter");
	assert_int_equal(json_array_size(params), 2);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_array_get(params, 0), "valueIdentifier"),
		"value")),
	    "PIX001");
	json_decref(o);
}

static void
pix_merged_identifier_resolves_to_the_survivor(void **state)
{
	json_t *o, *params;
	char ref[80];

	assert_int_equal(fhir_get("XC001", NULL,
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:hosp:XC002|OLD-7",
			     &o),
	    200);
	snprintf(ref, sizeof ref, "Patient/%s", survivor);
	params = json_object_get(o, "parameter");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(
		    json_array_get(params, json_array_size(params) - 1),
		    "valueReference"),
		"reference")),
	    ref);
	json_decref(o);
}

static void
pix_statuses_follow_the_profile(void **state)
{
	json_t *o;

	/* Unknown patient: 404. */
	assert_int_equal(fhir_get("XC001", NULL,
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:hosp:XC001|NOBODY",
			     &o),
	    404);
	assert_string_equal(outcome_code(o), "not-found");
	json_decref(o);
	/* Unknown source domain: 400 (foreign system, unknown hospital). */
	assert_int_equal(fhir_get("XC001", NULL,
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:oid:1.2.3|MRN-1",
			     &o),
	    400);
	json_decref(o);
	assert_int_equal(fhir_get("XC001", NULL,
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:hosp:NOPE|MRN-1",
			     &o),
	    400);
	json_decref(o);
	assert_int_equal(
	    fhir_get("XC001", NULL, "/fhir/Patient/$ihe-pix", &o), 400);
	json_decref(o);
	/* Unknown target system: 403. */
	assert_int_equal(fhir_get("XC001", NULL,
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:hosp:XC001|MRN-1&targetSystem="
			     "urn:onecard:hosp:NOPE",
			     &o),
	    403);
	json_decref(o);
}

static void
patient_read_splits_a_compound_surname(void **state)
{
	json_t *o, *name;
	char path[128];

	snprintf(path, sizeof path, "/fhir/Patient/%s", ouyang);
	assert_int_equal(fhir_get("XC001", NULL, path, &o), 200);
	assert_string_equal(
	    json_string_value(json_object_get(o, "resourceType")), "Patient");
	assert_string_equal(
	    json_string_value(json_object_get(o, "id")), ouyang);
	assert_true(json_is_true(json_object_get(o, "active")));
	assert_string_equal(
	    json_string_value(json_object_get(o, "gender")), "female");
	name = json_array_get(json_object_get(o, "name"), 0);
	assert_string_equal(
	    json_string_value(json_object_get(name, "text")), "欧阳娜娜");
	assert_string_equal(
	    json_string_value(json_object_get(name, "family")), "欧阳");
	assert_string_equal(json_string_value(json_array_get(
				json_object_get(name, "given"), 0)),
	    "娜娜");
	json_decref(o);

	/* An id in lower case is the same record, not a merged one. */
	for (char *c = path; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z' && c > path + 14)
			*c = (char)(*c - 'A' + 'a');
	if (fhir_get("XC001", NULL, path, &o) == 200)
		assert_true(json_is_true(json_object_get(o, "active")));
	json_decref(o);

	/* Demographics map to their FHIR elements. */
	snprintf(path, sizeof path, "/fhir/Patient/%s", survivor);
	assert_int_equal(fhir_get("XC002", NULL, path, &o), 200);
	assert_string_equal(
	    json_string_value(json_object_get(o, "birthDate")), "1980-01-02");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(o, "telecom"), 0), "value")),
	    "+86 10 5555");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(o, "address"), 0), "text")),
	    "Haidian, Beijing");
	json_decref(o);
}

static void
patient_read_of_a_merged_record_is_inactive_and_replaced(void **state)
{
	json_t *o, *link;
	char path[128], ref[80];

	snprintf(path, sizeof path, "/fhir/Patient/%s", merged);
	snprintf(ref, sizeof ref, "Patient/%s", survivor);
	assert_int_equal(fhir_get("XC001", NULL, path, &o), 200);
	assert_true(json_is_false(json_object_get(o, "active")));
	link = json_array_get(json_object_get(o, "link"), 0);
	assert_string_equal(
	    json_string_value(json_object_get(link, "type")), "replaced-by");
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(link, "other"), "reference")),
	    ref);
	json_decref(o);

	assert_int_equal(
	    fhir_get("XC001", NULL, "/fhir/Patient/no-such-id", &o), 404);
	json_decref(o);
}

static void
xml_is_not_acceptable(void **state)
{
	json_t *o;

	assert_int_equal(
	    fhir_get("XC001", NULL, "/fhir/metadata?_format=xml", &o), 406);
	json_decref(o);
	assert_int_equal(fhir_get("XC001", "-H 'Accept: application/fhir+xml'",
			     "/fhir/metadata", &o),
	    406);
	json_decref(o);
}

static void
door_refuses_what_is_not_a_known_client(void **state)
{
	char cmd[512];
	json_t *o = NULL;

	/* No client certificate: the TLS handshake fails, no HTTP answer. */
	assert_int_equal(fhir_get(NULL, NULL, "/fhir/metadata", &o), 0);
	json_decref(o);
	/* Plain HTTP: no HTTP answer either. */
	snprintf(cmd, sizeof cmd,
	    "curl -s --max-time 5 -o /dev/null -w '%%{http_code}' "
	    "'http://127.0.0.1:%d/fhir/metadata'",
	    fhir_port);
	(void)harness_run(&h, NULL, out, sizeof out, cmd);
	assert_string_equal(out, "000");
	/* A CN the registry does not hold: 403. */
	assert_int_equal(fhir_get("XC009", NULL, "/fhir/metadata", &o), 403);
	assert_string_equal(outcome_code(o), "forbidden");
	json_decref(o);
	/* A revoked hospital: 403 too, from the next request on. */
	assert_int_equal(run("admin", "onecardctl hospital revoke XC002"), 0);
	assert_int_equal(fhir_get("XC002", NULL, "/fhir/metadata", &o), 403);
	json_decref(o);
	/* The identifiers it issued still resolve, and still name a system. */
	assert_int_equal(fhir_get("XC001", NULL,
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:hosp:XC002|OLD-7&targetSystem="
			     "urn:onecard:hosp:XC002",
			     &o),
	    200);
	assert_int_equal(json_array_size(json_object_get(o, "parameter")), 2);
	json_decref(o);
}

static void
requests_are_audited_and_counted(void **state)
{
	char cmd[256], line[4096];
	FILE *f;
	int pix = 0, reads = 0, refused = 0;

	assert_int_equal(fhir_get("XC001", NULL,
			     "/fhir/Patient/$ihe-pix?sourceIdentifier="
			     "urn:onecard:hosp:XC001|MRN-1",
			     NULL),
	    200);
	assert_non_null(f = fopen(audit_path, "r"));
	while (fgets(line, sizeof line, f) != NULL) {
		if (strstr(line, "\"fhir:pix\"") && strstr(line, "XC001"))
			pix++;
		if (strstr(line, "\"fhir:read\""))
			reads++;
		if (strstr(line, "XC009") && strstr(line, "http=403"))
			refused++;
	}
	fclose(f);
	assert_true(pix > 0);
	assert_true(reads > 0);
	assert_true(refused > 0);
	snprintf(cmd, sizeof cmd,
	    "curl -s --max-time 5 http://127.0.0.1:%d/metrics", metrics_port);
	assert_int_equal(harness_run(&h, NULL, out, sizeof out, cmd), 0);
	assert_non_null(strstr(out,
	    "onecard_fhir_requests_total{interface=\"fhir\",status=\"2xx\"}"));
	assert_null(strstr(out,
	    "onecard_fhir_requests_total{interface=\"fhir\",status=\"2xx\"} "
	    "0\n"));
	/* The registry's operations are counted as the binary door's are,
	 * labelled by the door they came through. */
	assert_non_null(strstr(out,
	    "onecard_requests_total{interface=\"fhir\",op=\"lookup\","
	    "code=\"OK\"}"));
	assert_non_null(strstr(out,
	    "onecard_request_duration_seconds_count{interface=\"fhir\","
	    "op=\"lookup\"}"));
	assert_non_null(strstr(out,
	    "onecard_hospital_requests_total{interface=\"fhir\","
	    "hospital=\"XC001\",op=\"lookup\"}"));
}

static void
headers_over_the_limit_are_refused(void **state)
{
	static char extra[12000];
	int status;

	memcpy(extra, "-H 'X-Pad: ", 11);
	memset(extra + 11, 'a', 10000);
	memcpy(extra + 10011, "'", 2);
	status = fhir_get("XC001", extra, "/fhir/metadata", NULL);
	assert_true(status == 431 || status == 400 || status == 413);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(metadata_is_a_capability_statement),
	    cmocka_unit_test(pix_answers_every_identifier_and_the_patient),
	    cmocka_unit_test(pix_merged_identifier_resolves_to_the_survivor),
	    cmocka_unit_test(pix_statuses_follow_the_profile),
	    cmocka_unit_test(patient_read_splits_a_compound_surname),
	    cmocka_unit_test(
		patient_read_of_a_merged_record_is_inactive_and_replaced),
	    cmocka_unit_test(xml_is_not_acceptable),
	    cmocka_unit_test(headers_over_the_limit_are_refused),
	    /* Last: it revokes XC002. */
	    cmocka_unit_test(door_refuses_what_is_not_a_known_client),
	    cmocka_unit_test(requests_are_audited_and_counted),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
