/*
 * test_name_norm.c: registry/match/name_norm.c and the Unihan tables behind
 * it (unihan.c): traditional and simplified forms, same-sound characters,
 * names typed in pinyin, separators and full-width letters, compound
 * surnames, refused input at each limit, and the edit distances the matcher
 * will use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "name_norm.h"
#include "unihan.h"

/* Normalise s, failing the test if it is refused. */
static struct name_norm
norm(const char *s)
{
	struct name_norm n;
	const char *why = NULL;

	if (name_normalise(s, strlen(s), &n, &why) != 0)
		fail_msg("\"%s\" refused: %s", s, why);
	return n;
}

/* s's pinyin key, "" when it has none. */
static const char *
key(const char *s)
{
	static char buf[NAME_NORM_KEY_MAX];
	struct name_norm n = norm(s);

	if (name_pinyin_key(&n, buf, sizeof(buf)) == -1)
		buf[0] = '\0';
	return buf;
}

/* Whether a and b fold to the same characters. */
static int
same_chars(const char *a, const char *b)
{
	struct name_norm x = norm(a), y = norm(b);

	return x.nchars == y.nchars &&
	    memcmp(x.chars, y.chars, sizeof(x.chars[0]) * (size_t)x.nchars) ==
	    0;
}

/* The why of a refused name; fails the test if it is accepted. */
static const char *
refused(const char *s, size_t len)
{
	struct name_norm n;
	const char *why = NULL;

	assert_int_equal(name_normalise(s, len, &n, &why), -1);
	assert_non_null(why);
	return why;
}

static int
distance(const char *a, const char *b, int max)
{
	struct name_norm x = norm(a), y = norm(b);

	return name_char_distance(&x, &y, max);
}

static void
table_has_plausible_size(void **state)
{
	assert_true(unihan_reading_count() > 20000);
	assert_in_range(unihan_syllable_count(), 400, 450);
	assert_in_range(unihan_table_bytes(), 50 * 1024, 512 * 1024);
	assert_true(strlen(unihan_version()) >= 4);
	print_message("Unihan %s: %zu readings, %u syllables, %zu bytes\n",
	    unihan_version(), unihan_reading_count(), unihan_syllable_count(),
	    unihan_table_bytes());
}

static void
table_reads_common_characters(void **state)
{
	assert_string_equal(unihan_syllable(unihan_reading(0x5f20)), "zhang");
	assert_string_equal(unihan_syllable(unihan_reading(0x5f35)), "zhang");
	assert_string_equal(unihan_syllable(unihan_reading(0x4e09)), "san");
	assert_string_equal(unihan_syllable(unihan_reading(0x5415)), "lv");
	assert_int_equal(unihan_reading('a'), UNIHAN_NO_SYLLABLE);
	assert_int_equal(unihan_reading(0x10ffff), UNIHAN_NO_SYLLABLE);
	assert_null(unihan_syllable(UNIHAN_NO_SYLLABLE));
	assert_null(unihan_syllable((uint16_t)(unihan_syllable_count() + 1)));
	assert_int_equal(
	    unihan_syllable_find("zhuang", 6), unihan_reading(0x5e84)); /* 庄 */
	assert_int_equal(unihan_syllable_find("zhangx", 6), UNIHAN_NO_SYLLABLE);
	/* 王 and 玉 look alike and share their four corners. */
	assert_int_equal(unihan_four_corner(0x738b), 1010);
	assert_int_equal(unihan_four_corner(0x7389), 1010);
	assert_int_equal(unihan_four_corner(0x5f20), 1223);
	assert_int_equal(unihan_four_corner('a'), -1);
}

static void
table_fold_is_idempotent(void **state)
{
	uint32_t cp;

	assert_int_equal(unihan_fold(0x5f35), 0x5f20); /* 張 → 张 */
	assert_int_equal(unihan_fold(0x5f20), 0x5f20);
	assert_int_equal(unihan_fold(0x4e7e), 0x4e7e); /* 乾 stays */
	assert_int_equal(unihan_fold(0x85b4), 0x82ce); /* a chain of two */
	assert_int_equal(unihan_fold(0xf900), 0x5c82); /* 豈 compat → 岂 */
	for (cp = 0; cp < 0x40000; cp++)
		if (unihan_fold(unihan_fold(cp)) != unihan_fold(cp))
			fail_msg("U+%04X folds twice", (unsigned)cp);
}

