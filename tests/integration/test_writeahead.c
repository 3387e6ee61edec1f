/*
 * test_writeahead.c: writes are answered at the redo log's sync and folded
 * into the SQLite image behind. With the fold held back (the test hook
 * ONECARD_TEST_FOLD_HOLD names a file; while it exists the fold waits),
 * every acknowledged write is read back at once, survives kill -9 and a
 * log cut short before its end, and writes wait (never fail) at the
 * --max-unfolded bound while lookups go on.
 */
#include <fcntl.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "onecard.h"

#define LOADERS 8

/* The hold file of the test running now (in its harness's folder). */
static char hold[400];

/* Hold the fold of the brokers started from now on (the harness makes
 * its folder at start, so the file lives beside it). */
static void
hold_fold(void)
{
	int fd;

	snprintf(
	    hold, sizeof(hold), "/tmp/onecard-fold-hold.%ld", (long)getpid());
	setenv("ONECARD_TEST_FOLD_HOLD", hold, 1);
	fd = open(hold, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static void
release_fold(void)
{
	unlink(hold);
	unsetenv("ONECARD_TEST_FOLD_HOLD");
}

/* Scrape /metrics; a malloc'd string or NULL. */
static char *
scrape(struct harness *h)
{
	int port = harness_metrics_port(h);
	char *body = malloc(1 << 20);

	if (port <= 0 || body == NULL ||
	    harness_http_get(port, "/metrics", body, 1 << 20, NULL, 0) != 200) {
		free(body);
		return NULL;
	}
	return body;
}

static double
metric_now(struct harness *h, const char *series)
{
	char *expo = scrape(h);
	double v;

	assert_non_null(expo);
	v = harness_metric(expo, series);
	free(expo);
	return v;
}

/* Wait up to ms for a metric to reach want (>=). */
static int
metric_reaches(struct harness *h, const char *series, double want, int ms)
{
	long long end = harness_now_ms() + ms;

	while (harness_now_ms() < end) {
		if (metric_now(h, series) >= want)
			return 1;
		usleep(50 * 1000);
	}
	return 0;
}

static int
metric_falls_to(struct harness *h, const char *series, double want, int ms)
{
	long long end = harness_now_ms() + ms;

	while (harness_now_ms() < end) {
		if (metric_now(h, series) <= want)
			return 1;
		usleep(50 * 1000);
	}
	return 0;
}

/* Enroll hosp:H1=value; the reply's code, or -1. */
static int
enroll(struct onecard_conn *conn, const char *value)
{
	struct harness_enroll e;
	Onecard__V1__Reply *reply = NULL;
	int code;

	harness_enroll_init(&e, 1, "hosp:H1", "%s", value);
	if (onecard_call(conn, &e.req, &reply) != ONECARD_OK)
		return -1;
	code = reply->code;
	onecard_reply_free(reply);
	return code;
}

/* Look hosp:H1=value up; the reply's code, or -1. */
static int
lookup(struct onecard_conn *conn, const char *value)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *reply = NULL;
	int code;

	id.domain = "hosp:H1";
	id.value = (char *)value;
	l.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &l;
	if (onecard_call(conn, &req, &reply) != ONECARD_OK)
		return -1;
	code = reply->code;
	onecard_reply_free(reply);
	return code;
}

static const char *metrics_args[] = {"--metrics-listen", "127.0.0.1:0", NULL};

/* kill -9 with every write unfolded: the restart replays the log, and the
 * fold catches up after it. */
static void
test_kill_9_with_the_fold_held_loses_nothing(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct harness_load *load;
	size_t total;

	hold_fold();
	assert_int_equal(harness_start(&h, codes, metrics_args), 0);
	load = harness_load_start(&h, "H1", "K", LOADERS);
	assert_non_null(load);
	usleep(800 * 1000);
	/* Everything so far is answered, and none of it is in the image. */
	assert_true(metric_now(&h, "onecard_registry_unfolded_entries") > 0);
	assert_true(
	    metric_now(&h, "onecard_registry_folded_entries_total") == 0);
	harness_stop(&h, SIGKILL);
	total = harness_load_wait(load);
	assert_true(total > 0);
	print_message("%zu enrollments acknowledged, none folded\n", total);

	/* Still held: read back from the replayed log alone. */
	assert_int_equal(harness_restart(&h, metrics_args), 0);
	assert_int_equal(harness_load_verify(load), 0);
	assert_true(metric_now(&h, "onecard_registry_unfolded_entries") > 0);

	/* Released: the fold catches up; kill -9 again and all is there. */
	release_fold();
	assert_true(
	    metric_falls_to(&h, "onecard_registry_unfolded_entries", 0, 30000));
	assert_true(
	    metric_now(&h, "onecard_registry_folded_entries_total") > 0);
	harness_stop(&h, SIGKILL);
	assert_int_equal(harness_restart(&h, metrics_args), 0);
	assert_int_equal(harness_load_verify(load), 0);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	harness_load_free(load);
	harness_cleanup(&h);
}

/* kill -9 while the fold is running under load, again and again. */
static void
test_kill_9_during_folds_loses_nothing(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct harness_load *load[4];
	char tag[8];

	assert_int_equal(harness_start(&h, codes, metrics_args), 0);
	for (int r = 0; r < 4; r++) {
		snprintf(tag, sizeof(tag), "F%d-", r);
		load[r] = harness_load_start(&h, "H1", tag, LOADERS);
		assert_non_null(load[r]);
		/* Until the fold has taken some of this round's entries. */
		assert_true(metric_reaches(
		    &h, "onecard_registry_folded_entries_total", 1, 10000));
		usleep((useconds_t)(200 + r * 150) * 1000);
		harness_stop(&h, SIGKILL);
		assert_true(harness_load_wait(load[r]) > 0);
		assert_int_equal(harness_restart(&h, metrics_args), 0);
		for (int k = 0; k <= r; k++)
			assert_int_equal(harness_load_verify(load[k]), 0);
	}
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	for (int r = 0; r < 4; r++)
		harness_load_free(load[r]);
	harness_cleanup(&h);
}

/* A log whose last entry was cut short (a torn write): the broker starts,
 * keeps every whole entry and drops only the torn one. */
static void
test_a_redo_log_cut_short_keeps_every_whole_entry(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct harness_load *load;
	struct onecard_conn *conn;
	char redo[400];
	struct stat st;
	size_t total;
	int missing;

	hold_fold();
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	load = harness_load_start(&h, "H1", "C", 1);
	assert_non_null(load);
	usleep(500 * 1000);
	harness_stop(&h, SIGKILL);
	total = harness_load_wait(load);
	assert_true(total > 10);

	/* Cut the file inside the last entry: find its end (the zeros
	 * written ahead start there) and take 5 bytes off. */
	snprintf(redo, sizeof(redo), "%s-redo", h.db);
	assert_int_equal(stat(redo, &st), 0);
	{
		FILE *f = fopen(redo, "rb");
		unsigned char *buf = malloc((size_t)st.st_size);
		off_t end = st.st_size;

		assert_non_null(f);
		assert_non_null(buf);
		assert_int_equal(
		    fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
		fclose(f);
		while (end > 0 && buf[end - 1] == 0)
			end--;
		free(buf);
		assert_true(end > 64);
		assert_int_equal(truncate(redo, end - 5), 0);
	}
	assert_int_equal(harness_restart(&h, NULL), 0);
	/* At most the torn entry (one group of one connection's window) is
	 * gone; every other acknowledged enrollment is there. */
	missing = harness_load_verify(load);
	assert_true(missing >= 0);
	assert_true((size_t)missing < total);
	assert_true(missing <= 64);
	/* And writes go on after it. */
	assert_int_equal(harness_connect(&h, "H1", &conn), ONECARD_OK);
	assert_int_equal(enroll(conn, "AFTER-CUT"), ONECARD__V1__CODE__OK);
	onecard_close(conn);
	release_fold();
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	harness_load_free(load);
	harness_cleanup(&h);
}

struct writer_arg {
	struct harness *h;
	int done, acked, failed;
};

/* Enroll until 20 000 are answered or one fails. */
static void *
bound_writer(void *v)
{
	struct writer_arg *wa = v;
	struct onecard_conn *conn;
	char value[32];

	if (harness_connect(wa->h, "H1", &conn) != ONECARD_OK) {
		wa->failed = 1;
		__atomic_store_n(&wa->done, 1, __ATOMIC_RELEASE);
		return NULL;
	}
	for (int i = 0; i < 20000; i++) {
		snprintf(value, sizeof(value), "B-%d", i);
		if (enroll(conn, value) != ONECARD__V1__CODE__OK) {
			wa->failed = 1;
			break;
		}
		__atomic_add_fetch(&wa->acked, 1, __ATOMIC_RELAXED);
	}
	onecard_close(conn);
	__atomic_store_n(&wa->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* At --max-unfolded writes wait for the fold; lookups go on; once the
 * fold is back every write completes, none failed. */
static void
test_writes_wait_at_the_unfolded_bound(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *args[] = {
	    "--metrics-listen", "127.0.0.1:0", "--max-unfolded", "1", NULL};
	struct writer_arg wa = {&h, 0, 0, 0};
	struct onecard_conn *conn;
	pthread_t t;
	int acked;

	hold_fold();
	assert_int_equal(harness_start(&h, codes, args), 0);
	assert_int_equal(
	    metric_now(&h, "onecard_registry_unfolded_bound_bytes"), 1 << 20);
	assert_int_equal(pthread_create(&t, NULL, bound_writer, &wa), 0);
	assert_true(
	    metric_reaches(&h, "onecard_registry_writes_waiting", 1, 60000));
	/* Held at the bound: the writer makes no progress... */
	acked = __atomic_load_n(&wa.acked, __ATOMIC_RELAXED);
	usleep(500 * 1000);
	assert_int_equal(__atomic_load_n(&wa.acked, __ATOMIC_RELAXED), acked);
	assert_false(__atomic_load_n(&wa.done, __ATOMIC_ACQUIRE));
	assert_true(
	    metric_now(&h, "onecard_registry_unfolded_bytes") <= (1 << 20));
	/* ...but what it wrote reads back, on another connection. */
	assert_int_equal(harness_connect(&h, "H1", &conn), ONECARD_OK);
	assert_int_equal(lookup(conn, "B-0"), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_ping(conn), ONECARD__V1__CODE__OK);

	release_fold();
	pthread_join(t, NULL);
	assert_false(wa.failed);
	assert_int_equal(wa.acked, 20000);
	assert_true(
	    metric_falls_to(&h, "onecard_registry_writes_waiting", 0, 30000));
	assert_int_equal(lookup(conn, "B-19999"), ONECARD__V1__CODE__OK);
	onecard_close(conn);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kill_9_with_the_fold_held_loses_nothing),
	    cmocka_unit_test(test_kill_9_during_folds_loses_nothing),
	    cmocka_unit_test(test_a_redo_log_cut_short_keeps_every_whole_entry),
	    cmocka_unit_test(test_writes_wait_at_the_unfolded_bound),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
