/*
 * test_match.c: registry/match/match.c: each error a registration desk makes
 * (a same-sound character, a traditional form, a missing or extra
 * character, a name typed in pinyin, day and month swapped, one digit wrong
 * in a birth date or a phone) is recognised at its level and still grades
 * as the same person; two different cn-ids never pair; the blocking keys
 * that let a search find a record despite the error.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "match.h"

/* The stored record every test compares against: 张三, a man. */
#define NAME  "张三"
#define BIRTH "1980-05-17"
#define PHONE "13812345678"

/* A record, failing the test when its name is refused. */
static struct match_rec
rec(const char *name, int sex, const char *birth, const char *phone,
    const char *address, const char *cn_id)
{
	struct match_rec r;
	const char *why = NULL;

	if (match_rec_init(&r, name, sex, birth, phone, address, cn_id, &why) !=
	    0)
		fail_msg("\"%s\" refused: %s", name, why);
	return r;
}

/* Compare a query with the stored 张三 (sex, birth date, phone as given). */
static struct match_result
against(const struct match_rec *q, const char *birth, const char *phone)
{
	struct match_rec c = rec(NAME, 1, birth, phone, NULL, NULL);
	struct match_result m;

	match_compare(q, &c, &m);
	return m;
}

static void
identical_records_are_certain(void **state)
{
	struct match_rec q =
	    rec(NAME, 1, BIRTH, PHONE, "北京市东城区1号", NULL);
	struct match_rec c =
	    rec(NAME, 1, BIRTH, PHONE, "北京市东城区1号", NULL);
	struct match_result m;

	match_compare(&q, &c, &m);
	assert_false(m.excluded);
	assert_int_equal(m.grade, MATCH_GRADE_CERTAIN);
	assert_true(m.score > 0.99 && m.score <= 1.0);
	assert_string_equal(m.reason,
	    "name=exact birth=exact sex=exact phone=exact address=exact");
}

static void
same_sound_character_is_pinyin_and_probable(void **state)
{
	struct match_rec q = rec("章三", 1, BIRTH, NULL, NULL, NULL);
	struct match_result m = against(&q, BIRTH, NULL);

	assert_int_equal(m.level[MATCH_F_NAME], MATCH_L_PINYIN);
	assert_int_equal(m.grade, MATCH_GRADE_PROBABLE);
	assert_string_equal(m.reason, "name=pinyin birth=exact sex=exact");
}

static void
traditional_form_is_exact(void **state)
{
	struct match_rec q = rec("張三", 1, BIRTH, NULL, NULL, NULL);
	struct match_result m = against(&q, BIRTH, NULL);

	assert_int_equal(m.level[MATCH_F_NAME], MATCH_L_EXACT);
	assert_int_equal(m.grade, MATCH_GRADE_CERTAIN);
}

static void
missing_or_extra_character_is_edit1(void **state)
{
	struct match_rec c = rec("张三丰", 1, BIRTH, NULL, NULL, NULL);
	struct match_rec q = rec("张丰", 1, BIRTH, NULL, NULL, NULL);
	struct match_result m;

	match_compare(&q, &c, &m);
	assert_int_equal(m.level[MATCH_F_NAME], MATCH_L_EDIT1);
	assert_int_equal(m.grade, MATCH_GRADE_PROBABLE);
	q = rec("张三丰", 1, BIRTH, NULL, NULL, NULL);
	m = against(&q, BIRTH, NULL);
	assert_int_equal(m.level[MATCH_F_NAME], MATCH_L_EDIT1);
	assert_true(m.grade == MATCH_GRADE_PROBABLE);
}

static void
name_typed_in_pinyin_compares_on_pinyin(void **state)
{
	const char *typed[] = {"Zhang San", "ZHANGSAN", "zhāng sān"};

	for (size_t i = 0; i < 3; i++) {
		struct match_rec q = rec(typed[i], 1, BIRTH, NULL, NULL, NULL);
		struct match_result m = against(&q, BIRTH, NULL);

		assert_int_equal(m.level[MATCH_F_NAME], MATCH_L_PINYIN);
		assert_int_equal(m.grade, MATCH_GRADE_PROBABLE);
	}
}

