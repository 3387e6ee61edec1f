/*
 * name_norm.c: folds a name into the form matching compares (name_norm.h):
 * characters to their simplified form, Latin to lower case without tone
 * marks, full-width to half-width, separators out; then a pinyin reading,
 * whether the name was written in characters or typed in pinyin, and where
 * the surname ends.
 *
 * Every fact about a character comes from the generated Unihan tables
 * (unihan.h). The only lists kept here are the two that Unihan cannot give:
 * compound surnames and the surnames read differently from their everyday
 * reading. It must never allocate or keep state between calls.
 */
#include <pthread.h>
#include <string.h>

#include "name_norm.h"
#include "unihan_text.h"

/* Longer input is refused before it is decoded. */
#define NAME_NORM_MAX_BYTES 1024

/* U+00FC, ü: how chars spell it outside a pinyin reading. */
#define U_UMLAUT 0xfc

/*
 * Compound surnames (复姓), in simplified form with their readings, as the
 * 《百家姓》 lists them, keeping those still met in registration data. A
 * two-syllable name that starts with one is read as a surname of one and a
 * given name of one (朱歌 "zhu ge", not 诸葛): a person is never a surname
 * alone.
 */
static const struct {
	const char *hanzi;
	const char *pinyin[2];
} name_compound[] = {
    {"欧阳", {"ou", "yang"}},
    {"司马", {"si", "ma"}},
    {"诸葛", {"zhu", "ge"}},
    {"上官", {"shang", "guan"}},
    {"司徒", {"si", "tu"}},
    {"东方", {"dong", "fang"}},
    {"夏侯", {"xia", "hou"}},
    {"皇甫", {"huang", "fu"}},
    {"尉迟", {"yu", "chi"}},
    {"公孙", {"gong", "sun"}},
    {"慕容", {"mu", "rong"}},
    {"长孙", {"zhang", "sun"}},
    {"宇文", {"yu", "wen"}},
    {"令狐", {"ling", "hu"}},
    {"轩辕", {"xuan", "yuan"}},
    {"端木", {"duan", "mu"}},
    {"西门", {"xi", "men"}},
    {"南宫", {"nan", "gong"}},
    {"万俟", {"mo", "qi"}},
    {"澹台", {"tan", "tai"}},
    {"呼延", {"hu", "yan"}},
    {"司空", {"si", "kong"}},
    {"独孤", {"du", "gu"}},
    {"申屠", {"shen", "tu"}},
    {"公冶", {"gong", "ye"}},
    {"太史", {"tai", "shi"}},
    {"淳于", {"chun", "yu"}},
    {"赫连", {"he", "lian"}},
    {"拓跋", {"tuo", "ba"}},
};

/*
 * Single surnames whose reading as a surname is not kMandarin's first
 * reading (曾 is céng in Unihan, zēng as a surname), after 《现代汉语词典》
 * (7th edition), which marks each such reading 姓. Applied to the first
 * character of a name written in characters, so a clerk who types the
 * surname in pinyin as it is said gets the same key.
 */
static const struct {
	const char *hanzi;
	const char *pinyin;
} name_surname_reading[] = {
    {"曾", "zeng"},
    {"单", "shan"},
    {"解", "xie"},
    {"仇", "qiu"},
    {"朴", "piao"},
    {"区", "ou"},
    {"查", "zha"},
    {"盖", "ge"},
    {"覃", "qin"},
    {"缪", "miao"},
    {"乐", "yue"},
    {"召", "shao"},
    {"种", "chong"},
    {"秘", "bi"},
    {"繁", "po"},
    {"员", "yun"},
    {"翟", "zhai"},
    {"句", "gou"},
    {"黑", "he"},
    {"长", "chang"},
};

/* One code point of the name as folded, with what segmentation needs. */
struct name_unit {
	uint32_t cp;   /* folded */
	uint32_t orig; /* as typed, for its reading */
	bool latin;    /* a pinyin letter */
	bool upper;    /* typed in upper case */
	bool boundary; /* a separator came before it */
};

