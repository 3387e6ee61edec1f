/*
 * test_access_report.c: `onecardctl audit patient` and `onecardctl audit
 * hospital` over the trail a real onecardd wrote.
 *
 * Two hospitals enroll, link and look up patients through the desk CLI, an
 * administrator merges a duplicate; then the patient report must list
 * exactly the lines that touched that patient (its merged-in duplicate
 * too, unless --no-merges) and nothing of another, the hospital summary's
 * counts must agree with the trail, one edited byte must stop both reports
 * with the file and line, and --json must parse. No report may print a
 * full resident ID number.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"

#define BUF     65536
#define CN_ID   "110105194912310011"
#define CN_MASK "110105********0011"

static const char *const codes[] = {"H001", "H002", NULL};
static char out[BUF], err[BUF];

struct report_test {
	struct harness h;
	char audit_dir[64];
	char audit[128];
	char a[64], b[64], c[64]; /* patient ids: A, B, and C (A's double) */
};

/* Run a command line (printf-style) as cn; its exit status. */
static int __attribute__((format(printf, 3, 4)))
run(struct harness *h, const char *cn, const char *fmt, ...)
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

/* The patient id in a desk CLI's --json answer, into dst. */
static void
patient_id_of(const char *json, char *dst, size_t len)
{
	const char *p = strstr(json, "\"patient_id\":\""), *q;

	assert_non_null(p);
	p += 14;
	q = strchr(p, '"');
	assert_non_null(q);
	snprintf(dst, len, "%.*s", (int)(q - p), p);
}

/* The whole trail, NUL-terminated, into buf. */
static void
read_trail(struct report_test *t, char *buf, size_t len)
{
	FILE *fp = fopen(t->audit, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, len - 1, fp);
	fclose(fp);
	buf[n] = '\0';
}

/* Lines of the trail holding every one of the NULL-terminated strings. */
static int __attribute__((sentinel)) trail_lines_with(const char *trail, ...)
{
	const char *line = trail;
	int n = 0;

	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char one[8192];
		const char *s;
		int all = 1;
		va_list ap;

		snprintf(one, sizeof(one), "%.*s", (int)len, line);
		va_start(ap, trail);
		while ((s = va_arg(ap, const char *)) != NULL)
			all &= strstr(one, s) != NULL;
		va_end(ap);
		n += all;
		line += len + (nl != NULL);
	}
	return n;
}

/*
 * The traffic: H001 enrolls A (with a cn-id) and B, and later C, the same
 * man as A registered without his card; H002 looks A up twice, links its
 * own card to A, looks B up, asks for a card nobody holds, and looks C up
 * before and after the admin merges C into A.
 */
static void
traffic(struct report_test *t)
{
	struct harness *h = &t->h;

	assert_int_equal(run(h, "H001",
			     "onecard enroll --json --name 张三 --sex male "
			     "--birth 1949-12-31 cn-id=%s hosp:H001=A1",
			     CN_ID),
	    0);
	patient_id_of(out, t->a, sizeof(t->a));
	assert_int_equal(run(h, "H001",
			     "onecard enroll --json --name 李四 "
			     "hosp:H001=B1"),
	    0);
	patient_id_of(out, t->b, sizeof(t->b));
	assert_int_equal(run(h, "H002", "onecard lookup cn-id=%s", CN_ID), 0);
	assert_int_equal(run(h, "H002", "onecard lookup cn-id=%s", CN_ID), 0);
	assert_int_equal(
	    run(h, "H002", "onecard link cn-id=%s hosp:H002=A2", CN_ID), 0);
	assert_int_equal(run(h, "H002", "onecard lookup hosp:H001=B1"), 0);
	assert_int_equal(run(h, "H002", "onecard lookup hosp:H001=NOBODY"), 1);
	assert_int_equal(run(h, "H001",
			     "onecard enroll --json --name 张三 "
			     "hosp:H001=C1"),
	    0);
	patient_id_of(out, t->c, sizeof(t->c));
	assert_int_equal(run(h, "H002", "onecard lookup hosp:H001=C1"), 0);
	assert_int_equal(
	    run(h, "admin", "onecardctl merge cn-id=%s hosp:H001=C1", CN_ID),
	    0);
	assert_int_equal(run(h, "H002", "onecard lookup hosp:H001=C1"), 0);
	assert_string_not_equal(t->a, t->b);
	assert_string_not_equal(t->a, t->c);
}