static void
traditional_and_simplified_fold_together(void **state)
{
	struct name_norm n = norm("張三");

	assert_true(same_chars("張三", "张三"));
	assert_true(same_chars("歐陽娜娜", "欧阳娜娜"));
	assert_int_equal(n.nchars, 2);
	assert_int_equal(n.chars[0], 0x5f20);
	assert_false(n.pinyin_input);
	assert_string_equal(key("張三"), "zhang san");
}

static void
same_sound_characters_share_pinyin_key(void **state)
{
	struct name_norm a = norm("章三"), b = norm("张三");

	assert_false(same_chars("章三", "张三"));
	assert_string_equal(key("章三"), key("张三"));
	assert_true(name_pinyin_equal(&a, &b));
	b = norm("李四");
	assert_false(name_pinyin_equal(&a, &b));
}

static void
pinyin_typed_names_match_characters(void **state)
{
	static const char *typed[] = {"zhang san", "Zhang San", "ZhangSan",
	    "ZHANGSAN", "zhangsan", "zhāng sān", "ZHĀNG SĀN",
	    "zha\xcc\x84ng sa\xcc\x84n", "ＺＨＡＮＧ　ＳＡＮ", "Zhang-San",
	    "  zhang   san  "};
	struct name_norm n;
	size_t i;

	for (i = 0; i < sizeof(typed) / sizeof(typed[0]); i++) {
		n = norm(typed[i]);
		assert_true(n.pinyin_input);
		assert_string_equal(key(typed[i]), "zhang san");
		assert_true(same_chars(typed[i], "zhangsan"));
		assert_int_equal(n.surname_len, 1);
	}
	assert_string_equal(key("张san"), "zhang san");
	assert_false(norm("张san").pinyin_input);
}

static void
umlaut_spellings_agree(void **state)
{
	static const char *typed[] = {"lü bu", "lv bu", "lu: bu", "LÜ BU",
	    "lu\xcc\x88 bu", "lǚ bù", "Lu：Bu", "lübu"};
	size_t i;

	assert_string_equal(key("吕布"), "lv bu");
	for (i = 0; i < sizeof(typed) / sizeof(typed[0]); i++) {
		assert_string_equal(key(typed[i]), "lv bu");
		assert_true(same_chars(typed[i], "lvbu"));
	}
}

static void
separators_and_full_width_fold(void **state)
{
	static const char *spaced[] = {"张 三", "张·三", "张・三", "张　三",
	    "张\xc2\xa0三", "张•三", "张‧三", " 张三 ", "张\xe2\x80\x8b三"};
	size_t i;

	for (i = 0; i < sizeof(spaced) / sizeof(spaced[0]); i++)
		assert_true(same_chars(spaced[i], "张三"));
	assert_true(same_chars("ＺＨＡＮＧ", "zhang"));
	assert_true(same_chars("Ｚｈａｎｇ１２", "zhang12"));
	assert_true(same_chars("买买提·艾力", "买买提艾力"));
	assert_true(same_chars("买买提.艾力", "买买提艾力"));
}

static void
pinyin_segmentation_prefers_fewest_syllables(void **state)
{
	assert_string_equal(key("xian"), "xian");
	assert_string_equal(key("xi an"), "xi an");
	assert_string_equal(key("xi'an"), "xi an");
	assert_string_equal(key("XiAn"), "xi an");
	assert_string_equal(key("changan"), "chan gan");
	assert_string_equal(key("chang'an"), "chang an");
	assert_string_equal(key("lina"), "li na");
	assert_string_equal(key("Ouyang Nana"), "ou yang na na");
	/* Separators that fall inside a syllable are ignored. */
	assert_string_equal(key("zhan gsan"), "zhang san");
	/* Syllables without a vowel (嗯 n, 呣 m) are never a name's. */
	assert_string_equal(key("hmm"), "");
}

