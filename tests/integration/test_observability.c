/*
 * test_observability.c: what an operator sees of a running broker. One
 * onecardd runs with --audit-log and --metrics-listen 127.0.0.1:0 for the
 * whole group; requests go through libonecard, and the test reads
 * /metrics and /healthz over plain HTTP, the audit file and the broker's
 * log. The exposition is checked with promtool (Debian's prometheus
 * package); a machine without it fails the test rather than skipping it.
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "onecard.h"

/* A valid cn-id nobody is enrolled under (born 1949-12-31, female). */
#define NOBODY_ID        "11010519491231002X"
#define NOBODY_ID_MASKED "110105********002X"
#define PATIENT_NAME     "Observability Testperson"

struct obs {
	struct harness h;
	char tmp[64];     /* holds the audit trail */
	char audit[128];  /* tmp/audit.log */
	int metrics_port; /* from "metrics on 127.0.0.1:PORT" */
	char enrolled_id[24];
	char enrolled_pid[48];
};

static struct obs obs;

/* GET path on the metrics port; the status, or -1. */
static int
http_get(
    const char *path, char *body, size_t bodylen, char *ctype, size_t ctypelen)
{
	return harness_http_get(
	    obs.metrics_port, path, body, bodylen, ctype, ctypelen);
}

/* The value of one series in an exposition; 0 if absent. */
static double
metric(const char *expo, const char *series)
{
	return harness_metric(expo, series);
}

/* Scrape /metrics into a malloc'd string. */
static char *
scrape(void)
{
	char *body = malloc(1 << 20);
	char ctype[128];

	assert_non_null(body);
	assert_int_equal(
	    http_get("/metrics", body, 1 << 20, ctype, sizeof(ctype)), 200);
	assert_non_null(strstr(ctype, "text/plain"));
	assert_non_null(strstr(ctype, "version=0.0.4"));
	return body;
}

/* Complete 17 digits with the ISO 7064 MOD 11-2 check character. */
static void
cnid_complete(char id[19])
{
	static const int w[17] = {
	    7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	static const char map[] = "10X98765432";
	int sum = 0;

	for (int i = 0; i < 17; i++)
		sum += (id[i] - '0') * w[i];
	id[17] = map[sum % 11];
	id[18] = '\0';
}

/* Look up an identifier as cn; the reply code. */
static int
lookup(struct onecard_conn *c, const char *domain, const char *value)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup lk = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *rep = NULL;
	int code;

	id.domain = (char *)domain;
	id.value = (char *)value;
	lk.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &lk;
	assert_int_equal(onecard_call(c, &req, &rep), ONECARD_OK);
	code = rep->code;
	onecard_reply_free(rep);
	return code;
}

/* Enroll a patient with a fresh cn-id and an MRN; remember both. */
static void
enroll(struct onecard_conn *c)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll en = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier ids[2] = {
	    ONECARD__V1__IDENTIFIER__INIT, ONECARD__V1__IDENTIFIER__INIT};
	Onecard__V1__Identifier *pids[2] = {&ids[0], &ids[1]};
	Onecard__V1__Reply *rep = NULL;

	/* 440304 19900101 12 3 (odd: male) + check */
	memcpy(obs.enrolled_id, "44030419900101123", 17);
	cnid_complete(obs.enrolled_id);
	d.name = (char *)PATIENT_NAME;
	d.sex = ONECARD__V1__SEX__SEX_MALE;
	d.birth_date = (char *)"1990-01-01";
	ids[0].domain = (char *)"cn-id";
	ids[0].value = obs.enrolled_id;
	ids[1].domain = (char *)"hosp:XC001";
	ids[1].value = (char *)"MRN-OBS-1";
	en.demographics = &d;
	en.n_identifiers = 2;
	en.identifiers = pids;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &en;
	assert_int_equal(onecard_call(c, &req, &rep), ONECARD_OK);
	assert_int_equal(rep->code, ONECARD__V1__CODE__OK);
	assert_int_equal(rep->result_case, ONECARD__V1__REPLY__RESULT_ENROLLED);
	snprintf(obs.enrolled_pid, sizeof(obs.enrolled_pid), "%s",
	    rep->enrolled->patient->patient_id);
	onecard_reply_free(rep);
}

