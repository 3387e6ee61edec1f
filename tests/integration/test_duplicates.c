/*
 * test_duplicates.c: the steward's worklist through a real onecardd, with
 * onecardctl as an administrator runs it: a scan finds a planted pair,
 * list, show and dismiss act on it, a dismissed pair stays dismissed after
 * a rescan and an enroll, merge through the worklist merges and closes the
 * pair, a hospital is refused, and the audit trail names every action.
 * The worklist survives kill -9 with nothing folded (replayed from the
 * redo log) and a clean restart (loaded from the image).
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

#define BUF 65536

static const char *const codes[] = {"H001", NULL};
static char out[BUF], err[BUF];

struct dup_test {
	struct harness h;
	char audit_dir[64];
	char audit[128];
};

/* Run an onecardctl command line (printf-style) as cn; its exit status. */
static int __attribute__((format(printf, 3, 4)))
ctl(struct harness *h, const char *cn, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = harness_run2(h, cn, out, sizeof(out), err, sizeof(err), cmd);
	if (getenv("TEST_CTL_VERBOSE") != NULL)
		fprintf(stderr, "$ %s\n[%d]\n%s%s", cmd, rc, out, err);
	return rc;
}

/* The number after "key": in JSON; -1 when it is not there. */
static long long
json_num(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if ((p = strstr(json, pat)) == NULL)
		return -1;
	return strtoll(p + strlen(pat), NULL, 10);
}

/* How often s occurs in text. */
static int
count(const char *text, const char *s)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, s)) != NULL; p += strlen(s))
		n++;
	return n;
}

static int
setup(void **state)
{
	struct dup_test *t = calloc(1, sizeof(*t));
	const char *extra[3];

	if (t == NULL)
		return -1;
	snprintf(t->audit_dir, sizeof(t->audit_dir),
	    "/tmp/onecard-dup-audit-XXXXXX");
	if (mkdtemp(t->audit_dir) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->audit, sizeof(t->audit), "%s/audit.log", t->audit_dir);
	extra[0] = "--audit-log";
	extra[1] = t->audit;
	extra[2] = NULL;
	if (harness_start(&t->h, codes, extra) == -1) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct dup_test *t = *state;
	char cmd[128];

	harness_cleanup(&t->h);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->audit_dir);
	(void)system(cmd);
	free(t);
	return 0;
}

/* Enroll through the desk CLI as H001. */
static void
enroll(struct harness *h, const char *mrn, const char *name, const char *birth,
    const char *phone)
{
	assert_int_equal(ctl(h, "H001",
			     "onecard enroll hosp:H001=%s --name '%s' "
			     "--birth %s --phone %s",
			     mrn, name, birth, phone),
	    0);
}

