/*
 * test_gen.c: the synthetic population (clients/onecardctl/gen.c).
 *
 * The same seed gives the same rows and another seed other rows; every
 * cn-id has a correct MOD 11-2 check character, a real birth date in
 * 1930..2024 equal to the row's, and a 17th digit whose parity is the row's
 * sex; cn-id, cn-ssc and visit card numbers are unique over 100,000 rows; and
 * every generated row passes the import's own row check; with
 * --duplicates the originals stay the same rows and every copy has an error
 * of the model and passes the import too. gen.c, gen_dup.c and csv.c are
 * compiled into this test directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../clients/onecardctl/csv.c"
#include "../../clients/onecardctl/gen.c"
#include "../../clients/onecardctl/gen_dup.c"

#define MANY 100000

static void
check_character_matches_the_standard_examples(void **state)
{
	/* GB 11643-1999's own example numbers. */
	assert_int_equal(gen_cnid_check("11010519491231002"), 'X');
	assert_int_equal(gen_cnid_check("44052418800101001"), '4');
	assert_true(gen_cnid_valid("11010519491231002X"));
	assert_false(gen_cnid_valid("110105194912310021"));
	assert_false(gen_cnid_valid("11010519491231002"));
	assert_false(gen_cnid_valid("1101051949123100AX"));
}

/* Write n rows of a generator with this seed to a string (caller frees). */
static char *
gen_text(uint64_t seed, unsigned long n)
{
	struct gen_options opt = {.patients = n, .hospitals = 5, .seed = seed};
	struct gen_patient *p = malloc(sizeof(*p));
	struct gen *g = gen_new(&opt);
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(p);
	assert_non_null(g);
	assert_non_null(fp);
	while (gen_next(g, p) == 0)
		csv_write_row(fp, &p->row);
	fclose(fp);
	gen_free(g);
	free(p);
	return buf;
}