static void
day_and_month_swapped_is_swap(void **state)
{
	struct match_rec q = rec(NAME, 1, "1980-05-07", NULL, NULL, NULL);
	struct match_result m = against(&q, "1980-07-05", NULL);

	assert_int_equal(m.level[MATCH_F_BIRTH], MATCH_L_SWAP);
	assert_int_equal(m.grade, MATCH_GRADE_PROBABLE);
	assert_string_equal(m.reason, "name=exact birth=swap sex=exact");
}

static void
one_digit_birth_slip_is_1digit(void **state)
{
	struct match_rec q = rec(NAME, 1, "1980-05-27", NULL, NULL, NULL);
	struct match_result m = against(&q, BIRTH, NULL);

	assert_int_equal(m.level[MATCH_F_BIRTH], MATCH_L_1DIGIT);
	assert_int_equal(m.grade, MATCH_GRADE_PROBABLE);
	/* Two digits off is a different date. */
	q = rec(NAME, 1, "1981-05-27", NULL, NULL, NULL);
	m = against(&q, BIRTH, NULL);
	assert_int_equal(m.level[MATCH_F_BIRTH], MATCH_L_DIFF);
	assert_int_equal(m.grade, MATCH_GRADE_NONE);
}

static void
phone_one_digit_off_is_1digit(void **state)
{
	struct match_rec q = rec(NAME, 0, NULL, "138-1234-5679", NULL, NULL);
	struct match_result m = against(&q, NULL, PHONE);

	assert_int_equal(m.level[MATCH_F_PHONE], MATCH_L_1DIGIT);
	assert_true(m.grade == MATCH_GRADE_PROBABLE);
	assert_string_equal(m.reason, "name=exact phone=1digit");
	/* A country code and separators do not count as digits off. */
	q = rec(NAME, 0, NULL, "+86 138 1234 5678", NULL, NULL);
	m = against(&q, NULL, PHONE);
	assert_int_equal(m.level[MATCH_F_PHONE], MATCH_L_EXACT);
	/* A missing digit is one digit off too. */
	q = rec(NAME, 0, NULL, "1381234567", NULL, NULL);
	m = against(&q, NULL, PHONE);
	assert_int_equal(m.level[MATCH_F_PHONE], MATCH_L_1DIGIT);
}

static void
two_cn_ids_are_never_a_pair(void **state)
{
	struct match_rec q =
	    rec(NAME, 1, BIRTH, PHONE, NULL, "110105198005170011");
	struct match_rec c =
	    rec(NAME, 1, BIRTH, PHONE, NULL, "110105198005170038");
	struct match_result m;

	match_compare(&q, &c, &m);
	assert_true(m.excluded);
	assert_int_equal(m.grade, MATCH_GRADE_NONE);
	/* One cn-id and none is no evidence either way. */
	c = rec(NAME, 1, BIRTH, PHONE, NULL, NULL);
	match_compare(&q, &c, &m);
	assert_false(m.excluded);
	assert_int_equal(m.grade, MATCH_GRADE_CERTAIN);
}

static void
different_people_do_not_match(void **state)
{
	struct match_rec q = rec("李四", 1, BIRTH, NULL, NULL, NULL);
	struct match_result m = against(&q, BIRTH, NULL);

	assert_int_equal(m.level[MATCH_F_NAME], MATCH_L_DIFF);
	assert_int_equal(m.grade, MATCH_GRADE_NONE);
	q = rec(NAME, 2, "1962-11-03", NULL, NULL, NULL);
	m = against(&q, BIRTH, NULL);
	assert_int_equal(m.grade, MATCH_GRADE_NONE);
}

static void
weak_query_is_possible_at_most_probable(void **state)
{
	/* A name alone: full agreement is not certain; a same-sound
	 * character is still possible. */
	struct match_rec q = rec(NAME, 0, NULL, NULL, NULL, NULL);
	struct match_result m = against(&q, BIRTH, NULL);

	assert_int_equal(m.grade, MATCH_GRADE_PROBABLE);
	q = rec("章三", 0, NULL, NULL, NULL, NULL);
	m = against(&q, BIRTH, NULL);
	assert_int_equal(m.grade, MATCH_GRADE_POSSIBLE);
}