static void
latin_name_that_is_not_pinyin(void **state)
{
	struct name_norm n = norm("John Smith");

	assert_false(n.pinyin_input);
	assert_int_equal(n.nsyl, 0);
	assert_int_equal(n.surname_len, 0);
	assert_true(same_chars("John Smith", "johnsmith"));
	assert_true(same_chars("Müller", "müller"));
	assert_true(same_chars("MUÑOZ", "muñoz"));
	assert_string_equal(key("John Smith"), "");
}

static void
compound_surnames_split(void **state)
{
	const char *why = NULL;

	assert_int_equal(norm("欧阳娜娜").surname_len, 2);
	assert_int_equal(norm("歐陽娜娜").surname_len, 2);
	assert_int_equal(norm("诸葛亮").surname_len, 2);
	assert_int_equal(norm("司马光").surname_len, 2);
	assert_int_equal(norm("张三").surname_len, 1);
	assert_int_equal(norm("欧阳").surname_len, 1); /* never surname alone */
	assert_int_equal(norm("Ouyang Nana").surname_len, 2);
	assert_int_equal(norm("ouyangnana").surname_len, 2);
	assert_int_equal(norm("Zhuge Liang").surname_len, 2);
	assert_int_equal(norm("Zhu Gejun").surname_len, 1);
	assert_int_equal(norm("Zhu Ge").surname_len, 1);
	assert_string_equal(key("长孙无忌"), "zhang sun wu ji");
	assert_string_equal(key("尉迟恭"), "yu chi gong");
	assert_int_equal(name_norm_check_lists(&why), 0);
}

static void
surnames_read_as_surnames(void **state)
{
	assert_string_equal(key("曾小贤"), "zeng xiao xian");
	assert_string_equal(key("Zeng Xiaoxian"), "zeng xiao xian");
	assert_string_equal(key("单田芳"), "shan tian fang");
	/* Only the surname: 曾 later in a name keeps kMandarin's reading. */
	assert_string_equal(key("李曾"), "li ceng");
}

static void
bad_input_is_refused_with_a_reason(void **state)
{
	char big[1024];
	size_t i;

	assert_string_equal(refused("\xff", 1), "name is not valid UTF-8");
	assert_string_equal(refused("\xe5\xbc", 2), "name is not valid UTF-8");
	assert_string_equal(refused("\xc0\xaf", 2), "name is not valid UTF-8");
	assert_string_equal(
	    refused("\xed\xa0\x80", 3), "name is not valid UTF-8");
	assert_string_equal(
	    refused("\xf4\x90\x80\x80", 4), "name is not valid UTF-8");
	assert_string_equal(refused("\x01", 1), "control character in name");
	assert_string_equal(refused("张\n三", 7), "control character in name");
	assert_string_equal(refused("a\0b", 3), "control character in name");
	assert_string_equal(refused("\x7f", 1), "control character in name");
	assert_string_equal(
	    refused("\xc2\x85", 2), "control character in name");
	assert_string_equal(refused("\xef\xbf\xbf", 3), "noncharacter in name");
	assert_string_equal(refused("", 0), "name is empty");
	assert_string_equal(refused(" · ", strlen(" · ")), "name is empty");
	for (i = 0; i < 200; i++)
		memcpy(big + 3 * i, "张", 3);
	assert_string_equal(refused(big, 600), "name too long");
	memset(big, 'a', sizeof(big));
	assert_string_equal(refused(big, sizeof(big)), "name too long");
}

static void
length_limit_is_on_folded_characters(void **state)
{
	char buf[4 * (NAME_NORM_MAX + 1) + 1];
	struct name_norm n;
	const char *why;
	int i;

	for (i = 0; i < NAME_NORM_MAX; i++)
		memcpy(buf + 3 * i, "张", 3);
	assert_int_equal(name_normalise(buf, 3 * NAME_NORM_MAX, &n, &why), 0);
	assert_int_equal(n.nchars, NAME_NORM_MAX);
	memcpy(buf + 3 * NAME_NORM_MAX, "张", 3);
	assert_int_equal(
	    name_normalise(buf, 3 * (NAME_NORM_MAX + 1), &n, &why), -1);
	/* Separators do not count. */
	for (i = 0; i < NAME_NORM_MAX / 2; i++)
		memcpy(buf + 3 * i, "ab ", 3);
	assert_int_equal(
	    name_normalise(buf, 3 * (NAME_NORM_MAX / 2), &n, &why), 0);
	assert_int_equal(n.nchars, NAME_NORM_MAX);
}

