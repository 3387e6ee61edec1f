/*
 * fuzz_name_norm.c: arbitrary bytes as a name through the name normaliser
 * (registry/match/name_norm.c) and the Unihan tables behind it.
 *
 * A refusal must say why. An accepted name stays within its limits, has
 * only valid syllables, and a pinyin key that fits NAME_NORM_KEY_MAX and,
 * for a name typed in pinyin, spells its characters. Normalising the folded
 * characters again gives the same characters (folding is idempotent). The
 * distances are zero to itself, symmetric, and never past max + 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "name_norm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fail loudly: libFuzzer and ASan both report an abort with its stack. */
static void
fuzz_check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_name_norm: invariant broken: %s\n", what);
		abort();
	}
}

/* Encode cp as UTF-8 into out; returns its length. */
static size_t
fuzz_utf8(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The limits and the key of one accepted name. */
static void
fuzz_check_name(const struct name_norm *n)
{
	char key[NAME_NORM_KEY_MAX], letters[NAME_NORM_MAX + 1];
	int i, len, units, j = 0;

	fuzz_check(n->nchars >= 1 && n->nchars <= NAME_NORM_MAX, "nchars");
	fuzz_check(n->nsyl >= 0 && n->nsyl <= NAME_NORM_MAX, "nsyl");
	for (i = 0; i < n->nsyl; i++)
		fuzz_check(unihan_syllable(n->syl[i]) != NULL, "syllable id");
	units = n->pinyin_input ? n->nsyl : n->nchars;
	fuzz_check(n->surname_len >= 0 && n->surname_len <= 2 &&
		n->surname_len <= units,
	    "surname_len");
	fuzz_check(!n->pinyin_input || n->nsyl > 0, "pinyin without syllables");
	len = name_pinyin_key(n, key, sizeof(key));
	fuzz_check((len >= 0) == (n->nsyl > 0), "key iff syllables");
	if (len < 0)
		return;
	fuzz_check((size_t)len == strlen(key) && len < NAME_NORM_KEY_MAX,
	    "key length");
	if (!n->pinyin_input)
		return;
	/* A pinyin name's characters are its syllables' letters. */
	for (i = 0; i < len; i++)
		if (key[i] != ' ')
			letters[j++] = key[i];
	fuzz_check(j == n->nchars, "pinyin letters count");
	for (i = 0; i < j; i++)
		fuzz_check(n->chars[i] == (uint32_t)(unsigned char)letters[i],
		    "pinyin letters");
}

/* Normalising the folded characters again changes nothing. */
static void
fuzz_check_idempotent(const struct name_norm *n)
{
	char buf[4 * NAME_NORM_MAX];
	struct name_norm again;
	const char *why = NULL;
	size_t len = 0;
	int i;

	for (i = 0; i < n->nchars; i++)
		len += fuzz_utf8(n->chars[i], buf + len);
	fuzz_check(
	    name_normalise(buf, len, &again, &why) == 0, "folded name refused");
	fuzz_check(again.nchars == n->nchars &&
		memcmp(again.chars, n->chars,
		    sizeof(n->chars[0]) * (size_t)n->nchars) == 0,
	    "folding twice changed the name");
	fuzz_check(again.pinyin_input == n->pinyin_input,
	    "folding twice changed pinyin_input");
}

/* Distances between a and b, each way and to themselves. */
static void
fuzz_check_distances(const struct name_norm *a, const struct name_norm *b)
{
	int max, ab, ba;

	for (max = 0; max <= 3; max++) {
		fuzz_check(name_char_distance(a, a, max) == 0, "self distance");
		ab = name_char_distance(a, b, max);
		ba = name_char_distance(b, a, max);
		fuzz_check(ab == ba && ab >= 0 && ab <= max + 1,
		    "char distance symmetric and bounded");
		ab = name_syl_distance(a, b, max);
		ba = name_syl_distance(b, a, max);
		fuzz_check(ab == ba && ab >= 0 && ab <= max + 1,
		    "syllable distance symmetric and bounded");
		if (a->nsyl > 0)
			fuzz_check(name_syl_distance(a, a, max) == 0,
			    "self syllable distance");
	}
	fuzz_check(name_pinyin_equal(a, a) == (a->nsyl > 0), "pinyin_equal");
	fuzz_check(name_pinyin_equal(a, b) == name_pinyin_equal(b, a),
	    "pinyin_equal symmetric");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct name_norm whole, half;
	const char *why = NULL;
	int rc;

	rc = name_normalise((const char *)data, size, &whole, &why);
	fuzz_check(rc == 0 || (rc == -1 && why != NULL), "refusal says why");
	if (rc == -1)
		return 0;
	fuzz_check_name(&whole);
	fuzz_check_idempotent(&whole);
	/* The input's first half as a second name to measure against. */
	if (name_normalise((const char *)data, size / 2, &half, &why) == 0) {
		fuzz_check_name(&half);
		fuzz_check_distances(&whole, &half);
	}
	return 0;
}