static int
setup(void **state)
{
	struct report_test *t = calloc(1, sizeof(*t));
	const char *extra[3];

	if (t == NULL)
		return -1;
	snprintf(
	    t->audit_dir, sizeof(t->audit_dir), "/tmp/onecard-report-XXXXXX");
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
	traffic(t);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct report_test *t = *state;
	char cmd[128];

	harness_cleanup(&t->h);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->audit_dir);
	(void)system(cmd);
	free(t);
	return 0;
}

/* The accesses array of a patient report, checked to be one per line of
 * the trail that names one of the ids. */
static void
patient_report_lists_exactly_its_accesses(void **state)
{
	struct report_test *t = *state;
	struct harness *h = &t->h;
	static char trail[BUF];
	char pa[80], pb[80], pc[80];
	json_t *o, *acc, *by;
	size_t i;
	int own, doubled, merges;

	read_trail(t, trail, sizeof(trail));
	snprintf(pa, sizeof(pa), "\"patient_id\":\"%s\"", t->a);
	snprintf(pb, sizeof(pb), "\"patient_id\":\"%s\"", t->b);
	snprintf(pc, sizeof(pc), "\"patient_id\":\"%s\"", t->c);
	own = trail_lines_with(trail, pa, NULL);
	doubled = trail_lines_with(trail, pc, NULL);
	/* enroll, 2 lookups, link, merge, a lookup of C's card after it */
	assert_int_equal(own, 6);
	/* enroll of C, a lookup of it before the merge */
	assert_int_equal(doubled, 2);
	merges = trail_lines_with(trail, "\"op\":\"merge\"", pa, NULL);
	assert_int_equal(merges, 1);

	/* Text: every access, its hospital and op; nothing of B. */
	assert_int_equal(
	    run(h, NULL, "onecardctl audit patient %s %s", t->a, t->audit), 0);
	assert_non_null(strstr(out, "accesses: 8 by 3 actor(s)"));
	assert_non_null(strstr(out, "trail:    ok: "));
	assert_non_null(strstr(out, t->c)); /* merged in: listed */
	assert_null(strstr(out, t->b));
	assert_null(strstr(out, "hosp:H001=B1"));
	assert_null(strstr(out, "NOBODY"));
	assert_null(strstr(out, CN_ID));
	assert_non_null(strstr(out, "cn-id=" CN_MASK));
	assert_non_null(strstr(out, "(lookup 4, link 1)"));

	/* JSON: the same, by keys. */
	assert_int_equal(run(h, NULL, "onecardctl --json audit patient %s %s",
			     t->a, t->audit),
	    0);
	assert_null(strstr(out, CN_ID));
	o = json_loads(out, 0, NULL);
	assert_non_null(o);
	assert_string_equal(
	    json_string_value(json_object_get(o, "patient_id")), t->a);
	assert_true(
	    json_is_true(json_object_get(json_object_get(o, "trail"), "ok")));
	assert_int_equal(json_array_size(json_object_get(o, "records")), 2);
	acc = json_object_get(o, "accesses");
	assert_int_equal(json_array_size(acc), (size_t)(own + doubled));
	{
		int h1 = 0, h2 = 0, adm = 0, lookups2 = 0, links2 = 0;
		for (i = 0; i < json_array_size(acc); i++) {
			json_t *a = json_array_get(acc, i);
			const char *actor =
			    json_string_value(json_object_get(a, "actor"));
			const char *op =
			    json_string_value(json_object_get(a, "op"));
			const char *rec =
			    json_string_value(json_object_get(a, "record"));
			assert_non_null(json_object_get(a, "seq"));
			assert_non_null(json_object_get(a, "time"));
			assert_non_null(json_object_get(a, "code"));
			assert_non_null(json_object_get(a, "target"));
			assert_true(
			    strcmp(rec, t->a) == 0 || strcmp(rec, t->c) == 0);
			h1 += strcmp(actor, "H001") == 0;
			h2 += strcmp(actor, "H002") == 0;
			adm += strcmp(actor, "admin") == 0;
			if (strcmp(actor, "H002") == 0) {
				lookups2 += strcmp(op, "lookup") == 0;
				links2 += strcmp(op, "link") == 0;
			}
		}
		assert_int_equal(h1, 2);  /* enroll A, enroll C */
		assert_int_equal(h2, 5);  /* 2+1+1 lookups, 1 link */
		assert_int_equal(adm, 1); /* the merge */
		assert_int_equal(lookups2, 4);
		assert_int_equal(links2, 1);
	}
	by = json_object_get(o, "by_actor");
	assert_int_equal(json_array_size(by), 3);
	assert_true(json_is_array(json_object_get(o, "not_attributable")));
	json_decref(o);

	/* Without following merges, C's own lines are left out. */
	assert_int_equal(run(h, NULL,
			     "onecardctl --json audit patient %s --no-merges "
			     "%s",
			     t->a, t->audit),
	    0);
	o = json_loads(out, 0, NULL);
	assert_non_null(o);
	assert_int_equal(
	    json_array_size(json_object_get(o, "accesses")), (size_t)own);
	json_decref(o);

	/* B's report has B's lines only, however the id is typed; C's says
	 * where it went. */
	char lower[64];
	for (i = 0; t->b[i] != '\0' && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)t->b[i]);
	lower[i] = '\0';
	assert_int_equal(
	    run(h, NULL, "onecardctl --json audit patient pid=%s %s", lower,
		t->audit),
	    0);
	o = json_loads(out, 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_array_size(json_object_get(o, "accesses")),
	    (size_t)trail_lines_with(trail, pb, NULL));
	assert_int_equal(json_array_size(json_object_get(o, "accesses")), 2);
	json_decref(o);
	assert_int_equal(
	    run(h, NULL, "onecardctl audit patient %s %s", t->c, t->audit), 0);
	assert_non_null(strstr(out, "merged into"));
	assert_non_null(strstr(out, t->a));
}

