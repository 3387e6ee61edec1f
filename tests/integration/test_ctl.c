/*
 * test_ctl.c: onecardctl against a real onecardd.
 *
 * Every command runs as a separate process through the harness, with the
 * certificates of the CN the test names, exactly as an administrator would
 * run it: hospitals, patient show and history, merge and unmerge, stats,
 * import (good and broken rows, re-import), export, and a hospital's
 * certificate refused with a message that says why.
 */
#include <errno.h>
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

static const char *const codes[] = {"H001", "H002", NULL};
static char out[BUF], err[BUF];

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

/* Write text to h->dir/name; the full path goes to path. */
static void
write_file(struct harness *h, const char *name, const char *text, char *path,
    size_t len)
{
	FILE *fp;

	snprintf(path, len, "%s/%s", h->dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* Lines in a file, or -1 if it cannot be read. */
static int
count_lines(const char *path)
{
	FILE *fp = fopen(path, "r");
	int c, n = 0;

	if (fp == NULL) {
		fprintf(stderr, "count_lines: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((c = getc(fp)) != EOF)
		n += c == '\n';
	fclose(fp);
	return n;
}

/* The value of "key":"..." in a line of JSON, copied to dst. */
static void
json_field(const char *json, const char *key, char *dst, size_t len)
{
	char pat[64];
	const char *p, *q;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(json, pat);
	assert_non_null(p);
	p += strlen(pat);
	q = strchr(p, '"');
	assert_non_null(q);
	snprintf(dst, len, "%.*s", (int)(q - p), p);
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

static void
hospital_add_list_and_revoke_round_trip(void **state)
{
	struct harness *h = *state;

	assert_int_equal(ctl(h, "admin",
			     "onecardctl hospital add XC003 --name "
			     "'许昌市中心医院'"),
	    0);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl hospital add ops2 --name Ops --admin"),
	    0);
	assert_int_equal(ctl(h, "admin", "onecardctl hospital list"), 0);
	assert_non_null(strstr(out, "XC003"));
	assert_non_null(strstr(out, "许昌市中心医院"));
	assert_non_null(strstr(out, "H001"));
	assert_int_equal(ctl(h, "admin", "onecardctl --json hospital list"), 0);
	assert_non_null(strstr(out,
	    "{\"code\":\"XC003\",\"name\":\"许昌市中心"
	    "医院\",\"role\":\"hospital\","
	    "\"active\":true}"));
	assert_non_null(strstr(out,
	    "{\"code\":\"ops2\",\"name\":\"Ops\","
	    "\"role\":\"admin\",\"active\":true}"));

	assert_int_equal(
	    ctl(h, "admin", "onecardctl hospital revoke XC003"), 0);
	assert_int_equal(ctl(h, "admin", "onecardctl --json hospital list"), 0);
	assert_non_null(strstr(out, "\"code\":\"XC003\""));
	assert_non_null(strstr(out, "\"role\":\"hospital\",\"active\":false"));

	/* Refusals and usage errors have their own exit codes. */
	assert_int_equal(ctl(h, "admin",
			     "onecardctl hospital add 'bad code' "
			     "--name x"),
	    2);
	assert_non_null(strstr(err, "invalid argument"));
	assert_int_equal(ctl(h, "admin", "onecardctl hospital add X1"), 2);
	assert_int_equal(ctl(h, "admin", "onecardctl frobnicate"), 2);
	assert_int_equal(ctl(h, "admin", "onecardctl hospital --help"), 0);
	assert_non_null(strstr(out, "usage: onecardctl hospital add"));
	{
		static const char *const cmds[] = {"hospital add", "patient",
		    "patient history", "merge", "unmerge", "stats", "import",
		    "export", "gen"};
		size_t i;

		for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
			assert_int_equal(
			    ctl(h, NULL, "onecardctl %s --help", cmds[i]), 0);
			assert_non_null(strstr(out, "usage: onecardctl"));
		}
	}
}

static void
patient_show_and_history_find_an_imported_patient(void **state)
{
	struct harness *h = *state;
	char path[512];

	write_file(h, "one.csv",
	    "name,sex,birth_date,phone,address,identifiers\n"
	    "张伟,M,1880-01-01,13800000000,河南省许昌市魏都区,"
	    "cn-id=440524188001010014;cn-ssc=HA123;hosp:H001=MZ1\n",
	    path, sizeof(path));
	assert_int_equal(ctl(h, "admin", "onecardctl import %s", path), 0);
	assert_non_null(strstr(out, "rows 1, created 1"));

	assert_int_equal(
	    ctl(h, "admin", "onecardctl patient show hosp:H001=MZ1"), 0);
	assert_non_null(strstr(out, "张伟"));
	assert_non_null(strstr(out, "cn-id=440524188001010014"));
	assert_non_null(strstr(out, "cn-ssc=HA123"));
	assert_non_null(strstr(out, "1880-01-01"));

	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json patient show cn-ssc=ha123"), 0);
	assert_non_null(strstr(out, "\"name\":\"张伟\""));
	assert_non_null(strstr(out, "\"sex\":\"male\""));

	assert_int_equal(
	    ctl(h, "admin",
		"onecardctl patient history cn-id=440524188001010014"),
	    0);
	assert_non_null(strstr(out, "enroll"));
	assert_non_null(strstr(out, "admin"));

	assert_int_equal(
	    ctl(h, "admin", "onecardctl patient show cn-ssc=NOSUCH1"), 1);
	assert_non_null(strstr(err, "not found"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl patient show nodomain"), 2);
}

static void
merge_folds_a_duplicate_and_unmerge_restores_it(void **state)
{
	struct harness *h = *state;
	char path[512], dup_pid[128], surv_pid[128], now[128];

	write_file(h, "two.csv",
	    "name,sex,birth_date,phone,address,identifiers\n"
	    "李娜,F,1949-12-31,,,cn-id=11010519491231002X;cn-ssc=HAS1\n"
	    "李娜,F,1949-12-31,,,cn-ssc=HAD1;hosp:H002=MZ9\n",
	    path, sizeof(path));
	assert_int_equal(ctl(h, "admin", "onecardctl import %s", path), 0);
	assert_non_null(strstr(out, "created 2"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json patient show cn-ssc=HAD1"), 0);
	json_field(out, "patient_id", dup_pid, sizeof(dup_pid));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json patient show cn-ssc=HAS1"), 0);
	json_field(out, "patient_id", surv_pid, sizeof(surv_pid));
	assert_string_not_equal(dup_pid, surv_pid);

	assert_int_equal(ctl(h, "admin",
			     "onecardctl merge cn-id=11010519491231002X "
			     "hosp:H002=MZ9"),
	    0);
	assert_non_null(strstr(out, "cn-ssc=HAD1"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json patient show cn-ssc=HAD1"), 0);
	json_field(out, "patient_id", now, sizeof(now));
	assert_string_equal(now, surv_pid);
	assert_int_equal(ctl(h, "admin", "onecardctl --json stats"), 0);
	assert_non_null(strstr(out, "\"patients\":1,"));
	assert_non_null(strstr(out, "\"merges\":1,"));

	assert_int_equal(ctl(h, "admin", "onecardctl unmerge %s", dup_pid), 0);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json patient show hosp:H002=MZ9"), 0);
	json_field(out, "patient_id", now, sizeof(now));
	assert_string_equal(now, dup_pid);
	assert_int_equal(ctl(h, "admin", "onecardctl --json stats"), 0);
	assert_non_null(strstr(out, "\"patients\":2,"));
	assert_non_null(strstr(out, "\"merges\":0,"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl patient history pid=%s", dup_pid), 0);
	assert_non_null(strstr(out, "merge"));
	assert_non_null(strstr(out, "unmerge"));
}

static void
import_reports_bad_rows_by_line_and_keeps_the_good_ones(void **state)
{
	struct harness *h = *state;
	char path[512], rejects[600], *text = NULL;
	size_t len = 0;
	FILE *fp;
	int c;

	write_file(h, "bad.csv",
	    "name,sex,birth_date,phone,address,identifiers\n"
	    /* 2 */ "张三,F,1949-12-31,,,cn-id=11010519491231002X;"
	    "hosp:H001=MZ001\n"
	    /* 3-4 */ "\"only\nthree\",fields\n"
	    /* 5 */ "\"李四\",,,,\"河南省许昌市, 魏都区 \"\"建设路\"\"1号\","
	    "cn-ssc=HA0000000001\n"
	    /* 6 */ "王五,,,,,cn-id=110105194912310021\n"
	    /* 7 */ "赵六,,,,,cn-id=11010519491231002X;cn-ssc=HA0000000001\n"
	    /* 8 */ "钱七,\"F\"x,,,,cn-ssc=HA2\n"
	    /* 9 */ "孙八,M,1880-01-01,,,cn-id=440524188001010014\n",
	    path, sizeof(path));
	assert_int_equal(ctl(h, "admin", "onecardctl import %s", path), 6);
	assert_non_null(
	    strstr(out, "rows 8, created 3, already there 0, rejected 5"));
	/* The quote on line 3 is a stray: lines 3 and 4 are rejected each on
	 * its own. */
	assert_non_null(strstr(err, "bad.csv:3: field 1: unbalanced quote"));
	assert_non_null(
	    strstr(err, "bad.csv:4: field 1: quote inside an unquoted field"));
	assert_non_null(strstr(err, "bad.csv:6: invalid argument"));
	assert_non_null(strstr(err, "bad.csv:7: conflict"));
	assert_non_null(strstr(err, "bad.csv:8: field 2: text after"));
	assert_null(strstr(err, "bad.csv:2:"));
	assert_null(strstr(err, "bad.csv:5:"));
	assert_null(strstr(err, "bad.csv:9:"));

	/* The reject file has the header plus a reason, and each bad row as
	 * it was. */
	snprintf(rejects, sizeof(rejects), "%s/bad.rejects.csv", h->dir);
	assert_int_equal(count_lines(rejects), 6);
	fp = fopen(rejects, "r");
	assert_non_null(fp);
	{
		FILE *mem = open_memstream(&text, &len);

		while ((c = getc(fp)) != EOF)
			putc(c, mem);
		fclose(mem);
	}
	fclose(fp);
	assert_non_null(strstr(text,
	    "name,sex,birth_date,phone,address,"
	    "identifiers,reason\n"));
	assert_non_null(strstr(text,
	    "\n\"only,line 3: field 1: unbalanced quote: the quoted field "
	    "it opens is not closed on this line\n"));
	assert_non_null(strstr(text, "\nthree\",fields,line 4: field 1: "));
	assert_non_null(strstr(text, "王五,,,,,cn-id=110105194912310021,"));
	assert_non_null(strstr(text, "line 7: conflict"));
	free(text);

	/* The good rows are in, with the quoted address whole. */
	assert_int_equal(ctl(h, "admin", "onecardctl --json stats"), 0);
	assert_non_null(strstr(out, "\"patients\":3,"));
	assert_int_equal(ctl(h, "admin",
			     "onecardctl --json patient show "
			     "cn-ssc=HA0000000001"),
	    0);
	assert_non_null(strstr(out, "河南省许昌市, 魏都区 \\\"建设路\\\"1号"));

	/* --reject puts the file elsewhere. */
	assert_int_equal(ctl(h, "admin",
			     "onecardctl import %s --reject %s/other.csv "
			     "--connections 2 --depth 3",
			     path, h->dir),
	    6);
	assert_non_null(strstr(out, "created 0, already there 3, rejected 5"));
	snprintf(rejects, sizeof(rejects), "%s/other.csv", h->dir);
	assert_int_equal(count_lines(rejects), 6);
}

static void
rows_sharing_identifiers_take_effect_in_file_order(void **state)
{
	struct harness *h = *state;
	char path[512], *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	int i;

	/* Row 3 of each triple names the patients of rows 1 and 2: in file
	 * order it is a conflict. On four connections the three rows go out
	 * on different ones; had the third been applied first it would have
	 * made one patient of both cards. */
	fputs("name,sex,birth_date,phone,address,identifiers\n", fp);
	for (i = 0; i < 100; i++)
		fprintf(fp,
		    "a,,,,,cn-ssc=SSCP%d\nb,,,,,cn-ssc=SSCQ%d\n"
		    "c,,,,,cn-ssc=SSCP%d;cn-ssc=SSCQ%d\n",
		    i, i, i, i);
	fclose(fp);
	write_file(h, "order.csv", text, path, sizeof(path));
	free(text);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl import %s --connections 4 --depth 1",
		path),
	    6);
	assert_non_null(strstr(
	    out, "rows 300, created 200, already there 0, rejected 100"));
	assert_int_equal(ctl(h, "admin", "onecardctl --json stats"), 0);
	assert_non_null(strstr(out, "\"patients\":200,"));
}

static void
import_refuses_a_file_without_the_header(void **state)
{
	struct harness *h = *state;
	char path[512];

	write_file(h, "nohead.csv", "a,,,,,cn-ssc=HA1\n", path, sizeof(path));
	assert_int_equal(ctl(h, "admin", "onecardctl import %s", path), 2);
	assert_non_null(strstr(err, "nohead.csv:1: expected the header"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl import %s/missing.csv", h->dir), 2);
}

static void
reimport_and_export_round_trip_change_nothing(void **state)
{
	struct harness *h = *state;
	static char stats1[BUF];
	char path[512];

	assert_int_equal(ctl(h, "admin",
			     "onecardctl gen --patients 400 --hospitals 2 "
			     "--seed 11 --out %s/pop.csv",
			     h->dir),
	    0);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl import %s/pop.csv", h->dir), 0);
	assert_non_null(strstr(out,
	    "rows 400, created 400, already there 0, "
	    "rejected 0"));
	assert_int_equal(ctl(h, "admin", "onecardctl --json stats"), 0);
	memcpy(stats1, out, sizeof(stats1));
	assert_non_null(strstr(stats1, "\"patients\":400,"));
	assert_non_null(strstr(stats1, "\"hosp:H001\":"));
	assert_non_null(strstr(stats1, "\"hosp:H002\":"));

	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json import %s/pop.csv", h->dir), 0);
	assert_non_null(strstr(out,
	    "\"rows\":400,\"created\":0,"
	    "\"existing\":400,\"rejected\":0"));
	assert_int_equal(ctl(h, "admin", "onecardctl --json stats"), 0);
	assert_string_equal(out, stats1);

	assert_int_equal(
	    ctl(h, "admin", "onecardctl export --out %s/exp.csv", h->dir), 0);
	snprintf(path, sizeof(path), "%s/exp.csv", h->dir);
	assert_int_equal(count_lines(path), 401);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl import %s/exp.csv", h->dir), 0);
	assert_non_null(
	    strstr(out, "created 0, already there 400, rejected 0"));
	assert_int_equal(ctl(h, "admin", "onecardctl stats"), 0);
	assert_non_null(strstr(out, "patients     400\n"));
	assert_non_null(strstr(out, "identifiers by domain:\n  cn-id "));
	assert_non_null(strstr(out, "visit cards per hospital:\n"));
	assert_non_null(strstr(out, "\n  H002 "));
}

static void
export_of_a_patient_with_many_cards_loads_into_a_fresh_registry(void **state)
{
	struct harness *h = *state, h2;
	char path[512], *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	int i;

	/* 16 cards, then 10 more linked by a second row: 26 in all, more than
	 * one row may hold. */
	fputs("name,sex,birth_date,phone,address,identifiers\n", fp);
	fputs("周敏,F,,,,", fp);
	for (i = 1; i <= 16; i++)
		fprintf(fp, "%scn-ssc=SSCX%02d", i > 1 ? ";" : "", i);
	fputs("\n周敏,F,,,,cn-ssc=SSCX01", fp);
	for (i = 17; i <= 26; i++)
		fprintf(fp, ";cn-ssc=SSCX%02d", i);
	fputs("\n", fp);
	fclose(fp);
	write_file(h, "many.csv", text, path, sizeof(path));
	free(text);
	assert_int_equal(ctl(h, "admin", "onecardctl import %s", path), 0);
	assert_non_null(strstr(out, "created 1, already there 1"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl export --out %s/many-exp.csv", h->dir),
	    0);
	snprintf(path, sizeof(path), "%s/many-exp.csv", h->dir);
	assert_int_equal(count_lines(path), 3);

	memset(&h2, 0, sizeof(h2));
	assert_int_equal(harness_start(&h2, codes, NULL), 0);
	assert_int_equal(ctl(&h2, "admin", "onecardctl import %s", path), 0);
	assert_non_null(strstr(out, "rows 2, created 1, already there 1"));
	assert_int_equal(ctl(&h2, "admin", "onecardctl --json stats"), 0);
	assert_non_null(strstr(out, "\"patients\":1,\"identifiers\":26,"));
	assert_int_equal(
	    ctl(&h2, "admin", "onecardctl patient show cn-ssc=SSCX26"), 0);
	assert_non_null(strstr(out, "周敏"));
	harness_cleanup(&h2);
}

static void
hospital_certificate_is_refused_with_a_clear_message(void **state)
{
	struct harness *h = *state;

	assert_int_equal(ctl(h, "H001", "onecardctl hospital list"), 3);
	assert_non_null(strstr(err, "permission denied"));
	assert_non_null(strstr(err, "needs an admin certificate"));
	assert_non_null(strstr(err, "\"H001\" is not an admin"));
	assert_int_equal(
	    ctl(h, "H001", "onecardctl hospital add H009 --name x"), 3);
	assert_non_null(strstr(err, "permission denied"));
	assert_int_equal(
	    ctl(h, "H001", "onecardctl merge cn-ssc=HA1 cn-ssc=HA2"), 3);
	assert_non_null(strstr(err, "permission denied"));
	assert_int_equal(ctl(h, "H001", "onecardctl export"), 3);
	assert_non_null(strstr(err, "permission denied"));
}

static void
unknown_certificate_and_unreachable_broker_are_told_apart(void **state)
{
	static const char *const stranger[] = {"stranger", NULL};
	struct harness *h = *state;

	assert_int_equal(harness_certs(h, stranger), 0);
	assert_int_equal(ctl(h, "stranger", "onecardctl stats"), 3);
	assert_non_null(strstr(err,
	    "\"stranger\" is neither an admin nor an "
	    "active hospital"));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl gen --patients 5 --out %s/five.csv",
		h->dir),
	    0);
	/* Refused before a row is read: nothing is counted or rejected. */
	assert_int_equal(
	    ctl(h, "stranger", "onecardctl import %s/five.csv", h->dir), 3);
	assert_non_null(strstr(err, "unauthenticated"));
	assert_null(strstr(out, "rows"));

	assert_int_equal(
	    ctl(h, "admin", "onecardctl --broker 127.0.0.1:1 stats"), 4);
	assert_non_null(strstr(err, "cannot connect to 127.0.0.1:1"));
	assert_int_equal(ctl(h, "admin",
			     "onecardctl import --broker=127.0.0.1:1 "
			     "%s/five.csv",
			     h->dir),
	    4);
}

static void
stray_quote_in_import_costs_one_row(void **state)
{
	struct harness *h = *state;
	char path[512], rejects[600], *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	int i;

	/* One stray quote on line 3 of a 1,000-row file. */
	fputs("name,sex,birth_date,phone,address,identifiers\n", fp);
	for (i = 0; i < 1000; i++)
		if (i == 1)
			fputs("\"stray,,,,,cn-ssc=SQSTRAY\n", fp);
		else
			fprintf(fp, "ok,,,,\"许昌, %d\",cn-ssc=SQ%04d\n", i, i);
	fclose(fp);
	write_file(h, "stray.csv", text, path, sizeof(path));
	free(text);
	assert_int_equal(ctl(h, "admin", "onecardctl import %s", path), 6);
	assert_non_null(
	    strstr(out, "rows 1000, created 999, already there 0, rejected 1"));
	assert_non_null(strstr(err, "stray.csv:3: field 1: unbalanced quote"));
	snprintf(rejects, sizeof(rejects), "%s/stray.rejects.csv", h->dir);
	assert_int_equal(count_lines(rejects), 2);
}

static void
exit_codes_and_json_errors_match_the_desk_cli(void **state)
{
	struct harness *h = *state;
	char path[512], desk[BUF];

	write_file(h, "pair.csv",
	    "name,sex,birth_date,phone,address,identifiers\n"
	    "王伟,M,1986-03-15,,,cn-id=411002198603150873;hosp:H001=A1\n"
	    "李娜,F,1949-12-31,,,cn-id=11010519491231002X;hosp:H001=A2\n",
	    path, sizeof(path));
	assert_int_equal(ctl(h, "admin", "onecardctl import %s", path), 0);

	/* Not found: 1 in both, the same JSON error. */
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json patient show cn-ssc=NONE1"), 1);
	assert_memory_equal(out, "{\"error\":\"NOT_FOUND\",\"message\":", 31);
	assert_int_equal(
	    ctl(h, "H001", "onecard --json lookup cn-ssc=NONE1"), 1);
	assert_memory_equal(out, "{\"error\":\"NOT_FOUND\",\"message\":", 31);
	/* Refused (conflict, permission): 3 in both. */
	assert_int_equal(ctl(h, "admin",
			     "onecardctl --json merge hosp:H001=A1 "
			     "hosp:H001=A2"),
	    3);
	assert_memory_equal(out, "{\"error\":\"CONFLICT\",", 20);
	assert_int_equal(
	    ctl(h, "H001", "onecardctl --json merge hosp:H001=A1 hosp:H001=A2"),
	    3);
	assert_memory_equal(out, "{\"error\":\"PERMISSION_DENIED\",", 29);
	assert_int_equal(
	    ctl(h, "H002", "onecard --json unlink hosp:H001=A1"), 3);
	assert_memory_equal(out, "{\"error\":\"PERMISSION_DENIED\",", 29);
	/* Invalid input: 2 in both. */
	assert_int_equal(
	    ctl(h, "admin", "onecardctl patient show cn-id=110105194912310021"),
	    2);
	assert_int_equal(
	    ctl(h, "H001", "onecard lookup cn-id=110105194912310021"), 2);
	/* Unreachable: 4 in both, the same JSON error. */
	assert_int_equal(
	    ctl(h, "admin", "onecardctl --json --broker 127.0.0.1:1 stats"), 4);
	assert_memory_equal(out, "{\"error\":\"CLIENT_CONNECT\",", 26);
	assert_int_equal(
	    ctl(h, "H001", "onecard --json --broker 127.0.0.1:1 ping"), 4);
	assert_memory_equal(out, "{\"error\":\"CLIENT_CONNECT\",", 26);

	/* A record is the same JSON whichever CLI prints it. */
	assert_int_equal(
	    ctl(h, "H001", "onecard lookup hosp:H001=A2 --json"), 0);
	memcpy(desk, out, sizeof(desk));
	assert_non_null(strstr(desk, "\"sex\":\"female\""));
	assert_int_equal(
	    ctl(h, "admin", "onecardctl patient show hosp:H001=A2 --json"), 0);
	assert_string_equal(out, desk);
}

static void
every_command_takes_help_and_version_anywhere(void **state)
{
	struct harness *h = *state;
	static const char *const cmds[] = {"hospital add", "hospital list",
	    "hospital revoke", "patient show", "patient history", "merge",
	    "unmerge", "stats", "import", "export", "gen", "audit verify",
	    "audit search", "audit"};
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_int_equal(
		    ctl(h, NULL, "onecardctl %s --help", cmds[i]), 0);
		assert_non_null(strstr(out, "usage: onecardctl"));
		assert_int_equal(
		    ctl(h, NULL, "onecardctl %s --version", cmds[i]), 0);
		assert_memory_equal(out, "onecardctl ", 11);
	}
	assert_int_equal(ctl(h, NULL, "onecardctl --version"), 0);
	assert_memory_equal(out, "onecardctl ", 11);
	/* Options after the operands, --opt=VALUE, and a missing value. */
	assert_int_equal(ctl(h, "admin", "onecardctl stats --json"), 0);
	assert_memory_equal(out, "{\"patients\":", 12);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl stats --broker=127.0.0.1:1"), 4);
	assert_int_equal(ctl(h, "admin", "onecardctl stats --broker"), 2);
	assert_non_null(strstr(err, "--broker needs a value"));
	assert_int_equal(ctl(h, "admin", "onecardctl stats --timeout soon"), 2);
	assert_non_null(strstr(err, "--timeout"));
}

static void
export_and_audit_verify_honour_json(void **state)
{
	struct harness *h = *state;
	char path[512];

	assert_int_equal(
	    ctl(h, "admin",
		"onecardctl gen --patients 3 --hospitals 2 --seed 5 "
		"--out %s/three.csv",
		h->dir),
	    0);
	assert_int_equal(
	    ctl(h, "admin", "onecardctl import %s/three.csv", h->dir), 0);
	assert_int_equal(ctl(h, "admin", "onecardctl export --json"), 0);
	assert_memory_equal(out, "{\"patient_id\":\"", 15);
	assert_null(strstr(out, "name,sex"));
	{
		int lines = 0;
		const char *p;

		for (p = out; (p = strchr(p, '\n')) != NULL; p++)
			lines++;
		assert_int_equal(lines, 3);
	}

	write_file(h, "empty.log", "", path, sizeof(path));
	assert_int_equal(
	    ctl(h, NULL, "onecardctl audit verify --json %s", path), 0);
	assert_string_equal(out, "{\"ok\":true,\"verdict\":\"ok: 0 lines\"}\n");
	write_file(h, "bad.log", "not an audit line\n", path, sizeof(path));
	assert_int_equal(
	    ctl(h, NULL, "onecardctl audit verify %s --json", path), 1);
	assert_memory_equal(out, "{\"ok\":false,\"verdict\":\"", 23);
	assert_non_null(strstr(out, "edited"));
	assert_int_equal(
	    ctl(h, NULL, "onecardctl audit verify --json %s/nonexistent.log",
		h->dir),
	    2);
	assert_non_null(strstr(err, "nonexistent.log"));
	assert_memory_equal(out, "{\"error\":", 9);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		hospital_add_list_and_revoke_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		patient_show_and_history_find_an_imported_patient, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		merge_folds_a_duplicate_and_unmerge_restores_it, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		import_reports_bad_rows_by_line_and_keeps_the_good_ones, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		rows_sharing_identifiers_take_effect_in_file_order, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		import_refuses_a_file_without_the_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		reimport_and_export_round_trip_change_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		export_of_a_patient_with_many_cards_loads_into_a_fresh_registry,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(
		hospital_certificate_is_refused_with_a_clear_message, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		unknown_certificate_and_unreachable_broker_are_told_apart,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(
		stray_quote_in_import_costs_one_row, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		exit_codes_and_json_errors_match_the_desk_cli, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		every_command_takes_help_and_version_anywhere, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		export_and_audit_verify_honour_json, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