/* Read a whole file; NULL-safe to free. */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* Lines of s that contain every one of the NULL-terminated needles. */
static int
count_lines(const char *s, ...)
{
	const char *needles[8];
	int nn = 0, count = 0;
	va_list ap;

	va_start(ap, s);
	while (nn < 8 && (needles[nn] = va_arg(ap, const char *)) != NULL)
		nn++;
	va_end(ap);
	while (s != NULL && *s != '\0') {
		const char *nl = strchr(s, '\n');
		size_t len = nl != NULL ? (size_t)(nl - s) : strlen(s);
		int all = 1;
		for (int i = 0; i < nn && all; i++) {
			const char *p =
			    memmem(s, len, needles[i], strlen(needles[i]));
			all = p != NULL;
		}
		count += all;
		s += len + (nl != NULL);
	}
	return count;
}

static int
group_setup(void **state)
{
	static const char *const codes[] = {"XC001", NULL};
	const char *args[] = {
	    "--audit-log", obs.audit, "--metrics-listen", "127.0.0.1:0", NULL};
	char log[65536], *p;

	strcpy(obs.tmp, "/tmp/it-observability.XXXXXX");
	if (mkdtemp(obs.tmp) == NULL)
		return -1;
	snprintf(obs.audit, sizeof(obs.audit), "%s/audit.log", obs.tmp);
	if (harness_start(&obs.h, codes, args) == -1)
		return -1;
	if (harness_log(&obs.h, log, sizeof(log)) == -1 ||
	    (p = strstr(log, "metrics on 127.0.0.1:")) == NULL) {
		fprintf(stderr, "no \"metrics on\" line in the broker's log\n");
		return -1;
	}
	obs.metrics_port = atoi(p + strlen("metrics on 127.0.0.1:"));
	return obs.metrics_port > 0 ? 0 : -1;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	harness_cleanup(&obs.h);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", obs.tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static void
requests_move_the_counters(void **state)
{
	struct onecard_conn *c = NULL;
	char *before = scrape(), *during, *after;

	assert_int_equal(harness_connect(&obs.h, "XC001", &c), ONECARD_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(lookup(c, "cn-id", NOBODY_ID),
		    ONECARD__V1__CODE__NOT_FOUND);
	enroll(c);
	assert_int_equal(
	    lookup(c, "hosp:XC001", "MRN-OBS-1"), ONECARD__V1__CODE__OK);
	during = scrape();
	onecard_close(c);

#define DELTA(s) (metric(during, s) - metric(before, s))
	assert_true(
	    DELTA("onecard_requests_total{interface=\"binary\",op=\"lookup\","
		  "code=\"NOT_FOUND\"}") == 3);
	assert_true(
	    DELTA("onecard_requests_total{interface=\"binary\",op=\"lookup\","
		  "code=\"OK\"}") == 1);
	assert_true(
	    DELTA("onecard_requests_total{interface=\"binary\",op=\"enroll\","
		  "code=\"OK\"}") == 1);
	assert_true(DELTA("onecard_request_duration_seconds_count"
			  "{interface=\"binary\",op=\"lookup\"}") == 4);
	assert_true(
	    DELTA("onecard_request_duration_seconds_bucket"
		  "{interface=\"binary\",op=\"lookup\",le=\"+Inf\"}") == 4);
	assert_true(DELTA("onecard_request_duration_seconds_sum"
			  "{interface=\"binary\",op=\"lookup\"}") > 0);
	assert_true(DELTA("onecard_audit_lines_total") == 5);
	assert_true(DELTA("onecard_connections_total") == 1);
	assert_true(DELTA("onecard_tls_handshakes_total{result=\"ok\"}") == 1);
	assert_true(DELTA("onecard_commit_batch_size_count") >= 1);
	assert_true(DELTA("onecard_commit_duration_seconds_count") >= 1);
	assert_true(metric(during, "onecard_connections_open") >= 1);
	assert_true(metric(during, "onecard_registry_patients") >= 1);
	assert_true(metric(during, "onecard_registry_identifiers") >= 2);
	assert_true(
	    metric(during, "onecard_process_resident_memory_bytes") > 1e6);
	assert_true(metric(during, "onecard_process_open_fds") > 3);
#undef DELTA

	/* The gauge comes back down once the broker has seen the close. */
	int open_now = (int)metric(during, "onecard_connections_open");
	for (int i = 0; i < 50; i++) {
		after = scrape();
		int n = (int)metric(after, "onecard_connections_open");
		free(after);
		if (n == open_now - 1)
			break;
		assert_true(i < 49);
		usleep(100 * 1000);
	}
	free(before);
	free(during);
}

static void
a_certificate_from_another_ca_counts_as_a_failed_handshake(void **state)
{
	struct onecard_options opt;
	struct onecard_conn *c = NULL;
	char cmd[512], rogue[160], cert[200], key[200];
	char *before = scrape(), *after = NULL;
	double failed0, ok0;

	snprintf(rogue, sizeof(rogue), "%s/rogue", obs.tmp);
	snprintf(cmd, sizeof(cmd), "%s/certs/mkcerts.sh -d %s XC001 >/dev/null",
	    ONECARD_SOURCE_DIR, rogue);
	assert_int_equal(system(cmd), 0);
	snprintf(cert, sizeof(cert), "%s/XC001.pem", rogue);
	snprintf(key, sizeof(key), "%s/XC001.key", rogue);
	harness_options(&obs.h, "XC001", &opt);
	opt.cert = cert;
	opt.key = key;
	/* With TLS 1.3 the client may only hear of it on its first read. */
	if (onecard_connect(&opt, &c, NULL, 0) == ONECARD_OK) {
		Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
		Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
		Onecard__V1__Reply *rep = NULL;
		req.op_case = ONECARD__V1__REQUEST__OP_PING;
		req.ping = &ping;
		assert_int_not_equal(onecard_call(c, &req, &rep), ONECARD_OK);
		onecard_close(c);
	}

	failed0 =
	    metric(before, "onecard_tls_handshakes_total{result=\"failed\"}");
	ok0 = metric(before, "onecard_tls_handshakes_total{result=\"ok\"}");
	for (int i = 0;; i++) {
		after = scrape();
		if (metric(after,
			"onecard_tls_handshakes_total{result="
			"\"failed\"}") == failed0 + 1)
			break;
		assert_true(i < 50);
		free(after);
		usleep(100 * 1000);
	}
	assert_true(metric(after,
			"onecard_tls_handshakes_total{result=\"ok\"}") == ok0);
	free(before);
	free(after);
}

static void
audit_trail_has_a_masked_line_per_request(void **state)
{
	char *trail = slurp(obs.audit);

	assert_non_null(trail);
	/* Three lookups of the unknown cn-id, masked by the broker. */
	assert_int_equal(count_lines(trail, "\"actor\":\"XC001\"",
			     "\"role\":\"hospital\"", "\"op\":\"lookup\"",
			     "\"target\":\"cn-id=" NOBODY_ID_MASKED "\"",
			     "\"code\":\"NOT_FOUND\"", NULL),
	    3);
	/* The enroll names the patient it made. */
	char pid[96];
	snprintf(pid, sizeof(pid), "\"patient_id\":\"%s\"", obs.enrolled_pid);
	assert_int_equal(count_lines(trail, "\"op\":\"enroll\"",
			     "\"code\":\"OK\"", pid, NULL),
	    1);
	/* The admin's hospital_add from the harness is there too. */
	assert_true(
	    count_lines(trail, "\"actor\":\"admin\"", "\"role\":\"admin\"",
		"\"op\":\"hospital_add\"", NULL) >= 1);
	/* Every line carries the fields of the format. */
	int lines = count_lines(trail, NULL);
	assert_true(lines >= 6);
	assert_int_equal(
	    count_lines(trail, "{\"seq\":", "\"time\":\"",
		"Z\",\"node\":", "\"latency_us\":", ",\"prev\":\"", NULL),
	    lines);
	free(trail);
}

/* One of the clients of audit_lines_from_concurrent_clients_all_chain. */
struct many_client {
	pthread_t t;
	struct onecard_conn *c;
	int idx;
	int ok; /* lookups answered NOT_FOUND */
};

#define MANY_CLIENTS 6
#define MANY_LOOKUPS 40

/* Look up MANY_LOOKUPS unknown MRNs on a connection of its own. */
static void *
many_client_run(void *arg)
{
	struct many_client *mc = arg;
	char mrn[48];

	for (int i = 0; i < MANY_LOOKUPS; i++) {
		Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
		Onecard__V1__Lookup lk = ONECARD__V1__LOOKUP__INIT;
		Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
		Onecard__V1__Reply *rep = NULL;

		snprintf(mrn, sizeof(mrn), "MRN-MANY-%d-%d", mc->idx, i);
		id.domain = (char *)"hosp:XC001";
		id.value = mrn;
		lk.identifier = &id;
		req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
		req.lookup = &lk;
		if (onecard_call(mc->c, &req, &rep) != ONECARD_OK)
			break;
		if (rep->code == ONECARD__V1__CODE__NOT_FOUND)
			mc->ok++;
		onecard_reply_free(rep);
	}
	return NULL;
}

/*
 * Clients on both workers at once: each worker chains its own lines into
 * the one trail, and every request still has its line, in a chain that
 * verifies (audit_trail_verifies_with_onecardctl, next).
 */
static void
audit_lines_from_concurrent_clients_all_chain(void **state)
{
	struct many_client mc[MANY_CLIENTS];
	char needle[48];

	/* Connected here: the harness is not for several threads. */
	for (int i = 0; i < MANY_CLIENTS; i++) {
		mc[i].idx = i;
		mc[i].ok = 0;
		mc[i].c = NULL;
		assert_int_equal(
		    harness_connect(&obs.h, "XC001", &mc[i].c), ONECARD_OK);
	}
	for (int i = 0; i < MANY_CLIENTS; i++)
		assert_int_equal(
		    pthread_create(&mc[i].t, NULL, many_client_run, &mc[i]), 0);
	for (int i = 0; i < MANY_CLIENTS; i++) {
		pthread_join(mc[i].t, NULL);
		onecard_close(mc[i].c);
		assert_int_equal(mc[i].ok, MANY_LOOKUPS);
	}
	/* Each reply came after its line was written. */
	char *trail = slurp(obs.audit);
	assert_non_null(trail);
	assert_int_equal(
	    count_lines(trail, "MRN-MANY-", NULL), MANY_CLIENTS * MANY_LOOKUPS);
	for (int i = 0; i < MANY_CLIENTS; i++) {
		snprintf(needle, sizeof(needle), "MRN-MANY-%d-%d\"", i,
		    MANY_LOOKUPS - 1);
		assert_int_equal(count_lines(trail, needle, NULL), 1);
	}
	free(trail);
}

static void
audit_trail_verifies_with_onecardctl(void **state)
{
	char out[4096], cmd[512];

	snprintf(cmd, sizeof(cmd), "onecardctl audit verify %s", obs.audit);
	assert_int_equal(harness_run(&obs.h, NULL, out, sizeof(out), cmd), 0);
	assert_non_null(strstr(out, "ok: "));
	assert_non_null(strstr(out, "lines intact (seq 1.."));

	snprintf(cmd, sizeof(cmd), "onecardctl audit search --patient %s %s",
	    obs.enrolled_pid, obs.audit);
	assert_int_equal(harness_run(&obs.h, NULL, out, sizeof(out), cmd), 0);
	assert_true(count_lines(out, "\"op\":\"enroll\"", NULL) == 1);
}

static void
no_full_cn_id_or_name_in_the_trail_or_the_log(void **state)
{
	char *trail = slurp(obs.audit);
	char *log = slurp(obs.h.log_path);

	assert_non_null(trail);
	assert_non_null(log);
	assert_null(strstr(trail, NOBODY_ID));
	assert_null(strstr(log, NOBODY_ID));
	assert_null(strstr(trail, obs.enrolled_id));
	assert_null(strstr(log, obs.enrolled_id));
	/* The birth date inside the number is the part that is masked. */
	assert_null(strstr(trail, "19491231"));
	assert_null(strstr(log, "19491231"));
	assert_null(strstr(trail, PATIENT_NAME));
	assert_null(strstr(log, PATIENT_NAME));
	free(trail);
	free(log);
}

static void
audit_trail_rotates_on_sighup_and_the_chain_carries_over(void **state)
{
	struct onecard_conn *c = NULL;
	char old[160], out[4096], cmd[512];
	struct stat st;

	snprintf(old, sizeof(old), "%s.1", obs.audit);
	assert_int_equal(rename(obs.audit, old), 0);
	assert_int_equal(kill(obs.h.pid, SIGHUP), 0);
	for (int i = 0; stat(obs.audit, &st) == -1; i++) {
		assert_true(i < 100);
		usleep(50 * 1000);
	}
	assert_int_equal(harness_connect(&obs.h, "XC001", &c), ONECARD_OK);
	assert_int_equal(
	    lookup(c, "cn-id", NOBODY_ID), ONECARD__V1__CODE__NOT_FOUND);
	onecard_close(c);

	char *trail = slurp(obs.audit);
	assert_non_null(trail);
	assert_int_equal(count_lines(trail, "\"op\":\"lookup\"", NULL), 1);
	free(trail);
	snprintf(
	    cmd, sizeof(cmd), "onecardctl audit verify %s %s", old, obs.audit);
	assert_int_equal(harness_run(&obs.h, NULL, out, sizeof(out), cmd), 0);
	assert_non_null(strstr(out, "in 2 file(s)"));
	/* In the wrong order the files do not verify. */
	snprintf(
	    cmd, sizeof(cmd), "onecardctl audit verify %s %s", obs.audit, old);
	assert_int_equal(harness_run(&obs.h, NULL, out, sizeof(out), cmd), 1);
	assert_non_null(strstr(out, "reordered"));
}

static void
metrics_exposition_passes_promtool(void **state)
{
	char *expo = scrape(), path[160], out[8192], cmd[512];
	FILE *f;

	/* Every family an operator alerts on is there, named onecard_*. */
	assert_non_null(strstr(expo, "# TYPE onecard_requests_total counter"));
	assert_non_null(
	    strstr(expo, "# TYPE onecard_request_duration_seconds histogram"));
	assert_non_null(strstr(expo, "# TYPE onecard_connections_open gauge"));
	assert_non_null(strstr(expo,
	    "# TYPE onecard_commit_batch_size "
	    "histogram"));
	assert_non_null(strstr(expo, "# HELP onecard_audit_lines_total "));
	for (const char *l = expo; *l != '\0'; l = strchr(l, '\n') + 1) {
		assert_true(strncmp(l, "onecard_", 8) == 0 ||
		    strncmp(l, "# HELP onecard_", 15) == 0 ||
		    strncmp(l, "# TYPE onecard_", 15) == 0);
		assert_non_null(strchr(l, '\n'));
	}

	snprintf(path, sizeof(path), "%s/metrics.txt", obs.tmp);
	assert_non_null(f = fopen(path, "w"));
	fputs(expo, f);
	fclose(f);
	free(expo);
	snprintf(cmd, sizeof(cmd),
	    "command -v promtool >/dev/null || { echo 'promtool is missing: "
	    "apt-get install prometheus'; exit 99; }; "
	    "promtool check metrics < %s 2>&1",
	    path);
	int rc = harness_run(&obs.h, NULL, out, sizeof(out), cmd);
	if (rc != 0)
		fprintf(stderr, "promtool: %s\n", out);
	assert_int_equal(rc, 0);
}

static void
unknown_path_is_404(void **state)
{
	assert_int_equal(http_get("/", NULL, 0, NULL, 0), 404);
	assert_int_equal(http_get("/metricsx", NULL, 0, NULL, 0), 404);
}

/* Last: it takes the database away from under the broker. */
static void
healthz_is_503_while_the_registry_file_is_gone(void **state)
{
	char body[256], away[400];

	/* The SQLite file; losing PostgreSQL is pg/ha's. */
	if (harness_on_pg())
		skip();
	assert_int_equal(
	    http_get("/healthz", body, sizeof(body), NULL, 0), 200);
	assert_string_equal(body, "ok\n");

	/* A file moved or deleted by mistake: the broker's open handles read
	 * on, but the registry a restart would open is gone. */
	snprintf(away, sizeof(away), "%s.away", obs.h.db);
	assert_int_equal(rename(obs.h.db, away), 0);
	assert_int_equal(
	    http_get("/healthz", body, sizeof(body), NULL, 0), 503);
	/* /metrics still answers, without the registry's gauges. */
	char *expo = scrape();
	assert_null(strstr(expo, "onecard_registry_patients "));
	assert_non_null(strstr(expo, "onecard_requests_total"));
	free(expo);

	assert_int_equal(rename(away, obs.h.db), 0);
	assert_int_equal(
	    http_get("/healthz", body, sizeof(body), NULL, 0), 200);
	expo = scrape();
	assert_true(metric(expo, "onecard_registry_patients") >= 1);
	free(expo);

	/* The transitions are logged once each. */
	char *log = slurp(obs.h.log_path);
	assert_non_null(log);
	assert_int_equal(count_lines(log, "registry unavailable", NULL), 1);
	assert_int_equal(count_lines(log, "registry answers again", NULL), 1);
	free(log);
}

/* After everything else: SIGTERM closes the trail and logs its head. */
static void
shutdown_logs_the_head_that_verify_checks(void **state)
{
	char old[160], out[4096], cmd[700], head[65], *log, *p;

	assert_int_equal(harness_stop(&obs.h, SIGTERM), 0);
	assert_non_null(log = slurp(obs.h.log_path));
	assert_non_null(p = strstr(log, "audit trail closed at seq "));
	assert_non_null(p = strstr(p, "head "));
	snprintf(head, sizeof(head), "%.64s", p + 5);
	free(log);

	snprintf(old, sizeof(old), "%s.1", obs.audit);
	snprintf(cmd, sizeof(cmd), "onecardctl audit verify --head %s %s %s",
	    head, old, obs.audit);
	assert_int_equal(harness_run(&obs.h, NULL, out, sizeof(out), cmd), 0);
	assert_non_null(strstr(out, head));
	/* The old file alone does not end at that head. */
	snprintf(cmd, sizeof(cmd), "onecardctl audit verify --head %s %s", head,
	    old);
	assert_int_equal(harness_run(&obs.h, NULL, out, sizeof(out), cmd), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(requests_move_the_counters),
	    cmocka_unit_test(
		a_certificate_from_another_ca_counts_as_a_failed_handshake),
	    cmocka_unit_test(audit_trail_has_a_masked_line_per_request),
	    cmocka_unit_test(audit_lines_from_concurrent_clients_all_chain),
	    cmocka_unit_test(audit_trail_verifies_with_onecardctl),
	    cmocka_unit_test(no_full_cn_id_or_name_in_the_trail_or_the_log),
	    cmocka_unit_test(
		audit_trail_rotates_on_sighup_and_the_chain_carries_over),
	    cmocka_unit_test(metrics_exposition_passes_promtool),
	    cmocka_unit_test(unknown_path_is_404),
	    cmocka_unit_test(healthz_is_503_while_the_registry_file_is_gone),
	    cmocka_unit_test(shutdown_logs_the_head_that_verify_checks),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
