/*
 * unihan.h: what name matching needs to know about one Chinese character,
 * from Unicode's Unihan database as Debian ships it (unicode-data): its
 * Mandarin reading, its simplified form and its four-corner shape code.
 * The tables are generated at build time by unihan_gen; docs/matching.md
 * says which fields and which Unicode version.
 *
 * Pure lookups in constant tables: safe from any thread, no allocation.
 */
#ifndef ONECARD_UNIHAN_H
#define ONECARD_UNIHAN_H

#include <stddef.h>
#include <stdint.h>

/* The longest toneless pinyin syllable: "zhuang". */
#define PINYIN_SYLLABLE_MAX 6

/* A toneless pinyin syllable's id, 1..unihan_syllable_count(); 0 is none. */
#define UNIHAN_NO_SYLLABLE 0

/* cp's customary reading (kMandarin's first value), or UNIHAN_NO_SYLLABLE. */
uint16_t unihan_reading(uint32_t cp);

/* The syllable an id stands for ("zhang"; 'v' spells ü), or NULL. */
const char *unihan_syllable(uint16_t id);

/* The id of the len letters at s ("zhang", 5), or UNIHAN_NO_SYLLABLE. */
uint16_t unihan_syllable_find(const char *s, size_t len);

/* How many syllables there are; ids run from 1 to this. */
unsigned unihan_syllable_count(void);

/*
 * cp's folded form: a compatibility ideograph's unified form, then the
 * simplified form (張 → 张); cp itself when it has none. Folding a folded
 * code point gives it back.
 */
uint32_t unihan_fold(uint32_t cp);

/*
 * cp's four-corner code (kFourCornerCode, the four main digits: 张 is
 * 1223), or -1. Characters that look alike tend to share corners, so a
 * matcher may treat a substitution between them as cheaper.
 */
int unihan_four_corner(uint32_t cp);

/* How many code points have a reading (a sanity figure for tests). */
size_t unihan_reading_count(void);

/* The bytes the generated tables take. */
size_t unihan_table_bytes(void);

/* The Unicode version the tables were made from, e.g. "15.0.0". */
const char *unihan_version(void);

#endif
