/*
 * unihan_gen.c: turns Debian's Unihan files (package unicode-data, in
 * /usr/share/unicode) into the compact C tables that name matching reads
 * (unihan_data.h says their shape). A host tool run once at build time:
 *
 *   unihan_gen OUT.c READINGS VARIANTS DICTIONARY_LIKE IRG_SOURCES
 *
 * each input being Unihan_<Part>.txt or Unihan_<Part>.txt.bz2. It takes
 * kMandarin from Readings (the first value: the customary reading, made
 * toneless), kSimplifiedVariant and kTraditionalVariant from Variants,
 * kFourCornerCode from DictionaryLikeData and kCompatibilityVariant from
 * IRGSources.
 *
 * The output depends on nothing but the inputs (no dates, no paths), so two
 * builds from the same data give the same file. Anything in the data this
 * does not understand stops the build with a message instead of making a
 * table that is quietly wrong. It must never reach the network: the data is
 * whatever Debian installed.
 */
#include <bzlib.h>
#include <err.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unihan_data.h"
#include "unihan_text.h"

#define NCP       0x110000
#define LINE_MAX_ 8192
#define SYL_MAX   1024

/* An input file, plain or bzip2-compressed, read line by line. */
struct src {
	const char *path;
	FILE *f;
	BZFILE *bz;
	char buf[65536];
	size_t len, pos;
	int eof;
	unsigned long lineno;
};

/* kMandarin's first reading per code point, toneless; "" when none. */
static char reading[NCP][PINYIN_SYLLABLE_MAX + 1];
/* Every toneless syllable any kMandarin value spells, sorted at the end. */
static char syllables[SYL_MAX][PINYIN_SYLLABLE_MAX + 1];
static int nsyllables;
static uint32_t simplified[NCP], compat[NCP], fold[NCP];
static uint32_t trad_of[NCP];       /* one simplified form naming this as its
				       traditional one, 0 for none */
static uint8_t trad_many[NCP];      /* more than one does */
static uint8_t has_simplified[NCP]; /* has a kSimplifiedVariant, maybe itself */
static int four_corner[NCP];        /* 0..9999, -1 for none */
static char version[32];

/* Open path, decompressing when its name ends in .bz2. */
static void
src_open(struct src *s, const char *path)
{
	size_t n = strlen(path);
	int bzerr;

	memset(s, 0, sizeof(*s));
	s->path = path;
	if ((s->f = fopen(path, "rb")) == NULL)
		err(1, "%s", path);
	if (n > 4 && strcmp(path + n - 4, ".bz2") == 0) {
		s->bz = BZ2_bzReadOpen(&bzerr, s->f, 0, 0, NULL, 0);
		if (bzerr != BZ_OK)
			errx(1, "%s: not a bzip2 file (%d)", path, bzerr);
	}
}

/* Refill the buffer; 0 at the end of the data. */
static int
src_fill(struct src *s)
{
	int bzerr, n;

	if (s->eof)
		return 0;
	if (s->bz != NULL) {
		n = BZ2_bzRead(&bzerr, s->bz, s->buf, (int)sizeof(s->buf));
		if (bzerr != BZ_OK && bzerr != BZ_STREAM_END)
			errx(1, "%s: bzip2 error %d", s->path, bzerr);
		if (bzerr == BZ_STREAM_END)
			s->eof = 1;
	} else {
		n = (int)fread(s->buf, 1, sizeof(s->buf), s->f);
		if (ferror(s->f))
			err(1, "%s", s->path);
		if (n == 0)
			s->eof = 1;
	}
	s->len = (size_t)n;
	s->pos = 0;
	return n > 0;
}

/* The next line without its newline, cut at cap - 1 bytes; 0 at the end. */
static int
src_line(struct src *s, char *line, size_t cap)
{
	size_t n = 0;
	int any = 0;
	char c;

	for (;;) {
		if (s->pos == s->len && !src_fill(s))
			break;
		any = 1;
		c = s->buf[s->pos++];
		if (c == '\n')
			break;
		if (n + 1 < cap)
			line[n++] = c;
	}
	line[n] = '\0';
	if (n > 0 && line[n - 1] == '\r')
		line[n - 1] = '\0';
	if (any)
		s->lineno++;
	return any;
}

static void
src_close(struct src *s)
{
	int bzerr;

	if (s->bz != NULL)
		BZ2_bzReadClose(&bzerr, s->bz);
	fclose(s->f);
}

/* "U+4E00" at *p: the code point, *p moved past it; -1 if it is not one. */
static long
parse_cp(const char **p)
{
	const char *s = *p;
	char *end;
	long v;

	if (s[0] != 'U' || s[1] != '+')
		return -1;
	v = strtol(s + 2, &end, 16);
	if (end - (s + 2) < 4 || end - (s + 2) > 6 || v < 0 || v >= NCP)
		return -1;
	*p = end;
	return v;
}