static void
worklist_scan_show_dismiss_and_merge(void **state)
{
	struct dup_test *t = *state;
	struct harness *h = &t->h;
	char audit[BUF];
	long long pair, other;
	FILE *fp;
	size_t n;

	enroll(h, "A1", "张伟", "1980-03-04", "13800138000");
	enroll(h, "B1", "王芳", "1991-07-08", "13900139000");
	enroll(h, "C1", "刘洋", "1975-01-02", "13700137000");
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list"), 0);
	assert_int_equal(json_num(out, "open"), 0);
	/* B1 is retyped as 张伟's twin record (章: the same sound, the
	 * date's day and month swapped): only a scan can pair them */
	assert_int_equal(ctl(h, "H001",
			     "onecard update hosp:H001=B1 --name 章伟 "
			     "--birth 1980-04-03 --phone 13800138000"),
	    0);
	assert_int_equal(ctl(h, "admin", "onecardctl duplicates scan"), 0);
	assert_non_null(strstr(err, "3/3 patients"));
	assert_non_null(strstr(out, "1 new pairs"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates scan"), 0);
	assert_int_equal(json_num(out, "found"), 0);
	assert_int_equal(json_num(out, "scanned"), 3);

	assert_int_equal(ctl(h, "admin", "onecardctl duplicates list"), 0);
	assert_non_null(strstr(out, "1 open pair"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list"), 0);
	assert_int_equal(json_num(out, "open"), 1);
	pair = json_num(out, "pair_id");
	assert_true(pair > 0);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl duplicates show %lld", pair), 0);
	assert_non_null(strstr(out, "张伟"));
	assert_non_null(strstr(out, "章伟"));
	assert_non_null(strstr(out, "hosp:H001=A1"));
	assert_non_null(strstr(out, "hosp:H001=B1"));
	assert_non_null(strstr(out, "swap"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates show %lld", pair), 0);
	assert_int_equal(out[0], '{');
	assert_int_equal(count(out, "\n"), 1);
	assert_non_null(strstr(out, "\"state\":\"open\""));

	/* a hospital may not see or touch the worklist */
	assert_int_equal(ctl(h, "H001", "onecardctl duplicates list"), 3);
	assert_non_null(strstr(err, "permission denied"));
	assert_int_equal(
	    ctl(h, "H001", "onecardctl duplicates dismiss %lld", pair), 3);
	assert_int_equal(ctl(h, "H001", "onecardctl duplicates scan"), 3);

	assert_int_equal(
	    ctl(h, "admin", "onecardctl duplicates dismiss %lld", pair), 0);
	assert_non_null(strstr(out, "dismissed"));
	assert_int_equal(ctl(h, "admin", "onecardctl duplicates scan"), 0);
	assert_non_null(strstr(out, "0 new pairs"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list"), 0);
	assert_int_equal(json_num(out, "open"), 0);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list --all"), 0);
	assert_non_null(strstr(out, "\"state\":\"dismissed\""));

	/* a third record of him pairs with both; the dismissed pair stays */
	enroll(h, "D1", "张伟", "1980-03-04", "13800138000");
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list"), 0);
	assert_int_equal(json_num(out, "open"), 2);
	assert_null(strstr(out, "\"state\":\"dismissed\""));
	/* the best pair first: D1 and A1 agree in everything */
	other = json_num(out, "pair_id");
	assert_true(other > 0 && other != pair);
	/* a page of one, then the page after it: the second pair */
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list --limit 1"), 0);
	assert_int_equal(json_num(out, "pair_id"), other);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list --after %lld",
		other),
	    0);
	assert_true(json_num(out, "pair_id") > 0);
	assert_true(json_num(out, "pair_id") != other);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list --after 999"),
	    1);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl duplicates merge %lld", other), 0);
	assert_non_null(strstr(out, "merged"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl duplicates merge %lld", other), 3);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl duplicates merge %lld", pair), 3);
	assert_int_equal(ctl(h, "admin", "onecardctl --json stats"), 0);
	assert_non_null(strstr(out, "\"merges\":1,"));
	assert_int_equal(ctl(h, "admin", "onecardctl duplicates show 999"), 1);

	/* the restarted broker keeps the worklist */
	assert_int_equal(harness_stop(h, SIGTERM), 0);
	assert_int_equal(
	    harness_restart(h, (const char *[]){"--audit-log", t->audit, NULL}),
	    0);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list --all"), 0);
	assert_int_equal(count(out, "\"pair_id\""), 3);
	assert_int_equal(count(out, "\"state\":\"merged\""), 1);
	assert_int_equal(count(out, "\"state\":\"dismissed\""), 1);

	/* every action is in the audit trail */
	fp = fopen(t->audit, "r");
	assert_non_null(fp);
	n = fread(audit, 1, sizeof(audit) - 1, fp);
	fclose(fp);
	audit[n] = '\0';
	assert_non_null(strstr(audit, "duplicate_scan"));
	assert_non_null(strstr(audit, "duplicate_list"));
	assert_non_null(strstr(audit, "duplicate_show"));
	assert_non_null(strstr(audit, "duplicate_dismiss"));
	assert_non_null(strstr(audit, "duplicate_merge"));
}

/* Setup for a broker whose fold waits while a hold file exists: the
 * worklist then lives only in memory and the redo log. */
static char hold[128];

static int
setup_held(void **state)
{
	FILE *fp;

	snprintf(
	    hold, sizeof(hold), "/tmp/onecard-dup-hold.%ld", (long)getpid());
	if ((fp = fopen(hold, "w")) == NULL)
		return -1;
	fclose(fp);
	setenv("ONECARD_TEST_FOLD_HOLD", hold, 1);
	return setup(state);
}

static void
worklist_is_replayed_from_the_log_after_kill_9(void **state)
{
	struct dup_test *t = *state;
	struct harness *h = &t->h;
	const char *const extra[] = {"--audit-log", t->audit, NULL};
	long long pair;

	/* The SQLite store's redo log: on PostgreSQL, its own WAL. */
	if (harness_on_pg())
		skip();
	enroll(h, "A1", "赵敏", "1966-06-01", "13600136000");
	enroll(h, "B1", "赵敏", "1966-06-01", "13600136000");
	enroll(h, "C1", "钱芳", "1970-10-11", "13500135000");
	enroll(h, "D1", "钱芳", "1970-10-11", "13500135000");
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list"), 0);
	assert_int_equal(json_num(out, "open"), 2);
	pair = json_num(out, "pair_id");
	assert_int_equal(
	    ctl(h, "admin", "onecardctl duplicates dismiss %lld", pair), 0);
	/* nothing was folded into the image: a restart replays the log */
	assert_int_equal(harness_stop(h, SIGKILL), 128 + SIGKILL);
	unlink(hold);
	unsetenv("ONECARD_TEST_FOLD_HOLD");
	assert_int_equal(harness_restart(h, extra), 0);
	assert_int_equal(harness_log(h, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "-redo: replayed "));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list --all"), 0);
	assert_int_equal(json_num(out, "open"), 1);
	assert_int_equal(count(out, "\"pair_id\""), 2);
	assert_int_equal(count(out, "\"state\":\"dismissed\""), 1);
	/* and once folded, the image alone holds the same */
	assert_int_equal(harness_stop(h, SIGTERM), 0);
	assert_int_equal(harness_restart(h, extra), 0);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list --all"), 0);
	assert_int_equal(json_num(out, "open"), 1);
	assert_int_equal(count(out, "\"state\":\"dismissed\""), 1);
	assert_int_equal(ctl(h, "admin", "onecardctl duplicates scan"), 0);
	assert_non_null(strstr(out, "0 new pairs"));
}

/* The last "match model learnt ..." line of the broker's log, from
 * "prior" on (the time it took left out), into line; 0 when none. */
static int
model_line(struct harness *h, char *line, size_t len)
{
	static char log[1 << 20];
	const char *p = NULL, *q;

	assert_int_equal(harness_log(h, log, sizeof(log)), 0);
	for (q = log; (q = strstr(q, "match model learnt")) != NULL; q++)
		p = q;
	if (p == NULL || (p = strstr(p, "prior ")) == NULL)
		return 0;
	snprintf(line, len, "%.*s", (int)strcspn(p, "\n"), p);
	return 1;
}

/*
 * The model is learnt from the registry itself: once a registry being
 * loaded has doubled past 1000 patients, again by a whole scan, and again
 * at start, each time the same from the same registry (a fixed sample);
 * the scan it grades finds the generated duplicates.
 */
static void
model_is_learnt_from_the_registry(void **state)
{
	struct dup_test *t = *state;
	struct harness *h = &t->h;
	const char *const extra[] = {"--audit-log", t->audit, NULL};
	char csv[160], truth[160], a[256], b[256];

	/* No learnt match model on PostgreSQL yet. */
	if (harness_on_pg())
		skip();
	snprintf(csv, sizeof(csv), "%s/pop.csv", t->audit_dir);
	snprintf(truth, sizeof(truth), "%s/truth.csv", t->audit_dir);
	for (int i = 2; i <= 10; i++)
		assert_int_equal(
		    ctl(h, "admin", "onecardctl hospital add H%03d --name x",
			i),
		    0);
	assert_int_equal(model_line(h, a, sizeof(a)), 0);
	assert_int_equal(ctl(h, "admin",
			     "onecardctl gen --patients 3000 --duplicates 0.1 "
			     "--seed 7 --out %s --truth %s",
			     csv, truth),
	    0);
	assert_int_equal(ctl(h, "admin", "onecardctl import %s", csv), 0);
	/* Loaded past 1000, then 2000: learnt while loading. */
	assert_int_equal(model_line(h, a, sizeof(a)), 1);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates scan"), 0);
	assert_int_equal(model_line(h, a, sizeof(a)), 1);
	assert_true(json_num(out, "scanned") == 3000);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json duplicates list --limit 1000"),
	    0);
	/* About 300 generated pairs; nearly all graded PROBABLE or
	 * better (bench/match-quality.sh measures how many exactly). */
	assert_true(json_num(out, "open") > 250);
	assert_int_equal(harness_stop(h, SIGTERM), 0);
	assert_int_equal(harness_restart(h, extra), 0);
	assert_int_equal(model_line(h, b, sizeof(b)), 1);
	assert_string_equal(a, b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		worklist_scan_show_dismiss_and_merge, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		worklist_is_replayed_from_the_log_after_kill_9, setup_held,
		teardown),
	    cmocka_unit_test_setup_teardown(
		model_is_learnt_from_the_registry, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
