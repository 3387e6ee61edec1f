/*
 * test_durability.c: an OK is never lost, not even to kill -9. Many
 * connections enroll with pipelining against a real onecardd; the broker is
 * killed with SIGKILL in the middle; after a restart on the same registry,
 * every enrollment that was answered OK is there with the same patient id.
 * That holds only if the writer answers after the group commit has synced.
 * Killed again and again under heavy load, at different moments of the
 * redo log's life (mid-append, mid-commit, mid-checkpoint, right after a
 * replay), every restart still finds every acknowledged write of every
 * round before it.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "onecard.h"

#define LOADERS 8
#define ROUNDS  8

static void
test_kill_9_while_enrolling_loses_no_acknowledged_enrollment(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct harness_load *load, *again;
	size_t total;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	load = harness_load_start(&h, "H1", "K", LOADERS);
	assert_non_null(load);
	usleep(1000 * 1000);
	harness_stop(&h, SIGKILL);
	total = harness_load_wait(load);
	assert_true(total > 0);
	print_message("%zu enrollments acknowledged before kill -9\n", total);
	assert_int_equal(harness_restart(&h, NULL), 0);
	assert_int_equal(harness_load_verify(load), 0);
	/* And the broker takes writes again after the crash. */
	again = harness_load_start(&h, "H1", "R", LOADERS);
	assert_non_null(again);
	usleep(300 * 1000);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_true(harness_load_wait(again) > 0);
	harness_load_free(again);
	harness_load_free(load);
	harness_cleanup(&h);
}

static void
test_kill_9_many_times_in_a_row_loses_no_acknowledged_enrollment(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct harness_load *load[ROUNDS];
	char tag[8];
	size_t total = 0;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	for (int r = 0; r < ROUNDS; r++) {
		snprintf(tag, sizeof(tag), "K%d-", r);
		load[r] = harness_load_start(&h, "H1", tag, LOADERS);
		assert_non_null(load[r]);
		/* A different moment each round: 150 ms to 1 s of load. */
		usleep((useconds_t)(150 + (r * 373) % 850) * 1000);
		harness_stop(&h, SIGKILL);
		total += harness_load_wait(load[r]);
		assert_int_equal(harness_restart(&h, NULL), 0);
		for (int k = 0; k <= r; k++)
			assert_int_equal(harness_load_verify(load[k]), 0);
	}
	print_message(
	    "%zu enrollments acknowledged over %d kills\n", total, ROUNDS);
	assert_true(total > 0);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	for (int r = 0; r < ROUNDS; r++)
		harness_load_free(load[r]);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_kill_9_while_enrolling_loses_no_acknowledged_enrollment),
	    cmocka_unit_test(
		test_kill_9_many_times_in_a_row_loses_no_acknowledged_enrollment),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