static void
hospital_summary_agrees_with_the_trail(void **state)
{
	struct report_test *t = *state;
	struct harness *h = &t->h;
	static char trail[BUF];
	json_t *o, *ops, *codes_o;
	int lines, lookups, found;
	size_t i;

	read_trail(t, trail, sizeof(trail));
	lines = trail_lines_with(trail, "\"actor\":\"H002\"", NULL);
	lookups = trail_lines_with(
	    trail, "\"actor\":\"H002\"", "\"op\":\"lookup\"", NULL);
	found = trail_lines_with(trail, "\"actor\":\"H002\"",
	    "\"op\":\"lookup\"", "\"code\":\"OK\"", NULL);
	assert_int_equal(lookups, 6);
	assert_int_equal(found, 5);

	assert_int_equal(run(h, NULL,
			     "onecardctl --json audit hospital H002 --since "
			     "2000-01-01 %s",
			     t->audit),
	    0);
	o = json_loads(out, 0, NULL);
	assert_non_null(o);
	assert_string_equal(
	    json_string_value(json_object_get(o, "hospital")), "H002");
	assert_int_equal(
	    json_integer_value(json_object_get(o, "requests")), lines);
	assert_int_equal(json_integer_value(json_object_get(o, "not_ok")),
	    lines -
		trail_lines_with(
		    trail, "\"actor\":\"H002\"", "\"code\":\"OK\"", NULL));
	/* A (by cn-id, and C's card after the merge), B, C */
	assert_int_equal(json_integer_value(json_object_get(o, "patients")), 3);
	assert_non_null(json_object_get(o, "first"));
	assert_non_null(json_object_get(o, "last"));
	assert_true(json_is_object(json_object_get(o, "peak_minute")));
	assert_true(json_is_object(json_object_get(o, "peak_hour")));
	assert_true(json_is_array(json_object_get(o, "top_patients")));
	ops = json_object_get(o, "ops");
	assert_true(json_is_array(ops));
	for (i = 0; i < json_array_size(ops); i++) {
		json_t *op = json_array_get(ops, i);
		if (strcmp(json_string_value(json_object_get(op, "op")),
			"lookup") != 0)
			continue;
		assert_int_equal(
		    json_integer_value(json_object_get(op, "requests")),
		    lookups);
		codes_o = json_object_get(op, "codes");
		assert_int_equal(
		    json_integer_value(json_object_get(codes_o, "OK")), found);
		assert_int_equal(
		    json_integer_value(json_object_get(codes_o, "NOT_FOUND")),
		    1);
		break;
	}
	assert_true(i < json_array_size(ops));
	json_decref(o);

	/* The one screen names the same figures; a later --since, none. */
	assert_int_equal(
	    run(h, NULL, "onecardctl audit hospital H002 %s", t->audit), 0);
	assert_non_null(strstr(out, "hospital: H002"));
	assert_non_null(strstr(out, "patients: 3 distinct"));
	assert_non_null(strstr(out, "OK 5, NOT_FOUND 1"));
	assert_null(strstr(out, CN_ID));
	assert_int_equal(run(h, NULL,
			     "onecardctl audit hospital H002 --since "
			     "2999-01-01 %s",
			     t->audit),
	    0);
	assert_non_null(strstr(out, "requests: none"));
	assert_int_equal(run(h, NULL,
			     "onecardctl audit hospital H002 --since "
			     "yesterday %s",
			     t->audit),
	    2);
}

