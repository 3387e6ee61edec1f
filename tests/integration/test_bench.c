/*
 * test_bench.c: a short smoke run of onecard-bench against a real onecardd.
 *
 * Checks that the report is well formed and adds up (every request
 * answered and counted by code, percentiles in order, a population found
 * again by its seed, write runs making new patients, --rate holding its
 * cap), not how fast the broker is: no broker timing is asserted.
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

#define BUF 65536

static const char *const codes[] = {"BENCH", NULL};
static char out[BUF], err[BUF];

/* Run an onecard-bench command line (printf-style) as hospital BENCH. */
static int __attribute__((format(printf, 2, 3)))
run(struct harness *h, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = harness_run2(h, "BENCH", out, sizeof(out), err, sizeof(err), cmd);
	if (getenv("TEST_BENCH_VERBOSE") != NULL)
		fprintf(stderr, "$ %s\n[%d]\n%s%s", cmd, rc, out, err);
	return rc;
}

/* The number after "key": in the JSON report; fails the test if absent. */
static double
num(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	if (p == NULL)
		fail_msg("no %s in %s", key, json);
	return strtod(p + strlen(pat), NULL);
}

static int
setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));

	if (h == NULL || harness_start(h, codes, NULL) == -1) {
		free(h);
		return -1;
	}
	*state = h;
	return 0;
}

static int
teardown(void **state)
{
	struct harness *h = *state;

	harness_cleanup(h);
	free(h);
	return 0;
}

/* Percentiles never decrease and none exceeds the maximum. */
static void
assert_percentiles_ordered(const char *json)
{
	double p50 = num(json, "p50_ms"), p90 = num(json, "p90_ms"),
	       p99 = num(json, "p99_ms"), p999 = num(json, "p999_ms"),
	       max = num(json, "max_ms");

	assert_true(p50 > 0);
	assert_true(p50 <= p90);
	assert_true(p90 <= p99);
	assert_true(p99 <= p999);
	assert_true(p999 <= max);
}

static void
populate_then_lookup_finds_every_key(void **state)
{
	struct harness *h = *state;

	assert_int_equal(run(h,
			     "onecard-bench --op lookup --populate --keys 300 "
			     "--seed 7 -c 4 -P 8 -n 500 --threads 2 --json"),
	    0);
	assert_true(num(out, "populate_requests") == 300);
	assert_true(num(out, "populate_created") == 300);
	assert_true(num(out, "populate_failed") == 0);
	assert_true(num(out, "requests") == 500);
	assert_true(num(out, "OK") == 500);
	assert_true(num(out, "not_ok") == 0);
	assert_true(num(out, "errors") == 0);
	assert_true(num(out, "connected") == 4);
	/* Every connection, both threads', used one TLS context. */
	assert_true(num(out, "tls_contexts") == 1);
	assert_true(num(out, "tls_handshakes") >= 4);
	assert_true(num(out, "throughput") > 0);
	assert_percentiles_ordered(out);

	/* A later run finds the same population by its seed alone, zipf
	 * included; another seed finds nothing. */
	assert_int_equal(run(h,
			     "onecard-bench --op lookup --assume-populated "
			     "--keys 300 --seed 7 --dist zipf -c 2 -n 200 "
			     "--json"),
	    0);
	assert_true(num(out, "OK") == 200);
	assert_int_equal(run(h,
			     "onecard-bench --op lookup --assume-populated "
			     "--keys 300 --seed 8 -c 2 -n 50 --json"),
	    0);
	assert_true(num(out, "NOT_FOUND") == 50);
	assert_true(num(out, "not_ok") == 50);
}

static void
enroll_run_makes_a_new_patient_per_request(void **state)
{
	struct harness *h = *state;

	assert_int_equal(
	    run(h, "onecard-bench --op enroll -c 5 -n 120 --json"), 0);
	assert_true(num(out, "requests") == 120);
	assert_true(num(out, "created") == 120);
	/* A second run is a new set of patients, not a re-enrollment. */
	assert_int_equal(
	    run(h, "onecard-bench --op enroll -c 5 -P 4 -n 80 --json"), 0);
	assert_true(num(out, "created") == 80);
	assert_percentiles_ordered(out);
}