/* Code points dropped from a name: spaces, middle dots and the like. */
static bool
name_is_separator(uint32_t c)
{
	switch (c) {
	case ' ':
	case '\'':
	case '-':
	case '.':
	case 0xa0:   /* no-break space */
	case 0xb7:   /* middle dot · */
	case 0x2010: /* hyphen */
	case 0x2019: /* right single quotation mark, as an apostrophe */
	case 0x2022: /* bullet • */
	case 0x2027: /* hyphenation point ‧ */
	case 0x2219: /* bullet operator ∙ */
	case 0x22c5: /* dot operator ⋅ */
	case 0x3000: /* ideographic space */
	case 0x30fb: /* katakana middle dot ・ */
	case 0xff65: /* half-width katakana middle dot ･ */
	case 0x200b: /* zero-width space, non-joiner, joiner */
	case 0x200c:
	case 0x200d:
	case 0x2060: /* word joiner */
	case 0xfeff: /* zero-width no-break space (a stray BOM) */
		return true;
	}
	return c >= 0x2000 && c <= 0x200a; /* the typographic spaces */
}

/* Control characters, line breaks and noncharacters: never in a name. */
static const char *
name_refuse(uint32_t c)
{
	if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == 0x2028 ||
	    c == 0x2029)
		return "control character in name";
	if ((c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe)
		return "noncharacter in name";
	return NULL;
}

/* Whether a Latin letter pinyin_letter() knows was typed in upper case. */
static bool
name_latin_upper(uint32_t c)
{
	if (c < 0x80)
		return c >= 'A' && c <= 'Z';
	if (c < 0x100)
		return c < 0xe0;
	if (c >= 0x139 && c <= 0x148) /* Ĺ..ň, with Ń and Ň: capitals odd */
		return (c & 1) == 1;
	if (c < 0x180)
		return (c & 1) == 0;
	if (c >= 0x1cd && c <= 0x1dc)
		return (c & 1) == 1;
	return (c & 1) == 0; /* Ǹ ǹ, Ḿ ḿ, Ế ế, Ề ề */
}

/* A Latin-1 capital that is no pinyin letter (Ñ, Ç, Ø...) in lower case. */
static uint32_t
name_latin1_lower(uint32_t c)
{
	if (c >= 0xc0 && c <= 0xde && c != 0xd7)
		return c + 0x20;
	return c;
}

/*
 * Decode and fold utf8 into units. Returns the count, or -1 with *why.
 * Full-width ASCII becomes ASCII first, so Ｚ is z and a full-width space is
 * a space. A combining diaeresis or a colon after u makes it ü ("lu:", the
 * CEDICT spelling); other combining marks (typed tone marks) are dropped.
 */
static int
name_decode(
    const unsigned char *s, size_t len, struct name_unit *u, const char **why)
{
	size_t off = 0;
	uint32_t c;
	int n = 0, step, letter;
	bool pending = false;

	while (off < len) {
		if ((step = utf8_decode(s + off, len - off, &c)) == -1) {
			*why = "name is not valid UTF-8";
			return -1;
		}
		off += (size_t)step;
		if (c >= 0xff01 && c <= 0xff5e)
			c -= 0xfee0;
		if ((*why = name_refuse(c)) != NULL)
			return -1;
		if (name_is_separator(c)) {
			pending = true;
			continue;
		}
		if ((c >= 0x300 && c <= 0x36f) || c == ':') {
			if ((c == 0x308 || c == ':') && n > 0 &&
			    u[n - 1].latin && u[n - 1].cp == 'u') {
				u[n - 1].cp = U_UMLAUT;
				continue;
			}
			if (c != ':')
				continue;
		}
		if (n == NAME_NORM_MAX) {
			*why = "name too long";
			return -1;
		}
		u[n].orig = c;
		u[n].boundary = pending && n > 0;
		pending = false;
		if ((letter = pinyin_letter(c)) != 0) {
			u[n].latin = true;
			u[n].upper = name_latin_upper(c);
			u[n].cp = letter == 'v' && c != 'v' && c != 'V'
			    ? U_UMLAUT
			    : (uint32_t)letter;
		} else {
			u[n].latin = false;
			u[n].upper = false;
			u[n].cp = unihan_fold(name_latin1_lower(c));
		}
		n++;
	}
	if (n == 0) {
		*why = "name is empty";
		return -1;
	}
	return n;
}