/*
 * Split "U+XXXX<TAB>kField<TAB>value" into its parts; 0 for a data line,
 * -1 for a comment or a blank line. A malformed data line stops the build.
 */
static int
split_line(struct src *s, char *line, uint32_t *cp, char **field, char **value)
{
	const char *p = line;
	char *tab;
	long v;

	if (line[0] == '#' || line[0] == '\0')
		return -1;
	if ((v = parse_cp(&p)) == -1 || *p != '\t')
		errx(1, "%s:%lu: not a Unihan line", s->path, s->lineno);
	*cp = (uint32_t)v;
	*field = line + (p - line) + 1;
	if ((tab = strchr(*field, '\t')) == NULL)
		errx(1, "%s:%lu: no value", s->path, s->lineno);
	*tab = '\0';
	*value = tab + 1;
	return 0;
}

/* Remember the Unicode version a file's header states ("15.0.0"). */
static void
note_version(const char *line)
{
	static const char tag[] = "# Unicode version: ";
	size_t n;

	if (version[0] != '\0' || strncmp(line, tag, sizeof(tag) - 1) != 0)
		return;
	line += sizeof(tag) - 1;
	n = strspn(line, "0123456789.");
	if (n == 0 || n >= sizeof(version) || line[n] != '\0')
		errx(1, "odd Unicode version line: %s", line);
	memcpy(version, line, n);
	version[n] = '\0';
}

/*
 * One kMandarin value (up to a space or the end) made toneless into out;
 * returns the bytes it took. Stops the build on a letter pinyin_letter()
 * does not know or a syllable longer than PINYIN_SYLLABLE_MAX.
 */
static size_t
toneless(struct src *s, const char *v, char *out)
{
	const char *p = v;
	size_t n = 0;
	uint32_t cp;
	int len, letter;

	while (*p != '\0' && *p != ' ') {
		len = utf8_decode((const unsigned char *)p, strlen(p), &cp);
		if (len == -1)
			errx(1, "%s:%lu: bad UTF-8", s->path, s->lineno);
		if ((letter = pinyin_letter(cp)) == 0)
			errx(1, "%s:%lu: U+%04X is not a pinyin letter",
			    s->path, s->lineno, (unsigned)cp);
		if (n == PINYIN_SYLLABLE_MAX)
			errx(
			    1, "%s:%lu: syllable too long", s->path, s->lineno);
		out[n++] = (char)letter;
		p += len;
	}
	if (n == 0)
		errx(1, "%s:%lu: empty reading", s->path, s->lineno);
	out[n] = '\0';
	return (size_t)(p - v);
}

/* Add a syllable to the set unless it is there. */
static void
syllable_add(const char *syl)
{
	int i;

	for (i = 0; i < nsyllables; i++)
		if (strcmp(syllables[i], syl) == 0)
			return;
	if (nsyllables == SYL_MAX)
		errx(1, "more than %d pinyin syllables", SYL_MAX);
	memcpy(syllables[nsyllables++], syl, PINYIN_SYLLABLE_MAX + 1);
}

static int
syllable_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* kMandarin: every value's syllable joins the set; the first is the one. */
static void
read_readings(const char *path)
{
	struct src s;
	char line[LINE_MAX_], *field, *value, syl[PINYIN_SYLLABLE_MAX + 1];
	const char *p;
	uint32_t cp;
	int first;

	src_open(&s, path);
	while (src_line(&s, line, sizeof(line))) {
		note_version(line);
		if (split_line(&s, line, &cp, &field, &value) == -1 ||
		    strcmp(field, "kMandarin") != 0)
			continue;
		for (p = value, first = 1; *p != '\0'; first = 0) {
			p += toneless(&s, p, syl);
			syllable_add(syl);
			if (first)
				memcpy(reading[cp], syl, sizeof(syl));
			while (*p == ' ')
				p++;
		}
	}
	src_close(&s);
}

/* The first code point of a "U+XXXX U+YYYY<kSource" list; -1 for none. */
static long
first_cp(const char *value)
{
	const char *p = value;

	return parse_cp(&p);
}

/*
 * kSimplifiedVariant (first value) and, for each kTraditionalVariant, the
 * reverse pair, used where a traditional form has no kSimplifiedVariant of
 * its own and exactly one simplified form points at it.
 */
