/*
 * test_match.c: registry/match/match.c: each error a registration desk makes
 * (a same-sound character, a traditional form, a missing or extra
 * character, a name typed in pinyin, day and month swapped, one digit wrong
 * in a birth date or a phone) is recognised at its level and still grades
 * as the same person; two different cn-ids never pair; the blocking keys
 * that let a search find a record despite the error.
 */
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