static void
an_unmerge_takes_the_record_out_again(void **state)
{
	struct report_test *t = *state;
	struct harness *h = &t->h;
	static char trail[BUF];
	char pa[80], pc[80];
	json_t *o;

	assert_int_equal(run(h, "admin", "onecardctl unmerge %s", t->c), 0);
	read_trail(t, trail, sizeof(trail));
	snprintf(pa, sizeof(pa), "\"patient_id\":\"%s\"", t->a);
	snprintf(pc, sizeof(pc), "\"patient_id\":\"%s\"", t->c);
	assert_int_equal(trail_lines_with(trail, "\"op\":\"unmerge\"", pc,
			     "\"other_patient_id\"", NULL),
	    1);

	/* A's report: A's own lines and the unmerge that took C out. */
	assert_int_equal(run(h, NULL, "onecardctl --json audit patient %s %s",
			     t->a, t->audit),
	    0);
	o = json_loads(out, 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_array_size(json_object_get(o, "records")), 1);
	assert_int_equal(json_array_size(json_object_get(o, "accesses")),
	    (size_t)(trail_lines_with(trail, pa, NULL) +
		trail_lines_with(trail, pc, "\"op\":\"unmerge\"", NULL)));
	json_decref(o);
	/* C is itself again: no longer merged into anyone. */
	assert_int_equal(run(h, NULL, "onecardctl --json audit patient %s %s",
			     t->c, t->audit),
	    0);
	o = json_loads(out, 0, NULL);
	assert_non_null(o);
	assert_true(json_is_null(json_object_get(o, "merged_into")));
	json_decref(o);
}

/* Change one byte of line n (1-based) of src into dst. */
static void
tamper(const char *src, const char *dst, int n)
{
	static char buf[BUF];
	FILE *fp = fopen(src, "r");
	size_t len;
	char *p = buf;

	assert_non_null(fp);
	len = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	for (int i = 1; i < n; i++) {
		p = memchr(p, '\n', len - (size_t)(p - buf));
		assert_non_null(p);
		p++;
	}
	p = strstr(p, "\"code\":\"");
	assert_non_null(p);
	p[8] = p[8] == 'O' ? 'N' : 'O';
	fp = fopen(dst, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
a_changed_byte_stops_the_reports_at_its_line(void **state)
{
	struct report_test *t = *state;
	struct harness *h = &t->h;
	char bad[160], where[200];

	snprintf(bad, sizeof(bad), "%s/tampered.log", t->audit_dir);
	tamper(t->audit, bad, 5);
	snprintf(where, sizeof(where), "%s:5: edited", bad);

	assert_int_equal(
	    run(h, NULL, "onecardctl audit patient %s %s", t->a, bad), 1);
	assert_non_null(strstr(err, where));
	assert_null(strstr(out, "accesses:"));
	assert_int_equal(
	    run(h, NULL, "onecardctl audit hospital H002 %s", bad), 1);
	assert_non_null(strstr(err, where));
	assert_null(strstr(out, "requests:"));
	assert_int_equal(
	    run(h, NULL, "onecardctl --json audit hospital H002 %s", bad), 1);
	assert_memory_equal(out, "{\"error\":\"TRAIL_BROKEN\"", 23);

	/* Asked to, it reports anyway, says so, and still exits 1. */
	assert_int_equal(
	    run(h, NULL, "onecardctl audit patient %s --allow-broken %s", t->a,
		bad),
	    1);
	assert_non_null(strstr(err, "warning"));
	assert_non_null(strstr(err, where));
	assert_non_null(strstr(out, "BROKEN"));
	assert_non_null(strstr(out, "accesses:"));
	assert_int_equal(run(h, NULL,
			     "onecardctl --json audit hospital H002 "
			     "--allow-broken %s",
			     bad),
	    1);
	{
		json_t *o = json_loads(out, 0, NULL), *tr;
		assert_non_null(o);
		tr = json_object_get(o, "trail");
		assert_true(json_is_false(json_object_get(tr, "ok")));
		assert_non_null(strstr(
		    json_string_value(json_object_get(tr, "first_fault")),
		    "edited"));
		json_decref(o);
	}

	/* The untouched trail still reports; a missing file is a usage
	 * error. */
	assert_int_equal(
	    run(h, NULL, "onecardctl audit hospital H002 %s", t->audit), 0);
	assert_int_equal(
	    run(h, NULL, "onecardctl audit hospital H002 %s/none.log",
		t->audit_dir),
	    2);
	assert_int_equal(run(h, NULL, "onecardctl audit patient"), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		patient_report_lists_exactly_its_accesses, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		hospital_summary_agrees_with_the_trail, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		an_unmerge_takes_the_record_out_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_changed_byte_stops_the_reports_at_its_line, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