static void
mixed_run_counts_every_kind_and_text_report_reads(void **state)
{
	struct harness *h = *state;

	assert_int_equal(run(h,
			     "onecard-bench --op mixed "
			     "--mix lookup=50,enroll=25,link=25 --populate "
			     "--keys 100 -c 3 -P 2 -n 300"),
	    0);
	assert_non_null(strstr(out, "requests  300 answered, 0 lost"));
	assert_non_null(strstr(out, "codes     OK 300"));
	assert_non_null(strstr(out, "throughput "));
	assert_non_null(strstr(out, "latency ms p50 "));
	assert_non_null(strstr(out, "populate: 100 enrollments (100 new)"));
}

static void
idle_run_holds_connections_and_progress_goes_to_stderr(void **state)
{
	struct harness *h = *state;

	assert_int_equal(
	    run(h, "onecard-bench --op idle -c 20 -d 1.5 --json"), 0);
	assert_true(num(out, "connected") == 20);
	assert_true(num(out, "OK") == 20); /* one ping each */
	assert_non_null(strstr(err, "20 connections open"));
	assert_non_null(strstr(err, "holding 20 connections open"));
	assert_null(strstr(out, "onecard-bench:"));
}

/*
 * --rate caps the run: 200 pings a second for 2 s are no more than 400
 * (plus the one each thread may start with), and the broker is far from
 * the cap, so the run comes near it.
 */
static void
rate_caps_the_requests_a_second(void **state)
{
	struct harness *h = *state;
	double n;

	assert_int_equal(
	    run(h,
		"onecard-bench --op ping -c 8 -P 4 -d 2 --rate 200 "
		"--threads 2 --json"),
	    0);
	n = num(out, "requests");
	assert_true(n <= 200 * 2 + 2);
	assert_true(n >= 200);
	assert_true(num(out, "errors") == 0);
	assert_true(num(out, "OK") == n);
	assert_int_equal(run(h, "onecard-bench --op ping --rate 0 -n 5"), 2);
	assert_non_null(strstr(err, "--rate"));
}

static void
bad_usage_and_unreachable_broker_fail_cleanly(void **state)
{
	struct harness *h = *state;
	char cmd[1200];

	/* A lookup run with no population to look in is a usage error. */
	assert_int_equal(run(h, "onecard-bench --op lookup -n 10"), 2);
	assert_non_null(strstr(err, "needs a population"));
	assert_int_equal(run(h, "onecard-bench --op frobnicate"), 2);
	assert_int_equal(run(h, "onecard-bench --mix lookup=x --op mixed"), 2);
	/* An unreachable broker exits as the other CLIs do (docs/cli.md). */
	assert_int_equal(
	    run(h, "onecard-bench --broker 127.0.0.1:1 --op ping -c 2 -n 5"),
	    4);
	assert_non_null(strstr(err, "no connection came up"));
	/* A certificate from another CA: TLS 1.3 lets the handshake end
	 * before the broker's alert, so the connections come up and are
	 * lost at once; still a transport error, exit 4, not 0. */
	snprintf(cmd, sizeof(cmd),
	    "/bin/sh '%s/certs/mkcerts.sh' -d '%s/other-pki' BENCH >/dev/null",
	    ONECARD_SOURCE_DIR, h->dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(
	    run(h,
		"onecard-bench --cert %s/other-pki/BENCH.pem --key "
		"%s/other-pki/BENCH.key --op ping -c 2 -n 20",
		h->dir, h->dir),
	    4);
	assert_non_null(strstr(err, "tlsv1 alert unknown ca"));
	assert_int_equal(run(h, "onecard-bench --version"), 0);
	assert_non_null(strstr(out, "onecard-bench "));
	assert_int_equal(run(h, "onecard-bench --help"), 0);
	assert_int_equal(
	    run(h, "onecard-bench --op lookup --keys-from /nonexistent -n 1"),
	    2);
	assert_non_null(strstr(err, "/nonexistent"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		populate_then_lookup_finds_every_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		enroll_run_makes_a_new_patient_per_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		mixed_run_counts_every_kind_and_text_report_reads, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		idle_run_holds_connections_and_progress_goes_to_stderr, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		rate_caps_the_requests_a_second, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		bad_usage_and_unreachable_broker_fail_cleanly, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