static void
same_seed_gives_the_same_rows(void **state)
{
	char *a = gen_text(42, 2000), *b = gen_text(42, 2000),
	     *c = gen_text(43, 2000);

	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	free(a);
	free(b);
	free(c);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort n strings and fail on the first duplicate. */
static void
assert_unique(char **v, size_t n, const char *what)
{
	size_t i;

	qsort(v, n, sizeof(*v), cmp_str);
	for (i = 1; i < n; i++)
		if (strcmp(v[i - 1], v[i]) == 0)
			fail_msg("%s %s twice", what, v[i]);
}

static int
days_in(int y, int m)
{
	static const int d[12] = {
	    31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return d[m - 1] + (m == 2 && gen_leap(y));
}

static void
hundred_thousand_rows_are_valid_consistent_and_unique(void **state)
{
	struct gen_options opt = {
	    .patients = MANY, .hospitals = 3, .seed = 20261126};
	struct gen_patient *p = malloc(sizeof(*p));
	struct gen *g = gen_new(&opt);
	char **cnid = calloc(MANY, sizeof(char *));
	char **ssc = calloc(MANY, sizeof(char *));
	char **visit = calloc(MANY * GEN_MAX_VISITS, sizeof(char *));
	size_t n = 0, nssc = 0, nvisit = 0, i, nphone = 0;
	char date[11], err[256], *line = NULL;
	size_t linelen = 0, used;
	struct csv_record *rec = malloc(sizeof(*rec));
	struct csv_row *row = malloc(sizeof(*row));
	FILE *fp;
	int y, m, d;

	assert_non_null(g);
	assert_non_null(rec);
	assert_non_null(row);
	while (gen_next(g, p) == 0) {
		assert_true(gen_cnid_valid(p->cnid));
		assert_memory_equal(p->cnid, "41", 2); /* Henan */
		snprintf(date, sizeof(date), "%.4s-%.2s-%.2s", p->cnid + 6,
		    p->cnid + 10, p->cnid + 12);
		assert_string_equal(date, p->birth_date);
		assert_int_equal(
		    sscanf(p->birth_date, "%d-%d-%d", &y, &m, &d), 3);
		assert_true(y >= 1930 && y <= 2024);
		assert_true(m >= 1 && m <= 12);
		assert_true(d >= 1 && d <= days_in(y, m));
		assert_int_equal(
		    (p->cnid[16] - '0') % 2 == 1, strcmp(p->sex, "M") == 0);
		assert_true(strlen(p->name) >= 6); /* two or three characters */
		cnid[n] = strdup(p->cnid);
		if (p->ssc[0] != '\0' && p->row.nids > 1 &&
		    strcmp(p->row.ids[1].domain, "cn-ssc") == 0)
			ssc[nssc++] = strdup(p->ssc);
		for (i = 0; i < p->row.nids; i++)
			if (strncmp(p->row.ids[i].domain, "hosp:", 5) == 0) {
				char v[96];

				snprintf(v, sizeof(v), "%s=%s",
				    p->row.ids[i].domain, p->row.ids[i].value);
				visit[nvisit++] = strdup(v);
			}
		nphone += p->phone[0] != '\0';

		/* The row is one the import accepts. */
		fp = open_memstream(&line, &linelen);
		csv_write_row(fp, &p->row);
		fclose(fp);
		assert_int_equal(csv_parse_record(line, linelen, 1, &used, rec,
				     err, sizeof(err)),
		    CSV_RECORD);
		if (csv_row_parse(rec, row, err, sizeof(err)) != 0)
			fail_msg("row %zu: %s", n, err);
		free(line);
		line = NULL;
		n++;
	}
	assert_int_equal(n, MANY);
	/* About 85% hold a cn-ssc, about 90% a phone, and visit cards are
	 * 0..3 of 3 hospitals (1.5 on average). */
	assert_true(nssc > MANY * 80 / 100 && nssc < MANY * 90 / 100);
	assert_true(nphone > MANY * 85 / 100 && nphone < MANY * 95 / 100);
	assert_true(nvisit > MANY * 13 / 10 && nvisit < MANY * 17 / 10);
	assert_unique(cnid, n, "cn-id");
	assert_unique(ssc, nssc, "cn-ssc");
	assert_unique(visit, nvisit, "visit card");
	for (i = 0; i < n; i++)
		free(cnid[i]);
	for (i = 0; i < nssc; i++)
		free(ssc[i]);
	for (i = 0; i < nvisit; i++)
		free(visit[i]);
	free(cnid);
	free(ssc);
	free(visit);
	free(rec);
	free(row);
	free(p);
	gen_free(g);
}

static void
surnames_follow_their_frequency(void **state)
{
	struct gen_options opt = {.patients = 20000, .seed = 7};
	struct gen_patient *p = malloc(sizeof(*p));
	struct gen *g = gen_new(&opt);
	unsigned wang = 0, kong = 0;

	while (gen_next(g, p) == 0) {
		wang += strncmp(p->name, "王", strlen("王")) == 0;
		kong += strncmp(p->name, "孔", strlen("孔")) == 0;
	}
	/* 王 is about 7% of the table's weight, 孔 about 0.14%. */
	assert_true(wang > 1000 && wang < 2000);
	assert_true(kong < 100);
	assert_true(wang > 10 * kong);
	free(p);
	gen_free(g);
}

static void
hospital_codes_given_are_the_visit_domains(void **state)
{
	static const char *const codes[] = {"XC001", "XC002"};
	struct gen_options opt = {
	    .patients = 500, .codes = codes, .ncodes = 2, .seed = 1};
	struct gen_patient *p = malloc(sizeof(*p));
	struct gen *g = gen_new(&opt);
	size_t i, seen = 0;

	while (gen_next(g, p) == 0)
		for (i = 0; i < p->row.nids; i++) {
			if (strncmp(p->row.ids[i].domain, "hosp:", 5) != 0)
				continue;
			assert_true(
			    strcmp(p->row.ids[i].domain, "hosp:XC001") == 0 ||
			    strcmp(p->row.ids[i].domain, "hosp:XC002") == 0);
			seen++;
		}
	assert_true(seen > 0);
	free(p);
	gen_free(g);
}

/* The rows of a generator with duplicates, originals only, as text. */
static char *
gen_text_originals(uint64_t seed, unsigned long n, double rate)
{
	struct gen_options opt = {
	    .patients = n, .hospitals = 5, .seed = seed, .duplicates = rate};
	struct gen_patient *p = malloc(sizeof(*p));
	struct gen *g = gen_new(&opt);
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(p);
	assert_non_null(g);
	assert_non_null(fp);
	while (gen_next(g, p) == 0)
		if (!p->dup)
			csv_write_row(fp, &p->row);
	fclose(fp);
	gen_free(g);
	free(p);
	return buf;
}

static void
duplicates_leave_the_originals_as_they_were(void **state)
{
	char *with = gen_text_originals(42, 2000, 0.2), *without;

	without = gen_text(42, 2000);
	/* the originals with copies are the first rows without them */
	assert_true(strlen(with) < strlen(without));
	assert_memory_equal(with, without, strlen(with));
	free(with);
	free(without);
}

static void
every_copy_has_an_error_and_the_import_takes_it(void **state)
{
	struct gen_options opt = {
	    .patients = 20000, .hospitals = 3, .seed = 17, .duplicates = 0.1};
	struct gen_patient *p = malloc(sizeof(*p)), *o = malloc(sizeof(*o));
	struct gen *g = gen_new(&opt);
	struct csv_record *rec = malloc(sizeof(*rec));
	struct csv_row *row = malloc(sizeof(*row));
	static const char *const kinds[] = {"name=sound", "name=variant",
	    "name=delete", "name=insert", "name=substitute", "name=pinyin",
	    "birth=swap", "birth=slip", "birth=missing", "phone=slip",
	    "phone=missing", "sex=missing", "address=missing"};
	unsigned seen[sizeof(kinds) / sizeof(kinds[0])] = {0};
	char err[256], *line = NULL;
	size_t linelen = 0, used, n = 0, ndup = 0;
	FILE *fp;

	assert_non_null(g);
	while (gen_next(g, p) == 0) {
		n++;
		if (!p->dup) {
			*o = *p;
			continue;
		}
		ndup++;
		assert_int_equal(p->cluster, o->cluster);
		assert_true(p->errors[0] != '\0');
		assert_true(strcmp(p->name, o->name) != 0 ||
		    strcmp(p->sex, o->sex) != 0 ||
		    strcmp(p->birth_date, o->birth_date) != 0 ||
		    strcmp(p->phone, o->phone) != 0 ||
		    strcmp(p->address, o->address) != 0);
		/* one visit card, no cn-id: the registry cannot tell */
		assert_int_equal(p->row.nids, 1);
		assert_memory_equal(p->row.ids[0].domain, "hosp:", 5);
		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
			seen[k] += strstr(p->errors, kinds[k]) != NULL;
		fp = open_memstream(&line, &linelen);
		csv_write_row(fp, &p->row);
		fclose(fp);
		assert_int_equal(csv_parse_record(line, linelen, 1, &used, rec,
				     err, sizeof(err)),
		    CSV_RECORD);
		if (csv_row_parse(rec, row, err, sizeof(err)) != 0)
			fail_msg("copy %s: %s (%s)", p->name, err, p->errors);
		free(line);
		line = NULL;
	}
	assert_int_equal(n, 20000);
	/* a tenth of the rows are copies */
	assert_true(ndup > n * 8 / 100 && ndup < n * 12 / 100);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (seen[k] == 0)
			fail_msg("no copy has %s", kinds[k]);
	gen_free(g);
	free(p);
	free(o);
	free(rec);
	free(row);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(check_character_matches_the_standard_examples),
	    cmocka_unit_test(same_seed_gives_the_same_rows),
	    cmocka_unit_test(
		hundred_thousand_rows_are_valid_consistent_and_unique),
	    cmocka_unit_test(surnames_follow_their_frequency),
	    cmocka_unit_test(hospital_codes_given_are_the_visit_domains),
	    cmocka_unit_test(duplicates_leave_the_originals_as_they_were),
	    cmocka_unit_test(every_copy_has_an_error_and_the_import_takes_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
