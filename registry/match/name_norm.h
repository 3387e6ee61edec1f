/*
 * name_norm.h: a person's name as matching compares it. A name written in
 * characters (張三, 张 三, 张·三) and the same name typed in pinyin
 * ("Zhang San", "ZHANGSAN", "zhāng sān") normalise to the same pinyin key;
 * traditional and simplified forms fold to the same characters.
 * docs/matching.md ("Names") says what is folded and where the data comes
 * from.
 *
 * No allocation, no global state: safe from any thread.
 */
#ifndef ONECARD_NAME_NORM_H
#define ONECARD_NAME_NORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "unihan.h"

/*
 * The most code points a name may have after folding (spaces and dots
 * dropped). A Chinese name is two to four characters; a minority name
 * transliterated into characters runs to about fifteen (阿卜杜热依木·买买
 * 提), and the same name typed in pinyin takes up to six letters per
 * syllable. Longer input is refused, not cut.
 */
#define NAME_NORM_MAX 64

/* The buffer pinyin_key needs at most: six letters and a space per unit. */
#define NAME_NORM_KEY_MAX (NAME_NORM_MAX * (PINYIN_SYLLABLE_MAX + 1))

struct name_norm {
	/*
	 * The folded name: CJK characters in their simplified form, Latin
	 * lower-cased without tone marks, full-width forms made half-width,
	 * spaces, middle dots, apostrophes and hyphens removed. For a name
	 * typed in pinyin these are the letters of its syllables, 'v' for ü.
	 */
	uint32_t chars[NAME_NORM_MAX];
	int nchars;
	/*
	 * The toneless pinyin syllable ids (unihan_syllable()), one per
	 * character or per typed syllable; nsyl is 0 when some part of the
	 * name has no reading (a digit, a rare character, a Latin name that
	 * is not pinyin), so no pinyin key exists.
	 */
	uint16_t syl[NAME_NORM_MAX];
	int nsyl;
	/*
	 * The surname's length, counted in chars, or in syllables when
	 * pinyin_input: 2 when the name starts with a compound surname (欧
	 * 阳, "ouyang") and has something after it, else 1; 0 for a name with
	 * no pinyin reading.
	 */
	int surname_len;
	/* The name was typed in Latin letters and reads as pinyin. */
	bool pinyin_input;
};

/*
 * Normalise len bytes of UTF-8 into out. Returns 0, or -1 with *why (when
 * why is not NULL) naming the problem: invalid UTF-8 (including an encoded
 * surrogate), a control character, nothing left after folding, more than
 * NAME_NORM_MAX code points.
 */
int name_normalise(
    const char *utf8, size_t len, struct name_norm *out, const char **why);

/*
 * The pinyin key: the syllables spelt out and joined by single spaces
 * ("zhang san"). Returns its length, or -1 when the name has no pinyin
 * reading or cap is too small (NAME_NORM_KEY_MAX always suffices).
 */
int name_pinyin_key(const struct name_norm *n, char *buf, size_t cap);

/* Whether both names have a pinyin reading and it is the same. */
bool name_pinyin_equal(const struct name_norm *a, const struct name_norm *b);

/*
 * The Damerau-Levenshtein distance (optimal string alignment: one missing,
 * extra or wrong character, or two neighbours swapped, each cost 1) between
 * the folded characters of a and b; max + 1 as soon as it is known to
 * exceed max, which keeps the work to a band around the diagonal.
 */
int name_char_distance(
    const struct name_norm *a, const struct name_norm *b, int max);

/* The same distance over pinyin syllables; max + 1 if either has none. */
int name_syl_distance(
    const struct name_norm *a, const struct name_norm *b, int max);

/*
 * Checks the two lists name_norm.c keeps by hand (compound surnames and
 * surname readings) against the generated tables: each entry's characters
 * are already folded and have a reading, each pinyin is a known syllable.
 * Returns 0, or -1 with *why naming the entry. For the unit test.
 */
int name_norm_check_lists(const char **why);

#endif