static void
pinyin_key_fits_its_buffer(void **state)
{
	char buf[NAME_NORM_KEY_MAX], small[9];
	char name[NAME_NORM_MAX + 1];
	struct name_norm n;
	const char *why;
	int i;

	/* "zhuang" ten times is 60 letters: the longest key that fits. */
	for (i = 0; i < 10; i++)
		memcpy(name + 6 * i, "zhuang", 6);
	assert_int_equal(name_normalise(name, 60, &n, &why), 0);
	assert_int_equal(n.nsyl, 10);
	assert_int_equal(name_pinyin_key(&n, buf, sizeof(buf)), 69);
	n = norm("zhang san");
	assert_int_equal(name_pinyin_key(&n, small, sizeof(small)), -1);
	assert_int_equal(name_pinyin_key(&n, buf, 10), 9);
	assert_string_equal(buf, "zhang san");
}

static void
char_distance_counts_one_slip(void **state)
{
	assert_int_equal(distance("张三丰", "张三丰", 2), 0);
	assert_int_equal(distance("張三丰", "张三丰", 2), 0);
	assert_int_equal(distance("张三丰", "张三", 2), 1);   /* missing */
	assert_int_equal(distance("张三", "张三丰", 2), 1);   /* extra */
	assert_int_equal(distance("张三丰", "张山丰", 2), 1); /* wrong */
	assert_int_equal(distance("张三丰", "张丰三", 2), 1); /* swapped */
	assert_int_equal(distance("张三丰", "丰张", 5), 3);
	assert_int_equal(distance("ca", "abc", 5), 3); /* OSA, not full DL */
	assert_int_equal(distance("张三丰", "李四", 1), 2); /* bounded */
	assert_int_equal(distance("张三丰", "张三", 0), 1);
	assert_int_equal(distance("abcdefgh", "hgfedcba", 3), 4);
	assert_int_equal(distance("abcdefgh", "hgfedcba", 10), 7);
	assert_int_equal(distance("abcdefgh", "hgfedcba", 7), 7);
	assert_int_equal(distance("abcdefgh", "hgfedcba", 6), 7);
}

static void
syl_distance_hears_same_sounds(void **state)
{
	struct name_norm a = norm("张三丰"), b = norm("章三风"),
			 c = norm("张山丰"), d = norm("John");

	assert_int_equal(name_syl_distance(&a, &b, 2), 0);
	assert_int_equal(name_char_distance(&a, &b, 2), 2);
	assert_int_equal(name_syl_distance(&a, &c, 2), 1);
	assert_int_equal(name_syl_distance(&a, &d, 2), 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(table_has_plausible_size),
	    cmocka_unit_test(table_reads_common_characters),
	    cmocka_unit_test(table_fold_is_idempotent),
	    cmocka_unit_test(traditional_and_simplified_fold_together),
	    cmocka_unit_test(same_sound_characters_share_pinyin_key),
	    cmocka_unit_test(pinyin_typed_names_match_characters),
	    cmocka_unit_test(umlaut_spellings_agree),
	    cmocka_unit_test(separators_and_full_width_fold),
	    cmocka_unit_test(pinyin_segmentation_prefers_fewest_syllables),
	    cmocka_unit_test(latin_name_that_is_not_pinyin),
	    cmocka_unit_test(compound_surnames_split),
	    cmocka_unit_test(surnames_read_as_surnames),
	    cmocka_unit_test(bad_input_is_refused_with_a_reason),
	    cmocka_unit_test(length_limit_is_on_folded_characters),
	    cmocka_unit_test(pinyin_key_fits_its_buffer),
	    cmocka_unit_test(char_distance_counts_one_slip),
	    cmocka_unit_test(syl_distance_hears_same_sounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