static void
weights_follow_m_and_u(void **state)
{
	/* Agreement weighs for, disagreement against, missing nothing. */
	for (int f = 0; f < MATCH_FIELDS; f++) {
		assert_true(match_weight(f, MATCH_L_EXACT) > 0);
		assert_true(match_weight(f, MATCH_L_DIFF) < 0);
		assert_true(match_weight(f, MATCH_L_MISSING) == 0);
	}
	assert_true(match_weight(MATCH_F_NAME, MATCH_L_EXACT) >
	    match_weight(MATCH_F_NAME, MATCH_L_PINYIN));
	assert_true(match_weight(MATCH_F_NAME, MATCH_L_PINYIN) >
	    match_weight(MATCH_F_NAME, MATCH_L_PINYIN1));
	assert_int_equal(match_grade_of(0.995), MATCH_GRADE_CERTAIN);
	assert_int_equal(match_grade_of(0.95), MATCH_GRADE_PROBABLE);
	assert_int_equal(match_grade_of(0.6), MATCH_GRADE_POSSIBLE);
	assert_int_equal(match_grade_of(0.2), MATCH_GRADE_NONE);
}

static void
bad_names_are_refused(void **state)
{
	struct match_rec r;
	const char *why = NULL;
	char longname[300];

	assert_int_equal(
	    match_rec_init(&r, "张\x01三", 0, NULL, NULL, NULL, NULL, &why),
	    -1);
	assert_non_null(why);
	assert_int_equal(
	    match_rec_init(&r, "\xed\xa0\x80", 0, NULL, NULL, NULL, NULL, &why),
	    -1);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(
	    match_rec_init(&r, longname, 0, NULL, NULL, NULL, NULL, &why), -1);
	assert_false(r.has_name);
}

/* k's key of a record (name, birth date, phone). */
static const char *
key(enum match_key_kind k, const char *name, const char *birth,
    const char *phone)
{
	static char buf[MATCH_KEY_MAX];

	match_key(k, name, birth, phone, buf);
	return buf;
}

static void
blocking_keys_survive_the_errors(void **state)
{
	char swapped[11];

	assert_string_equal(
	    key(MATCH_KEY_SURNAME_YEAR, NAME, BIRTH, NULL), "zhang 1980");
	assert_string_equal(
	    key(MATCH_KEY_SURNAME_YEAR, "章三", "1980-07-05", NULL),
	    "zhang 1980");
	assert_string_equal(
	    key(MATCH_KEY_SURNAME_YEAR, "欧阳修", "1007-08-01", NULL),
	    "ou yang 1007");
	assert_string_equal(key(MATCH_KEY_BIRTH, NULL, BIRTH, NULL), BIRTH);
	assert_string_equal(key(MATCH_KEY_BIRTH, NULL, "", NULL), "");
	assert_string_equal(
	    key(MATCH_KEY_PHONE, NULL, NULL, "+86 138-1234-5678"), PHONE);
	assert_string_equal(key(MATCH_KEY_PHONE, NULL, NULL, "110"), "");
	/* The same key for characters, traditional forms, same sounds and
	 * pinyin in either order. */
	assert_string_equal(key(MATCH_KEY_NAME, NAME, NULL, NULL),
	    key(MATCH_KEY_NAME, "張三", NULL, NULL));
	assert_string_equal(key(MATCH_KEY_NAME, NAME, NULL, NULL),
	    key(MATCH_KEY_NAME, "章三", NULL, NULL));
	assert_string_equal(key(MATCH_KEY_NAME, NAME, NULL, NULL),
	    key(MATCH_KEY_NAME, "San Zhang", NULL, NULL));
	assert_string_equal(key(MATCH_KEY_NAME, NULL, NULL, NULL), "");
	assert_int_equal(match_birth_swapped("1980-07-05", swapped), 1);
	assert_string_equal(swapped, "1980-05-07");
	assert_int_equal(match_birth_swapped("1980-07-07", swapped), 0);
	assert_int_equal(match_birth_swapped("1980-07-25", swapped), 0);
	assert_int_equal(match_birth_swapped("1981-29-02", swapped), 0);
}