/* Whether s[0..len) is a syllable a name can have (one with a vowel). */
static uint16_t
name_syllable(const char *s, int len)
{
	if (memchr(s, 'a', (size_t)len) == NULL &&
	    memchr(s, 'e', (size_t)len) == NULL &&
	    memchr(s, 'i', (size_t)len) == NULL &&
	    memchr(s, 'o', (size_t)len) == NULL &&
	    memchr(s, 'u', (size_t)len) == NULL &&
	    memchr(s, 'v', (size_t)len) == NULL)
		return UNIHAN_NO_SYLLABLE;
	return unihan_syllable_find(s, (size_t)len);
}

/* Syllables found so far and whether a separator came before each. */
struct name_seg {
	uint16_t syl[NAME_NORM_MAX];
	bool boundary[NAME_NORM_MAX];
	int n;
};

/*
 * Split letters[a..b) into the fewest syllables and append them to seg, the
 * first marked with boundary. Among splits of equal length it takes the one
 * pinyin's spelling rules read: a syllable starting with a, e or o follows
 * another only after an apostrophe, so "nana" is na na, not nan a, and
 * "changan" chan gan ("chang'an" is chang an); then a longer first
 * syllable. Returns 0, or -1 when it cannot be split.
 */
static int
name_split(
    const char *letters, int a, int b, bool boundary, struct name_seg *seg)
{
	/* Cost: syllables, then vowel-initial syllables after the first. */
	int best[NAME_NORM_MAX + 1], take[NAME_NORM_MAX + 1];
	int i, len, cost, inf = (NAME_NORM_MAX + 1) * (NAME_NORM_MAX + 1);

	best[b] = 0;
	for (i = b - 1; i >= a; i--) {
		best[i] = inf;
		for (len = PINYIN_SYLLABLE_MAX; len >= 1; len--) {
			if (i + len > b || best[i + len] == inf)
				continue;
			cost = best[i + len] + NAME_NORM_MAX + 1 +
			    (i > a && strchr("aeo", letters[i]) != NULL);
			if (cost < best[i] &&
			    name_syllable(letters + i, len) !=
				UNIHAN_NO_SYLLABLE) {
				best[i] = cost;
				take[i] = len;
			}
		}
	}
	if (best[a] == inf)
		return -1;
	for (i = a; i < b; i += take[i]) {
		seg->syl[seg->n] = name_syllable(letters + i, take[i]);
		seg->boundary[seg->n] = i == a && boundary;
		seg->n++;
	}
	return 0;
}

/*
 * Split the token u[a..b) (no separator inside) into syllables appended to
 * seg: first with each change from lower to upper case taken as a separator
 * ("XiAn" is xi an), and if that fails as one piece. 0 or -1.
 */
static int
name_split_token(const struct name_unit *u, const char *letters, int a, int b,
    struct name_seg *seg)
{
	int sub, stop, mark = seg->n;

	for (sub = a; sub < b; sub = stop) {
		for (stop = sub + 1; stop < b; stop++)
			if (u[stop].upper && !u[stop - 1].upper)
				break;
		if (name_split(letters, sub, stop, sub == a && u[a].boundary,
			seg) == -1)
			break;
	}
	if (sub == b)
		return 0;
	seg->n = mark;
	return name_split(letters, a, b, u[a].boundary, seg);
}