static void
read_variants(const char *path)
{
	struct src s;
	char line[LINE_MAX_], *field, *value;
	const char *p;
	uint32_t cp;
	long v;

	src_open(&s, path);
	while (src_line(&s, line, sizeof(line))) {
		note_version(line);
		if (split_line(&s, line, &cp, &field, &value) == -1)
			continue;
		if (strcmp(field, "kSimplifiedVariant") == 0) {
			if ((v = first_cp(value)) == -1)
				errx(
				    1, "%s:%lu: bad variant", s.path, s.lineno);
			has_simplified[cp] = 1;
			if ((uint32_t)v != cp)
				simplified[cp] = (uint32_t)v;
		} else if (strcmp(field, "kTraditionalVariant") == 0) {
			for (p = value; *p != '\0';) {
				if ((v = parse_cp(&p)) == -1)
					errx(1, "%s:%lu: bad variant", s.path,
					    s.lineno);
				if ((uint32_t)v != cp) {
					if (trad_of[v] != 0 && trad_of[v] != cp)
						trad_many[v] = 1;
					trad_of[v] = cp;
				}
				while (*p == ' ')
					p++;
			}
		}
	}
	src_close(&s);
}

/* kFourCornerCode: "1022.7" keeps 1022; the first value only. */
static void
read_dictionary_like(const char *path)
{
	struct src s;
	char line[LINE_MAX_], *field, *value;
	uint32_t cp;
	int i, code;

	src_open(&s, path);
	while (src_line(&s, line, sizeof(line))) {
		note_version(line);
		if (split_line(&s, line, &cp, &field, &value) == -1 ||
		    strcmp(field, "kFourCornerCode") != 0)
			continue;
		for (i = 0, code = 0; i < 4; i++) {
			if (value[i] < '0' || value[i] > '9')
				errx(1, "%s:%lu: bad four-corner code", s.path,
				    s.lineno);
			code = code * 10 + (value[i] - '0');
		}
		four_corner[cp] = code;
	}
	src_close(&s);
}

/* kCompatibilityVariant: a CJK compatibility ideograph's unified form. */
static void
read_irg_sources(const char *path)
{
	struct src s;
	char line[LINE_MAX_], *field, *value;
	uint32_t cp;
	long v;

	src_open(&s, path);
	while (src_line(&s, line, sizeof(line))) {
		note_version(line);
		if (split_line(&s, line, &cp, &field, &value) == -1 ||
		    strcmp(field, "kCompatibilityVariant") != 0)
			continue;
		if ((v = first_cp(value)) == -1)
			errx(1, "%s:%lu: bad variant", s.path, s.lineno);
		compat[cp] = (uint32_t)v;
	}
	src_close(&s);
}

/*
 * fold[cp]: the compatibility ideograph's unified form, then the simplified
 * form, repeated until nothing changes (U+85B4 → U+82E7 → U+82CE is such a
 * chain), so folding a folded character changes nothing.
 */
static void
build_fold(void)
{
	uint32_t cp, x, next;
	int steps;

	for (cp = 0; cp < NCP; cp++)
		if (!has_simplified[cp] && trad_of[cp] != 0 && !trad_many[cp])
			simplified[cp] = trad_of[cp];
	for (cp = 0; cp < NCP; cp++) {
		for (x = cp, steps = 0;; x = next, steps++) {
			if (compat[x] != 0)
				next = compat[x];
			else if (simplified[x] != 0)
				next = simplified[x];
			else
				break;
			if (steps == 8)
				errx(1, "U+%04X: variants form a cycle",
				    (unsigned)cp);
		}
		fold[cp] = x != cp ? x : 0;
	}
}

/* Where the generated file goes; written whole, then renamed into place. */
static FILE *out;
static size_t out_bytes;

/*
 * Write one page-table map called name: the code points for which
 * present(cp) holds, with value(cp) in a uint16_t or uint32_t array.
 */
