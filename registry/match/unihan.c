/*
 * unihan.c: lookups in the tables that unihan_gen generated (unihan_data.h
 * describes them). It owns no data of its own and must not grow any: every
 * fact about a character comes from the generated tables.
 */
#include <string.h>

#include "unihan.h"
#include "unihan_data.h"

/* The index of cp's value in m, or -1 when m does not have cp. */
static long
unihan_map_find(const struct unihan_map *m, uint32_t cp)
{
	const struct unihan_page *pg;
	uint32_t hi = cp >> 8, lo = cp & 0xff, word = lo >> 6, bit = lo & 63;
	uint64_t below;
	long idx;
	uint32_t i;

	if (hi >= m->ntop || m->top[hi] == UNIHAN_NO_PAGE)
		return -1;
	pg = &m->pages[m->top[hi]];
	if ((pg->present[word] >> bit & 1) == 0)
		return -1;
	idx = (long)pg->first;
	for (i = 0; i < word; i++)
		idx += __builtin_popcountll(pg->present[i]);
	below = bit == 0 ? 0 : pg->present[word] & ((1ULL << bit) - 1);
	return idx + __builtin_popcountll(below);
}

/* cp's value in m, or dflt. */
static uint32_t
unihan_map_get(const struct unihan_map *m, uint32_t cp, uint32_t dflt)
{
	long idx = unihan_map_find(m, cp);

	if (idx == -1)
		return dflt;
	if (m->value_size == 2)
		return ((const uint16_t *)m->values)[idx];
	return ((const uint32_t *)m->values)[idx];
}

uint16_t
unihan_reading(uint32_t cp)
{
	return (uint16_t)unihan_map_get(
	    &unihan_reading_map, cp, UNIHAN_NO_SYLLABLE);
}

const char *
unihan_syllable(uint16_t id)
{
	if (id == UNIHAN_NO_SYLLABLE || id > unihan_nsyllables)
		return NULL;
	return unihan_syllables[id - 1];
}

uint16_t
unihan_syllable_find(const char *s, size_t len)
{
	int lo = 0, hi = (int)unihan_nsyllables - 1, mid, c;
	char key[PINYIN_SYLLABLE_MAX + 1];

	if (len == 0 || len > PINYIN_SYLLABLE_MAX)
		return UNIHAN_NO_SYLLABLE;
	memcpy(key, s, len);
	key[len] = '\0';
	while (lo <= hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(key, unihan_syllables[mid])) == 0)
			return (uint16_t)(mid + 1);
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return UNIHAN_NO_SYLLABLE;
}

unsigned
unihan_syllable_count(void)
{
	return unihan_nsyllables;
}

uint32_t
unihan_fold(uint32_t cp)
{
	return unihan_map_get(&unihan_fold_map, cp, cp);
}

int
unihan_four_corner(uint32_t cp)
{
	long idx = unihan_map_find(&unihan_four_corner_map, cp);

	if (idx == -1)
		return -1;
	return ((const uint16_t *)unihan_four_corner_map.values)[idx];
}

size_t
unihan_reading_count(void)
{
	return unihan_reading_map.nvalues;
}

/* One map's bytes: its top level, its pages and its values. */
static size_t
unihan_map_bytes(const struct unihan_map *m)
{
	return m->ntop * sizeof(uint16_t) +
	    m->npages * sizeof(struct unihan_page) +
	    (size_t)m->nvalues * m->value_size;
}

size_t
unihan_table_bytes(void)
{
	return unihan_map_bytes(&unihan_reading_map) +
	    unihan_map_bytes(&unihan_fold_map) +
	    unihan_map_bytes(&unihan_four_corner_map) +
	    (size_t)unihan_nsyllables * (PINYIN_SYLLABLE_MAX + 1);
}

const char *
unihan_version(void)
{
	return unihan_unicode_version;
}