/*
 * Split the Latin run u[a..b) into syllables appended to seg. Separators
 * typed are kept ("xi an" is two syllables even though "xian" is one). If
 * they do not fall between syllables ("zhan gsan"), the run is read as if
 * they were not there. Returns 0, or -1 for no reading.
 */
static int
name_split_run(const struct name_unit *u, int a, int b, struct name_seg *seg)
{
	char letters[NAME_NORM_MAX];
	int i, tok, end, start = seg->n;

	for (i = a; i < b; i++)
		letters[i] = u[i].cp == U_UMLAUT ? 'v' : (char)u[i].cp;
	for (tok = a; tok < b; tok = end) {
		for (end = tok + 1; end < b && !u[end].boundary; end++)
			;
		if (name_split_token(u, letters, tok, end, seg) == -1)
			break;
	}
	if (tok == b)
		return 0;
	seg->n = start;
	return name_split(letters, a, b, u[a].boundary, seg);
}

/* Decode a two-character UTF-8 literal of the tables above. */
static void
name_literal(const char *s, uint32_t cp[2])
{
	size_t len = strlen(s);
	int step;

	cp[0] = cp[1] = 0;
	if ((step = utf8_decode((const unsigned char *)s, len, &cp[0])) > 0 &&
	    (size_t)step < len)
		utf8_decode((const unsigned char *)s + step, len - (size_t)step,
		    &cp[1]);
}

#define NAME_NCOMPOUND (sizeof(name_compound) / sizeof(name_compound[0]))
#define NAME_NREADING                                                          \
	(sizeof(name_surname_reading) / sizeof(name_surname_reading[0]))

/* The lists above decoded once (every name normalised looks them up). */
static struct {
	uint32_t compound_cp[NAME_NCOMPOUND][2];
	uint16_t compound_syl[NAME_NCOMPOUND][2];
	uint32_t reading_cp[NAME_NREADING][2];
	uint16_t reading_syl[NAME_NREADING];
} name_lists;
static pthread_once_t name_lists_once = PTHREAD_ONCE_INIT;

static void
name_lists_decode(void)
{
	for (size_t i = 0; i < NAME_NCOMPOUND; i++) {
		name_literal(name_compound[i].hanzi, name_lists.compound_cp[i]);
		for (int k = 0; k < 2; k++)
			name_lists.compound_syl[i][k] =
			    unihan_syllable_find(name_compound[i].pinyin[k],
				strlen(name_compound[i].pinyin[k]));
	}
	for (size_t i = 0; i < NAME_NREADING; i++) {
		name_literal(
		    name_surname_reading[i].hanzi, name_lists.reading_cp[i]);
		name_lists.reading_syl[i] =
		    unihan_syllable_find(name_surname_reading[i].pinyin,
			strlen(name_surname_reading[i].pinyin));
	}
}

/* The compound surname the name starts with, or -1. */
static int
name_compound_at(const struct name_norm *n)
{
	pthread_once(&name_lists_once, name_lists_decode);
	for (size_t i = 0; i < NAME_NCOMPOUND; i++) {
		if (n->pinyin_input) {
			if (n->syl[0] == name_lists.compound_syl[i][0] &&
			    n->syl[1] == name_lists.compound_syl[i][1])
				return (int)i;
			continue;
		}
		if (n->chars[0] == name_lists.compound_cp[i][0] &&
		    n->chars[1] == name_lists.compound_cp[i][1])
			return (int)i;
	}
	return -1;
}

/*
 * Where the surname ends, and its reading as a surname. units are the
 * decoded units (for a name in characters) and seg the syllables (for
 * pinyin). A separator typed after the first unit and not after the second
 * ("zhu gejun") says the surname is one.
 */
static void
name_surname(
    struct name_norm *n, const struct name_unit *u, const struct name_seg *seg)
{
	int m = n->pinyin_input ? n->nsyl : n->nchars, c;
	bool han0 = !n->pinyin_input && !u[0].latin && n->nsyl > 0;
	bool split_after_first;
	size_t i;