static void
write_map(const char *name, int (*present)(uint32_t),
    uint32_t (*value)(uint32_t), int value_size)
{
	uint32_t cp, hi, ntop = 0, npages = 0, nvalues = 0, col = 0, first, n;
	uint64_t bits[4];
	int any;

	for (cp = 0; cp < NCP; cp++)
		if (present(cp))
			ntop = (cp >> 8) + 1;
	if (ntop == 0)
		errx(1, "%s: the data has none", name);
	fprintf(out, "\nstatic const uint%d_t %s_values[] = {", value_size * 8,
	    name);
	for (cp = 0; cp < NCP; cp++) {
		if (!present(cp))
			continue;
		fprintf(out, "%s%lu,", col++ % 12 == 0 ? "\n\t" : " ",
		    (unsigned long)value(cp));
		nvalues++;
	}
	fprintf(out, "\n};\n\nstatic const struct unihan_page %s_pages[] = {\n",
	    name);
	for (hi = 0, first = 0; hi < ntop; hi++) {
		memset(bits, 0, sizeof(bits));
		for (cp = hi << 8, n = 0; cp < (hi + 1) << 8; cp++)
			if (present(cp)) {
				bits[(cp & 0xff) >> 6] |= 1ULL << (cp & 63);
				n++;
			}
		if (n == 0)
			continue;
		fprintf(out,
		    "\t{{0x%016llxULL, 0x%016llxULL, 0x%016llxULL, "
		    "0x%016llxULL}, %lu},\n",
		    (unsigned long long)bits[0], (unsigned long long)bits[1],
		    (unsigned long long)bits[2], (unsigned long long)bits[3],
		    (unsigned long)first);
		first += n;
	}
	fprintf(out, "};\n\nstatic const uint16_t %s_top[] = {", name);
	for (hi = 0, npages = 0, col = 0; hi < ntop; hi++) {
		for (cp = hi << 8, any = 0; cp < (hi + 1) << 8 && !any; cp++)
			any = present(cp);
		fprintf(out, "%s%lu,", col++ % 12 == 0 ? "\n\t" : " ",
		    any ? (unsigned long)npages++
			: (unsigned long)UNIHAN_NO_PAGE);
	}
	if (npages >= UNIHAN_NO_PAGE)
		errx(1, "%s: too many pages", name);
	fprintf(out,
	    "\n};\n\nconst struct unihan_map %s_map = {\n"
	    "\t%s_top, %lu, %s_pages, %lu, %lu, %s_values, %d,\n};\n",
	    name, name, (unsigned long)ntop, name, (unsigned long)npages,
	    (unsigned long)nvalues, name, value_size);
	out_bytes += ntop * sizeof(uint16_t) +
	    npages * sizeof(struct unihan_page) + nvalues * (size_t)value_size;
}

static int
has_reading(uint32_t cp)
{
	return reading[cp][0] != '\0';
}

/* The id of cp's reading: its place in the sorted syllables, from 1. */
static uint32_t
reading_id(uint32_t cp)
{
	char(*hit)[PINYIN_SYLLABLE_MAX + 1];

	hit = bsearch(reading[cp], syllables, (size_t)nsyllables,
	    sizeof(syllables[0]), syllable_cmp);
	if (hit == NULL)
		errx(1, "U+%04X: reading lost", (unsigned)cp);
	return (uint32_t)(hit - syllables) + 1;
}

static int
has_fold(uint32_t cp)
{
	return fold[cp] != 0;
}

static uint32_t
fold_value(uint32_t cp)
{
	return fold[cp];
}

static int
has_four_corner(uint32_t cp)
{
	return four_corner[cp] >= 0;
}

static uint32_t
four_corner_value(uint32_t cp)
{
	return (uint32_t)four_corner[cp];
}

int
main(int argc, char **argv)
{
	char tmp[4096];
	uint32_t cp;
	int i;

	if (argc != 6) {
		fprintf(stderr,
		    "usage: unihan_gen OUT.c READINGS VARIANTS "
		    "DICTIONARY_LIKE IRG_SOURCES\n");
		return 2;
	}
	for (cp = 0; cp < NCP; cp++)
		four_corner[cp] = -1;
	read_readings(argv[2]);
	read_variants(argv[3]);
	read_dictionary_like(argv[4]);
	read_irg_sources(argv[5]);
	if (version[0] == '\0')
		errx(1, "%s: no \"Unicode version:\" line", argv[2]);
	if (nsyllables == 0)
		errx(1, "%s: no kMandarin readings", argv[2]);
	qsort(
	    syllables, (size_t)nsyllables, sizeof(syllables[0]), syllable_cmp);
	build_fold();

	snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
	if ((out = fopen(tmp, "w")) == NULL)
		err(1, "%s", tmp);
	fprintf(out,
	    "/* Generated by unihan_gen from Unihan %s (Debian's "
	    "unicode-data). Do not edit. */\n"
	    "#include \"unihan_data.h\"\n\n"
	    "const char unihan_unicode_version[] = \"%s\";\n"
	    "const uint16_t unihan_nsyllables = %d;\n"
	    "const char unihan_syllables[][PINYIN_SYLLABLE_MAX + 1] = {",
	    version, version, nsyllables);
	for (i = 0; i < nsyllables; i++)
		fprintf(
		    out, "%s\"%s\",", i % 10 == 0 ? "\n\t" : " ", syllables[i]);
	fprintf(out, "\n};\n");
	out_bytes += (size_t)nsyllables * (PINYIN_SYLLABLE_MAX + 1);
	write_map("unihan_reading", has_reading, reading_id, 2);
	write_map("unihan_fold", has_fold, fold_value, 4);
	write_map("unihan_four_corner", has_four_corner, four_corner_value, 2);
	fprintf(out, "\n/* %zu bytes of tables. */\n", out_bytes);
	if (fflush(out) == EOF || ferror(out) || fclose(out) == EOF)
		err(1, "%s", tmp);
	if (rename(tmp, argv[1]) == -1)
		err(1, "%s", argv[1]);
	return 0;
}
