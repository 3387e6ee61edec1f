/*
 * unihan_data.h: the shape of the tables that unihan_gen writes at build time
 * (unihan_table.c in the build folder) and unihan.c reads. Nothing else
 * includes it: the rest of the code asks unihan.h.
 *
 * A map from code point to value is a two-level page table that stores only
 * the code points it has. The top level has one entry per 256 code points
 * (UNIHAN_NO_PAGE where none is present); a page has a 256-bit set of the
 * code points present and the index of its first value, so a code point's
 * value is at first + (present code points below it in the page).
 */
#ifndef ONECARD_UNIHAN_DATA_H
#define ONECARD_UNIHAN_DATA_H

#include <stdint.h>

#include "unihan.h"

#define UNIHAN_NO_PAGE 0xffff

struct unihan_page {
	uint64_t present[4];
	uint32_t first;
};

struct unihan_map {
	const uint16_t *top;
	uint32_t ntop;
	const struct unihan_page *pages;
	uint32_t npages;
	uint32_t nvalues;
	const void *values; /* uint16_t or uint32_t, as value_size says */
	uint32_t value_size;
};

/* kMandarin's first reading: a syllable id, 1..unihan_nsyllables. */
extern const struct unihan_map unihan_reading_map;
/* kCompatibilityVariant then kSimplifiedVariant, to a fixed point. */
extern const struct unihan_map unihan_fold_map;
/* kFourCornerCode's first value, its four main digits (0..9999). */
extern const struct unihan_map unihan_four_corner_map;

/* Toneless syllables, sorted; id n is unihan_syllables[n - 1]. */
extern const char unihan_syllables[][PINYIN_SYLLABLE_MAX + 1];
extern const uint16_t unihan_nsyllables;
/* The "Unicode version:" line of Unihan_Readings.txt, e.g. "15.0.0". */
extern const char unihan_unicode_version[];

#endif