	if (!n->pinyin_input && unihan_reading(u[0].orig) == 0 &&
	    unihan_reading(u[0].cp) == 0) {
		n->surname_len = 0;
		return;
	}
	n->surname_len = 1;
	if (m >= 3) {
		split_after_first = n->pinyin_input
		    ? seg->boundary[1] && !seg->boundary[2]
		    : u[1].boundary && !u[2].boundary;
		if (!split_after_first && (c = name_compound_at(n)) != -1) {
			n->surname_len = 2;
			if (han0 && !u[1].latin) {
				n->syl[0] = unihan_syllable_find(
				    name_compound[c].pinyin[0],
				    strlen(name_compound[c].pinyin[0]));
				n->syl[1] = unihan_syllable_find(
				    name_compound[c].pinyin[1],
				    strlen(name_compound[c].pinyin[1]));
			}
			return;
		}
	}
	if (!han0)
		return;
	pthread_once(&name_lists_once, name_lists_decode);
	for (i = 0; i < NAME_NREADING; i++) {
		if (n->chars[0] == name_lists.reading_cp[i][0]) {
			n->syl[0] = name_lists.reading_syl[i];
			return;
		}
	}
}

int
name_normalise(
    const char *utf8, size_t len, struct name_norm *out, const char **why)
{
	struct name_unit u[NAME_NORM_MAX];
	struct name_seg seg;
	const char *dummy;
	uint16_t r;
	int n, i, j;

	if (why == NULL)
		why = &dummy;
	memset(out, 0, sizeof(*out));
	if (len > NAME_NORM_MAX_BYTES) {
		*why = "name too long";
		return -1;
	}
	if ((n = name_decode((const unsigned char *)utf8, len, u, why)) == -1)
		return -1;
	out->nchars = n;
	for (i = 0; i < n; i++)
		out->chars[i] = u[i].cp;

	/* A pinyin reading: Latin runs split, characters looked up. */
	seg.n = 0;
	for (i = 0; i < n; i = j) {
		if (u[i].latin) {
			for (j = i + 1; j < n && u[j].latin; j++)
				;
			if (name_split_run(u, i, j, &seg) == -1)
				break;
			continue;
		}
		j = i + 1;
		if ((r = unihan_reading(u[i].orig)) == UNIHAN_NO_SYLLABLE &&
		    (r = unihan_reading(u[i].cp)) == UNIHAN_NO_SYLLABLE)
			break;
		seg.syl[seg.n] = r;
		seg.boundary[seg.n] = u[i].boundary;
		seg.n++;
	}
	if (i == n) {
		out->nsyl = seg.n;
		memcpy(out->syl, seg.syl, sizeof(seg.syl[0]) * (size_t)seg.n);
		out->pinyin_input = true;
		for (i = 0; i < n; i++)
			out->pinyin_input = out->pinyin_input && u[i].latin;
	}
	if (out->pinyin_input)
		for (i = 0; i < n; i++)
			if (out->chars[i] == U_UMLAUT)
				out->chars[i] = 'v';
	if (out->nsyl > 0 || !u[0].latin)
		name_surname(out, u, &seg);
	return 0;
}

int
name_pinyin_key(const struct name_norm *n, char *buf, size_t cap)
{
	size_t off = 0, len;
	const char *s;
	int i;

	if (n->nsyl <= 0 || cap == 0)
		return -1;
	for (i = 0; i < n->nsyl; i++) {
		if ((s = unihan_syllable(n->syl[i])) == NULL)
			return -1;
		len = strlen(s);
		if (off + (i > 0) + len + 1 > cap)
			return -1;
		if (i > 0)
			buf[off++] = ' ';
		memcpy(buf + off, s, len);
		off += len;
	}
	buf[off] = '\0';
	return (int)off;
}

