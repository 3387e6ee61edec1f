/*
 * test_readme.c: the examples in README.md and docs/csv.md run.
 *
 * A block marked <!-- example: ... --> in README.md is run line by line, in
 * order, against a fresh onecardd (port 0, generated certificates), each
 * command in a work folder with var/audit.log as the broker's audit trail,
 * as an operator would type it after scripts/run-demo.sh: onecardctl lines
 * with the admin's certificate, onecard lines with the desk XC001's. Every
 * line must exit 0. The marked block of docs/csv.md must import cleanly.
 * A README example that stops working fails here, not on a new operator's
 * first day.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "harness.h"

#define MARKER "<!-- example:"

static struct harness h;
static char work[256];  /* the operator's folder: var/audit.log, pop.csv */
static char audit[320]; /* work/var/audit.log */
static char out[65536], err[65536];

/* The lines of the fenced block after the first marker in file (relative to
 * the source tree), one a string, NULL-terminated; blank lines and comments
 * left out. NULL when there is no marked block. */
static char **
example_block(const char *file, int keep_blank)
{
	char path[512], *line = NULL, **lines = NULL;
	size_t cap = 0, n = 0;
	int state = 0; /* 0: before the marker, 1: before the fence, 2: in */
	ssize_t len;
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", ONECARD_SOURCE_DIR, file);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while ((len = getline(&line, &cap, fp)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (state == 0) {
			if (strncmp(line, MARKER, strlen(MARKER)) == 0)
				state = 1;
			continue;
		}
		if (state == 1) {
			assert_memory_equal(line, "```", 3);
			state = 2;
			continue;
		}
		if (strncmp(line, "```", 3) == 0)
			break;
		if (!keep_blank && (line[0] == '\0' || line[0] == '#'))
			continue;
		lines = realloc(lines, (n + 2) * sizeof(*lines));
		assert_non_null(lines);
		lines[n] = strdup(line);
		assert_non_null(lines[n]);
		lines[++n] = NULL;
	}
	free(line);
	fclose(fp);
	return lines;
}

static void
lines_free(char **lines)
{
	char **l;

	for (l = lines; l != NULL && *l != NULL; l++)
		free(*l);
	free(lines);
}

static int
group_setup(void **state)
{
	static const char *const desks[] = {"XC001", NULL};
	const char *extra[] = {"--audit-log", audit, NULL};
	char var[300];

	snprintf(work, sizeof work, "/tmp/onecard-readme.XXXXXX");
	if (mkdtemp(work) == NULL)
		return -1;
	snprintf(var, sizeof var, "%s/var", work);
	snprintf(audit, sizeof audit, "%s/audit.log", var);
	if (mkdir(var, 0700) == -1)
		return -1;
	/* No hospital yet: the README's first line registers XC001. */
	if (harness_start(&h, NULL, extra) == -1)
		return -1;
	return harness_certs(&h, desks);
}

static int
group_teardown(void **state)
{
	char cmd[512];

	harness_cleanup(&h);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
	return system(cmd) == 0 ? 0 : -1;
}

/* Run one line of an example in the work folder, as the CLI's user. */
static int
run_line(const char *line)
{
	char cmd[4096];
	const char *cn;
	int status;

	cn = strncmp(line, "onecardctl ", 11) == 0 ? "admin" : "XC001";
	snprintf(cmd, sizeof cmd, "cd '%s' && %s", work, line);
	status = harness_run2(&h, cn, out, sizeof out, err, sizeof err, cmd);
	if (status != 0 || getenv("ONECARD_TEST_VERBOSE") != NULL)
		fprintf(
		    stderr, "$ %s\n[exit %d]\n%s%s", line, status, out, err);
	return status;
}

static void
readme_example_block_runs_in_order(void **state)
{
	char **lines = example_block("README.md", 0), **l;
	int n = 0;

	assert_non_null(lines);
	for (l = lines; *l != NULL; l++, n++)
		assert_int_equal(run_line(*l), 0);
	assert_true(n >= 10);
	/* It did what it says: one man, his two records merged. */
	assert_int_equal(run_line("onecard lookup hosp:XC001=MRN-7 --json"), 0);
	assert_non_null(strstr(out, "\"value\":\"110105194912310011\""));
	assert_non_null(strstr(out, "\"phone\":\"13800000000\""));
	lines_free(lines);
}

static void
csv_doc_example_imports_cleanly(void **state)
{
	char **lines = example_block("docs/csv.md", 1), **l, path[512];
	FILE *fp;

	assert_non_null(lines);
	snprintf(path, sizeof path, "%s/example.csv", work);
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (l = lines; *l != NULL; l++)
		fprintf(fp, "%s\n", *l);
	assert_int_equal(fclose(fp), 0);
	lines_free(lines);
	assert_int_equal(
	    run_line("onecardctl hospital add H001 --name 'Hospital 1'"), 0);
	assert_int_equal(run_line("onecardctl import example.csv"), 0);
	assert_non_null(strstr(out, "rows 2, created 2, already there 0"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(readme_example_block_runs_in_order),
	    cmocka_unit_test(csv_doc_example_imports_cleanly),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