/* A synthetic population's m and u: four fields, independent. */
static const struct {
	enum match_field f;
	enum match_level l[3];
	double m[3], u[3];
	int n;
} truth[] = {
    {MATCH_F_NAME, {MATCH_L_EXACT, MATCH_L_DIFF}, {0.9, 0.1}, {0.001, 0.999},
	2},
    {MATCH_F_BIRTH, {MATCH_L_EXACT, MATCH_L_1DIGIT, MATCH_L_DIFF},
	{0.8, 0.1, 0.1}, {0.0005, 0.002, 0.9975}, 3},
    {MATCH_F_SEX, {MATCH_L_EXACT, MATCH_L_DIFF}, {0.95, 0.05}, {0.5, 0.5}, 2},
    {MATCH_F_PHONE, {MATCH_L_EXACT, MATCH_L_DIFF}, {0.7, 0.3}, {0.0001, 0.9999},
	2},
};
#define NTRUTH (sizeof(truth) / sizeof(truth[0]))

/*
 * Add the expected pattern counts of n pairs (matches: m, else u) into
 * cnt; fixed (a field index of truth, or -1) always agrees exactly, as
 * in pairs that share a key on it.
 */
static void
expect(uint32_t *cnt, double n, int match, int fixed)
{
	int idx[NTRUTH] = {0};

	for (;;) {
		enum match_level lv[MATCH_FIELDS] = {0};
		double p = n;
		size_t k;

		for (k = 0; k < NTRUTH; k++) {
			if ((int)k == fixed && idx[k] != 0)
				break;
			lv[truth[k].f] = truth[k].l[idx[k]];
			if ((int)k != fixed)
				p *= match ? truth[k].m[idx[k]]
					   : truth[k].u[idx[k]];
		}
		if (k == NTRUTH)
			cnt[match_pattern(lv)] += (uint32_t)(p + 0.5);
		for (k = 0; k < NTRUTH && ++idx[k] == truth[k].n; k++)
			idx[k] = 0;
		if (k == NTRUTH)
			return;
	}
}

/*
 * EM recovers m and the share of matches from pairs whose truth it is not
 * told: u from random pairs, each field's m from pairs sharing a key on
 * another field (the name's from a shared birth date, the birth date's
 * from a shared name).
 */
static void
em_learns_m_and_the_prior_from_unlabelled_pairs(void **state)
{
	static uint32_t rnd[MATCH_PATTERNS], b0[MATCH_PATTERNS],
	    b1[MATCH_PATTERNS];
	const uint32_t *const blk[2] = {b0, b1};
	struct match_model mm, def;

	(void)state;
	expect(rnd, 1e7, 0, -1);
	expect(b0, 500, 1, 1); /* sharing a birth date */
	expect(b0, 10000, 0, 1);
	expect(b1, 500, 1, 0); /* sharing a name */
	expect(b1, 20000, 0, 0);
	assert_int_equal(match_model_estimate(&mm, rnd, blk, 2.0, 1000000), 0);
	assert_true(mm.learnt);
	for (size_t k = 0; k < NTRUTH; k++)
		for (int i = 0; i < truth[k].n; i++) {
			enum match_field f = truth[k].f;
			enum match_level l = truth[k].l[i];

			if (fabs(mm.u[f][l] - truth[k].u[i]) >
				0.05 * truth[k].u[i] ||
			    fabs(mm.m[f][l] - truth[k].m[i]) > 0.03)
				fail_msg("%s=%s: m %.4f (%.4f), u %.6f (%.6f)",
				    match_field_name(f), match_level_name(l),
				    mm.m[f][l], truth[k].m[i], mm.u[f][l],
				    truth[k].u[i]);
		}
	assert_true(fabs(mm.share[0] - 500.0 / 10500) < 0.005);
	assert_true(fabs(mm.share[1] - 500.0 / 20500) < 0.005);
	/* Of all pairs, one person: 500/10500 of those sharing a birth
	 * date, 2 a patient, are 0.8 of the matches among 1e6 - 1. */
	assert_true(
	    fabs(mm.prior - log2((1e6 - 1) * 0.8 / (2.0 * 500 / 10500))) < 0.2);
	assert_true(fabs(mm.w[MATCH_F_NAME][MATCH_L_EXACT] -
			log2(mm.m[MATCH_F_NAME][MATCH_L_EXACT] /
			    mm.u[MATCH_F_NAME][MATCH_L_EXACT])) < 1e-9);
	/* Too few random pairs and too few matches to learn from: the
	 * defaults, untouched. */
	memset(b0, 0, sizeof(b0));
	expect(b0, 10000, 0, 1);
	match_model_default(&def);
	assert_int_equal(match_model_estimate(&mm, rnd, blk, 2.0, 1000000), -1);
	assert_false(mm.learnt);
	assert_true(mm.prior == def.prior);
	assert_true(mm.w[MATCH_F_NAME][MATCH_L_EXACT] ==
	    def.w[MATCH_F_NAME][MATCH_L_EXACT]);
}