bool
name_pinyin_equal(const struct name_norm *a, const struct name_norm *b)
{
	return a->nsyl > 0 && a->nsyl == b->nsyl &&
	    memcmp(a->syl, b->syl, sizeof(a->syl[0]) * (size_t)a->nsyl) == 0;
}

static int
name_min3(int a, int b, int c)
{
	int m = a < b ? a : b;

	return m < c ? m : c;
}

/*
 * Optimal string alignment distance between a[0..la) and b[0..lb), or
 * max + 1 once every path costs more. Rows are never cheaper than the
 * cheaper of the two before them less one, so two rows past max end it.
 */
static int
name_osa(const uint32_t *a, int la, const uint32_t *b, int lb, int max)
{
	int rows[3][NAME_NORM_MAX + 1];
	int *prev2 = rows[0], *prev = rows[1], *cur = rows[2], *t;
	int i, j, cost, rowmin, prevmin = 0;

	if (max < 0)
		max = 0;
	if (la - lb > max || lb - la > max)
		return max + 1;
	for (j = 0; j <= lb; j++)
		prev[j] = j;
	for (i = 1; i <= la; i++) {
		cur[0] = i;
		rowmin = i;
		for (j = 1; j <= lb; j++) {
			cost = a[i - 1] == b[j - 1] ? 0 : 1;
			cur[j] = name_min3(
			    prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < cur[j])
				cur[j] = prev2[j - 2] + 1;
			if (cur[j] < rowmin)
				rowmin = cur[j];
		}
		if (rowmin > max && prevmin >= max)
			return max + 1;
		prevmin = rowmin;
		t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	return prev[lb] > max ? max + 1 : prev[lb];
}

int
name_char_distance(
    const struct name_norm *a, const struct name_norm *b, int max)
{
	return name_osa(a->chars, a->nchars, b->chars, b->nchars, max);
}

int
name_syl_distance(const struct name_norm *a, const struct name_norm *b, int max)
{
	uint32_t sa[NAME_NORM_MAX], sb[NAME_NORM_MAX];
	int i;

	if (max < 0)
		max = 0;
	if (a->nsyl <= 0 || b->nsyl <= 0)
		return max + 1;
	for (i = 0; i < a->nsyl; i++)
		sa[i] = a->syl[i];
	for (i = 0; i < b->nsyl; i++)
		sb[i] = b->syl[i];
	return name_osa(sa, a->nsyl, sb, b->nsyl, max);
}

/* Whether s is n folded characters, each with a reading, and nothing more. */
static bool
name_literal_ok(const char *s, int n)
{
	uint32_t cp;
	size_t off = 0, len = strlen(s);
	int step, i;

	for (i = 0; i < n; i++) {
		if (off >= len ||
		    (step = utf8_decode((const unsigned char *)s + off,
			 len - off, &cp)) == -1 ||
		    unihan_fold(cp) != cp || unihan_reading(cp) == 0)
			return false;
		off += (size_t)step;
	}
	return off == len;
}

int
name_norm_check_lists(const char **why)
{
	size_t i;
	int k;

	for (i = 0; i < sizeof(name_compound) / sizeof(name_compound[0]); i++) {
		*why = name_compound[i].hanzi;
		if (!name_literal_ok(name_compound[i].hanzi, 2))
			return -1;
		for (k = 0; k < 2; k++)
			if (unihan_syllable_find(name_compound[i].pinyin[k],
				strlen(name_compound[i].pinyin[k])) ==
			    UNIHAN_NO_SYLLABLE)
				return -1;
	}
	for (i = 0;
	     i < sizeof(name_surname_reading) / sizeof(name_surname_reading[0]);
	     i++) {
		*why = name_surname_reading[i].hanzi;
		if (!name_literal_ok(name_surname_reading[i].hanzi, 1) ||
		    unihan_syllable_find(name_surname_reading[i].pinyin,
			strlen(name_surname_reading[i].pinyin)) ==
			UNIHAN_NO_SYLLABLE)
			return -1;
	}
	*why = NULL;
	return 0;
}
