/*
 * test_signals.c: onecardd's signals against a real broker. SIGTERM under
 * load exits 0 and loses no acknowledged write (every enrollment answered
 * OK is found after a restart, with the same patient id); SIGTERM with idle
 * clients closes them and exits 0 at once; SIGHUP reopens the audit log
 * (for rotation) without dropping connections; writes the registry commits
 * after their clients are gone and the broker is stopping still get their
 * audit line.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "onecard.h"

#define LOADERS 4

static void
test_sigterm_under_load_exits_0_and_loses_no_acknowledged_write(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct harness_load *load;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	load = harness_load_start(&h, "H1", "S", LOADERS);
	assert_non_null(load);
	usleep(700 * 1000);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_true(harness_load_wait(load) > 0);
	assert_int_equal(harness_restart(&h, NULL), 0);
	assert_int_equal(harness_load_verify(load), 0);
	harness_load_free(load);
	harness_cleanup(&h);
}

static void
test_sigterm_with_idle_clients_closes_them_and_exits_0(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct onecard_conn *c[3];
	Onecard__V1__Reply *reply = NULL;
	struct timespec t0, t1;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(harness_connect(&h, "H1", &c[i]), ONECARD_OK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* No waiting out the grace period for clients with nothing to do. */
	assert_true(t1.tv_sec - t0.tv_sec < 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(onecard_recv(c[i], &reply), ONECARD_ECLOSED);
		onecard_close(c[i]);
	}
	harness_cleanup(&h);
}

static void
test_sighup_reopens_the_audit_log_without_dropping_connections(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	char audit[400], rotated[420];
	const char *extra[] = {"--audit-log", audit, NULL};
	struct onecard_conn *conn;
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Reply *reply;
	struct stat st;
	int found = 0;

	/* The folder is made by harness_start; point the audit log into it. */
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	snprintf(audit, sizeof(audit), "%s/audit.log", h.dir);
	snprintf(rotated, sizeof(rotated), "%s/audit.log.1", h.dir);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, extra), 0);
	assert_int_equal(harness_connect(&h, "H1", &conn), ONECARD_OK);
	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_OK);
	onecard_reply_free(reply);

	assert_int_equal(rename(audit, rotated), 0);
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	for (int i = 0; i < 50 && !found; i++) {
		usleep(100 * 1000);
		found = stat(audit, &st) == 0;
	}
	assert_true(found);
	/* The same connection goes on, and its requests land in the new file.
	 */
	req.id = 0;
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_OK);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	onecard_reply_free(reply);
	found = 0;
	for (int i = 0; i < 50 && !found; i++) {
		found = stat(audit, &st) == 0 && st.st_size > 0;
		if (!found)
			usleep(100 * 1000);
	}
	assert_true(found);
	onecard_close(conn);
	harness_cleanup(&h);
}

static void
test_sigterm_answers_every_request_already_received(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct onecard_conn *conn;
	Onecard__V1__Reply *reply;
	enum {
		N = 300
	};
	int status;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	assert_int_equal(harness_connect(&h, "H1", &conn), ONECARD_OK);
	for (size_t i = 0; i < N; i++) {
		struct harness_enroll e;

		harness_enroll_init(&e, i + 1, "hosp:H1", "S9-%zu", i);
		assert_int_equal(onecard_send(conn, &e.req), ONECARD_OK);
	}
	assert_int_equal(onecard_flush(conn), ONECARD_OK);
	usleep(200 * 1000); /* the broker has them now; most are in flight */
	assert_int_equal(kill(h.pid, SIGTERM), 0);
	/* Every request received is answered, in order, before the close. */
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(onecard_recv(conn, &reply), ONECARD_OK);
		assert_int_equal(reply->id, i + 1);
		assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
		onecard_reply_free(reply);
	}
	assert_int_equal(onecard_recv(conn, &reply), ONECARD_ECLOSED);
	onecard_close(conn);
	status = harness_stop(&h, SIGTERM);
	assert_int_equal(status, 0);
	harness_cleanup(&h);
}

/* Lines of file holding every one of the NULL-terminated needles. */
static long
count_lines_with(const char *path, const char *const *needles)
{
	char line[2048];
	long n = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *const *p;

		for (p = needles; *p != NULL && strstr(line, *p) != NULL; p++)
			;
		n += *p == NULL;
	}
	fclose(f);
	return n;
}

/*
 * Clients killed while thousands of their pipelined enrollments wait at the
 * writer, then SIGTERM: the workers, whose connections are gone, have
 * nothing to drain and stop at once, while the writer still commits what
 * it holds. Each committed enrollment must still have its audit line.
 */
static void
test_sigterm_audits_writes_committed_after_their_clients_left(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	char audit[400], cmd[600], out[512];
	const char *extra[] = {"--audit-log", audit, NULL};
	const char *ok_enroll[] = {
	    "\"op\":\"enroll\"", "\"code\":\"OK\"", NULL};
	unsigned long long patients = 0;
	long lines;
	char *p;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	snprintf(audit, sizeof(audit), "%s/audit.log", h.dir);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, extra), 0);
	snprintf(cmd, sizeof(cmd),
	    "onecard-bench --broker %s --op enroll -c 16 -P 256 -d 30 --quiet "
	    ">/dev/null 2>&1 & b=$!; sleep 1; kill -KILL $b; sleep 0.05; "
	    "kill -TERM %d; wait $b; exit 0",
	    h.addr, (int)h.pid);
	assert_int_equal(harness_run(&h, "H1", NULL, 0, cmd), 0);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);

	assert_int_equal(harness_restart(&h, NULL), 0);
	assert_int_equal(harness_run(&h, "admin", out, sizeof(out),
			     "onecardctl stats --json"),
	    0);
	assert_non_null(p = strstr(out, "\"patients\":"));
	patients = strtoull(p + strlen("\"patients\":"), NULL, 10);
	assert_true(patients > 0);
	lines = count_lines_with(audit, ok_enroll);
	if (lines != (long)patients)
		fprintf(stderr, "%llu patients committed, %ld audited\n",
		    patients, lines);
	assert_int_equal(lines, (long)patients);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_sigterm_under_load_exits_0_and_loses_no_acknowledged_write),
	    cmocka_unit_test(
		test_sigterm_answers_every_request_already_received),
	    cmocka_unit_test(
		test_sigterm_with_idle_clients_closes_them_and_exits_0),
	    cmocka_unit_test(
		test_sighup_reopens_the_audit_log_without_dropping_connections),
	    cmocka_unit_test(
		test_sigterm_audits_writes_committed_after_their_clients_left),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