/* With a learnt model a common name weighs less than a rare one. */
static void
common_name_weighs_less(void **state)
{
	struct match_model mm;
	struct match_rec q = rec("王伟", 1, BIRTH, NULL, NULL, NULL);
	struct match_rec c = rec("王伟", 1, BIRTH, NULL, NULL, NULL);
	struct match_result rare, common, plain;

	(void)state;
	match_model_default(&mm);
	mm.learnt = true;
	mm.population = 1000000;
	mm.prior = 20;
	match_compare_model(&mm, 1e-6, &q, &c, &rare);
	match_compare_model(&mm, 0.01, &q, &c, &common);
	assert_true(common.weight < rare.weight);
	assert_true(common.score < rare.score);
	/* The name's weight is log2(m / share). */
	assert_true(
	    fabs(rare.weight - common.weight - log2(0.01 / 1e-6)) < 1e-9);
	/* The defaults know no frequencies: the share is ignored. */
	match_model_default(&mm);
	match_compare_model(&mm, 0.01, &q, &c, &common);
	match_compare(&q, &c, &plain);
	assert_true(common.weight == plain.weight);
}

/* However strong the agreement, a query with only a name (and sex) is
 * never certain, even when a level weighs more than exact agreement. */
static void
weak_query_is_never_certain_under_any_model(void **state)
{
	struct match_model mm;
	struct match_rec q = rec("章三", 1, NULL, NULL, NULL, NULL);
	struct match_rec c = rec(NAME, 1, BIRTH, PHONE, NULL, NULL);
	struct match_result m;

	(void)state;
	match_model_default(&mm);
	mm.w[MATCH_F_NAME][MATCH_L_PINYIN] =
	    mm.w[MATCH_F_NAME][MATCH_L_EXACT] + 4;
	match_compare_model(&mm, 0, &q, &c, &m);
	assert_int_equal(m.level[MATCH_F_NAME], MATCH_L_PINYIN);
	assert_int_equal(m.grade, MATCH_GRADE_PROBABLE);
	assert_true(m.score < MATCH_CERTAIN_SCORE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(identical_records_are_certain),
	    cmocka_unit_test(same_sound_character_is_pinyin_and_probable),
	    cmocka_unit_test(traditional_form_is_exact),
	    cmocka_unit_test(missing_or_extra_character_is_edit1),
	    cmocka_unit_test(name_typed_in_pinyin_compares_on_pinyin),
	    cmocka_unit_test(day_and_month_swapped_is_swap),
	    cmocka_unit_test(one_digit_birth_slip_is_1digit),
	    cmocka_unit_test(phone_one_digit_off_is_1digit),
	    cmocka_unit_test(two_cn_ids_are_never_a_pair),
	    cmocka_unit_test(different_people_do_not_match),
	    cmocka_unit_test(weak_query_is_possible_at_most_probable),
	    cmocka_unit_test(weights_follow_m_and_u),
	    cmocka_unit_test(bad_names_are_refused),
	    cmocka_unit_test(blocking_keys_survive_the_errors),
	    cmocka_unit_test(em_learns_m_and_the_prior_from_unlabelled_pairs),
	    cmocka_unit_test(common_name_weighs_less),
	    cmocka_unit_test(weak_query_is_never_certain_under_any_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
