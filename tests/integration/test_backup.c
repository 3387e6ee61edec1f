/*
 * test_backup.c: onecardctl backup copies a running broker's registry.
 * Taken under write load, the copy holds every enrollment answered before
 * it began; a broker restored from it (docs/operations.md: stop, put the
 * copy in place of registry.db with no -redo beside it, start) serves the
 * same records, compared one by one with an export of the live registry.
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
#include "onecard.h"

#define EXPORT_MAX (64u << 20)

/* Each line of the export in a sorted array (in place in buf). */
static size_t
lines(char *buf, char ***out)
{
	size_t n = 0, cap = 1024;
	char **v = malloc(cap * sizeof(*v)), *save = NULL, *l;

	for (l = strtok_r(buf, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		if (n == cap)
			v = realloc(v, (cap *= 2) * sizeof(*v));
		v[n++] = l;
	}
	*out = v;
	return n;
}

static int
line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is l among the n sorted lines v? */
static int
in(char **v, size_t n, const char *l)
{
	return bsearch(&l, v, n, sizeof(*v), line_cmp) != NULL;
}

static void
test_backup_under_write_load_restores_record_by_record(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct harness_load *before, *during;
	char cmd[2600], copy[400], msg[4096];
	char *live = malloc(EXPORT_MAX), *restored = malloc(EXPORT_MAX);
	char **lv, **rv;
	size_t nl, nr, acked;

	assert_non_null(live);
	assert_non_null(restored);
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	before = harness_load_start(&h, "H1", "A", 4);
	assert_non_null(before);
	usleep(500 * 1000);
	/* The broker goes on; the loaders stop when their connections do. */
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	acked = harness_load_wait(before);
	assert_true(acked > 0);
	assert_int_equal(harness_restart(&h, NULL), 0);

	/* Backup while four connections keep enrolling. */
	during = harness_load_start(&h, "H1", "B", 4);
	assert_non_null(during);
	usleep(300 * 1000);
	snprintf(copy, sizeof(copy), "%s/backup.db", h.dir);
	snprintf(
	    cmd, sizeof(cmd), "onecardctl backup --db '%s' '%s'", h.db, copy);
	assert_int_equal(harness_run(&h, NULL, msg, sizeof(msg), cmd), 0);
	assert_non_null(strstr(msg, "backup.db"));
	usleep(300 * 1000);
	/* A second backup into the same file is refused: never overwrite. */
	assert_int_equal(
	    harness_run2(&h, NULL, NULL, 0, msg, sizeof(msg), cmd), 2);
	assert_non_null(strstr(msg, "already there"));

	/* The live registry, once the load is over. */
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	harness_load_wait(during);
	assert_int_equal(harness_restart(&h, NULL), 0);
	assert_int_equal(harness_run(&h, "admin", live, EXPORT_MAX,
			     "onecardctl export --json"),
	    0);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);

	/* Restore: the copy in place of the registry, no log beside it. */
	snprintf(cmd, sizeof(cmd),
	    "rm -f '%s' '%s-redo' '%s-wal' '%s-shm' && cp '%s' '%s'", h.db,
	    h.db, h.db, h.db, copy, h.db);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(harness_restart(&h, NULL), 0);
	assert_int_equal(harness_load_verify(before), 0);
	assert_int_equal(harness_run(&h, "admin", restored, EXPORT_MAX,
			     "onecardctl export --json"),
	    0);

	/* Record by record: each restored patient is the live one, and the
	 * copy holds at least everything answered before it began. */
	nl = lines(live, &lv);
	nr = lines(restored, &rv);
	qsort(lv, nl, sizeof(*lv), line_cmp);
	print_message("%zu patients live, %zu in the backup (%zu before it)\n",
	    nl, nr, acked);
	assert_true(nr >= acked);
	assert_true(nr <= nl);
	for (size_t i = 0; i < nr; i++) {
		if (!in(lv, nl, rv[i]))
			fprintf(stderr, "not live: %s\n", rv[i]);
		assert_true(in(lv, nl, rv[i]));
	}
	/* And the restored broker takes writes. */
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	free(lv);
	free(rv);
	free(live);
	free(restored);
	harness_load_free(before);
	harness_load_free(during);
	harness_cleanup(&h);
}

static void
test_backup_of_a_missing_registry_names_it(void **state)
{
	struct harness h;
	char msg[4096];

	assert_int_equal(harness_start(&h, NULL, NULL), 0);
	assert_int_equal(harness_run2(&h, NULL, NULL, 0, msg, sizeof(msg),
			     "onecardctl backup --db /nonexistent/registry.db "
			     "/tmp/never.db"),
	    5);
	assert_non_null(strstr(msg, "/nonexistent/registry.db"));
	assert_int_equal(access("/tmp/never.db", F_OK), -1);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_backup_under_write_load_restores_record_by_record),
	    cmocka_unit_test(test_backup_of_a_missing_registry_names_it),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
